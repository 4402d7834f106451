"""The safe layer's page cache: Folio, FolioGuard, CachedFolio, AddressSpaceOperations and
AddressSpaceOwned (src/safemm/_filemap.py), against core reclaim."""

from __future__ import annotations

import errno

import pytest
from typing_extensions import override

from safemm import BusError, Kernel, KernelError, StaleReferenceError
from safemm.folio import CachedFolio, Folio
from safemm.page import GFP_KERNEL, Gfp
from safemm.testing import SplatKind, driver_context, expect_splat

from .folio_support import Cache, CacheAops, CacheSetup, fill


def test_folios_fault_in_from_the_page_cache_and_reclaim_asks_the_driver() -> None:
    k = Kernel()
    s = CacheSetup(k)
    s.run(lambda c: (fill(c, 0, b"zero"), fill(c, 1, b"one")))
    assert s.proc.read(s.addr, 4) == b"zero"
    assert s.proc.read(s.addr + 4096, 3) == b"one"
    cache = s.proc.fds[s.fd].private_data
    assert isinstance(cache, Cache)
    cache.busy.add(1)
    k.shrink()  # both mapped and young: kept, nobody asked
    assert cache.asked == []
    k.shrink()  # unmapped, then asked: 0 may go, 1 is busy
    assert cache.asked == [(0, GFP_KERNEL), (1, GFP_KERNEL)]
    assert sorted(cache.pins) == [1] and cache.require_mapping().nrpages == 1
    with pytest.raises(BusError):
        s.proc.read(s.addr, 1)
    assert s.proc.read(s.addr + 4096, 3) == b"one"  # faulted back in
    s.proc.exit()
    k.check_invariants()


def test_add_refuses_a_taken_index_and_bad_arguments() -> None:
    k = Kernel()
    s = CacheSetup(k)

    def body(c: Cache) -> None:
        fill(c, 0, b"a")
        other = Folio.alloc()
        m = c.require_mapping()
        with pytest.raises(KernelError) as e:
            m.filemap_add_folio(other, 0)
        assert e.value.errno == errno.EEXIST
        with pytest.raises(KernelError) as e:
            m.filemap_add_folio(other, -1)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            m.filemap_add_folio(other, 1, 0)  # type: ignore[arg-type]
        got = m.filemap_get_folio(0)
        assert got is not None and got.read(0, 1) == b"a"
        got.put()
        assert m.filemap_get_folio(2) is None
        other.put()

    s.run(body)
    s.proc.exit()
    k.check_invariants()


def test_the_states_say_what_needs_the_lock_at_run_time_too() -> None:
    k = Kernel()
    with driver_context(k):
        folio = Folio.alloc()
        with pytest.raises(AttributeError, match="needs the folio lock"):
            folio.index  # type: ignore[attr-defined]  # noqa: B018
        guard = folio.lock()
        assert folio.trylock() is None
        guard.unlock()
        with pytest.raises(StaleReferenceError):
            guard.unlock()
        folio.put()
        with pytest.raises(StaleReferenceError):
            folio.read(0, 1)


def test_the_borrowed_folio_goes_stale_when_release_folio_returns() -> None:
    k = Kernel()
    kept: list[CachedFolio[Cache]] = []

    class Keeper(CacheAops):
        @override
        def release_folio(self, folio: CachedFolio[Cache], gfp: Gfp) -> bool:
            kept.append(folio)
            with pytest.raises(AttributeError, match="the kernel holds"):
                folio.unlock()  # type: ignore[attr-defined]
            return super().release_folio(folio, gfp)

    s = CacheSetup(k)
    s.driver.aops = Keeper(Cache, "keeper")
    s.proc.close(s.fd)
    s.fd = s.proc.open("/dev/cache")
    s.run(lambda c: fill(c, 0, b"x"))
    k.shrink()
    assert len(kept) == 1
    with pytest.raises(StaleReferenceError):
        kept[0].index  # noqa: B018


def test_release_folio_must_answer_with_a_bool() -> None:
    k = Kernel()

    class Bad(CacheAops):
        @override
        def release_folio(self, folio: CachedFolio[Cache], gfp: Gfp) -> bool:
            return "yes"  # type: ignore[return-value]

    s = CacheSetup(k)
    s.driver.aops = Bad(Cache, "bad")
    s.proc.munmap(s.addr, 4 * 4096)
    s.proc.close(s.fd)
    s.fd = s.proc.open("/dev/cache")
    s.run(lambda c: fill(c, 0, b"x"))
    with pytest.raises(TypeError, match="return True to let reclaim free"):
        k.shrink()


def test_removing_a_mapped_folio_through_the_guard_is_bad_page_cache() -> None:
    k = Kernel()
    s = CacheSetup(k)
    s.run(lambda c: fill(c, 0, b"x"))
    s.proc.read(s.addr, 1)

    def remove(c: Cache) -> None:
        guard = c.require_mapping().filemap_lock_folio(0)
        assert guard is not None
        with guard:
            guard.filemap_remove_folio()

    with expect_splat("pagecache-free", SplatKind.WARNING):
        s.run(remove)


def test_a_folio_dropped_without_put_is_a_leak() -> None:
    k = Kernel()
    with driver_context(k):
        Folio.alloc()
    assert any("dropped without put()" in s.message for s in k.leaks)


def test_bad_arguments_are_refused_and_change_nothing() -> None:
    k = Kernel()
    s = CacheSetup(k)

    def body(c: Cache) -> None:
        m = c.require_mapping()
        with pytest.raises(KernelError) as e:
            m.filemap_get_folio(-1)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            m.filemap_lock_folio("0")  # type: ignore[arg-type]
        with pytest.raises(KernelError) as e:
            m.truncate_inode_pages(100)  # not page aligned
        assert e.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            Folio.alloc(0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            s.driver.aops.new_mapping("not a Cache")  # type: ignore[arg-type]
        folio = Folio.alloc()
        with pytest.raises(KernelError) as e:
            folio.write(4000, b"x" * 200)
        assert e.value.errno == errno.EINVAL
        assert folio.read(4000, 4) == bytes(4)
        folio.put()
        assert m.nrpages == 0

    s.run(body)
    s.proc.exit()
    k.check_invariants()
