"""Core reclaim of page-cache folios (src/safemm/model/vmscan.py, mm/vmscan.c
shrink_folio_list) from kswapd and from direct reclaim, with the reverse map
(src/safemm/model/rmap.py) and release_folio."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm.model import GFP_KERNEL, GFP_NOWAIT, BusError, Kernel, KernelError, Process
from safemm.model.filemap import folio_lock, folio_unlock
from safemm.model.locking import Mutex
from safemm.model.mman import PAGE_SIZE
from safemm.model.page_alloc import PageKind
from safemm.model.shrinker import ShrinkControl, Shrinker
from safemm.testing import SplatKind, expect_splat

from .pagecache_rig import Rig


def _setup(nr_pages: int = 16384) -> tuple[Kernel, Rig, Process, int]:
    k = Kernel(nr_pages=nr_pages)
    rig = Rig(k)
    p = k.spawn("user")
    return k, rig, p, rig.open_map(p)


def _cached(rig: Rig, index: int, data: bytes = b"") -> int:
    """A folio at ``index`` that only the page cache references; its pfn."""
    page = rig.add(index, data)
    rig.k.pages.put_page(page)
    return page.pfn


def test_kswapd_frees_an_unused_folio_after_asking_release_folio() -> None:
    k, rig, _, _ = _setup()
    assert rig.mapping is not None
    pfn = _cached(rig, 0)
    free = k.pages.nr_free
    assert k.shrink() == 1
    assert rig.calls == [(0, int(GFP_KERNEL))]
    assert rig.mapping.pages == {} and k.pages.nr_free == free + 1
    assert k.pages.pfn_to_page(pfn).kind is PageKind.FREE
    c = k.counters
    assert (c.pgscan_kswapd, c.pgsteal_kswapd, c.release_folio, c.rmap_walk) == (1, 1, 1, 0)
    k.check_invariants()


def test_a_refused_folio_is_activated_and_stays_cached() -> None:
    k, rig, _, _ = _setup()
    assert rig.mapping is not None
    pfn = _cached(rig, 0)
    rig.refuse.add(0)
    assert k.shrink() == 0
    assert pfn in k.lruvec.active and 0 in rig.mapping.pages
    assert k.counters.release_folio_refused == 1
    # The inactive list is now smaller than the active one: the next pass deactivates it,
    # and once the driver lets it go, the one after frees it.
    rig.refuse.clear()
    k.shrink()
    k.shrink()
    assert rig.mapping.pages == {}
    k.check_invariants()


def test_a_mapped_folio_is_kept_while_young_then_unmapped_and_freed() -> None:
    k, rig, p, base = _setup()
    assert rig.mapping is not None
    _cached(rig, 0, b"hot")
    assert p.read(base, 3) == b"hot"  # the fault's PTE is young
    k.shrink()
    assert 0 in rig.mapping.pages and rig.calls == []  # referenced: kept, PG_referenced set
    assert k.counters.rmap_walk == 1
    k.shrink()  # not used since: PG_referenced alone -> reclaim (unmapped first)
    assert rig.mapping.pages == {} and rig.calls == [(0, int(GFP_KERNEL))]
    assert p.mm.rss_file == 0
    with pytest.raises(BusError):
        p.read(base, 1)
    k.check_invariants()


def test_a_folio_used_between_passes_is_activated() -> None:
    k, rig, p, base = _setup()
    pfn = _cached(rig, 0, b"hot")
    p.read(base, 1)
    k.shrink()
    p.read(base, 1)  # the MMU sets the accessed bit again
    k.shrink()
    assert pfn in k.lruvec.active and rig.calls == []
    k.check_invariants()


def test_refusal_after_unmap_costs_the_user_a_fault() -> None:
    """shrink_folio_list unmaps before it asks release_folio: a refused folio has lost its
    PTEs, and the next access faults it back in from the page cache."""
    k, rig, p, base = _setup()
    assert rig.mapping is not None
    _cached(rig, 0, b"in use")
    p.read(base, 1)
    rig.refuse.add(0)
    k.shrink()
    k.shrink()
    assert 0 in rig.mapping.pages and p.mm.rss_file == 0
    faults = k.counters.pgfault_file
    assert p.read(base, 6) == b"in use"
    assert k.counters.pgfault_file > faults and p.mm.rss_file == 1
    k.check_invariants()


def test_an_extra_reference_keeps_the_folio() -> None:
    """__remove_mapping freezes the refcount at cache + isolation: a driver that said yes but
    kept its own reference keeps the folio (on the inactive list)."""
    k, rig, _, _ = _setup()
    assert rig.mapping is not None
    page = rig.add(0)  # the allocation's reference stays
    assert k.shrink() == 0
    assert rig.calls == [(0, int(GFP_KERNEL))]
    assert page.pfn in k.lruvec.inactive and rig.mapping.pages == {0: page}
    k.check_invariants()


def test_a_locked_folio_is_skipped() -> None:
    k, rig, _, _ = _setup()
    page = rig.add(0)
    k.pages.put_page(page)
    folio_lock(k, page)
    assert k.shrink() == 0 and rig.calls == []
    folio_unlock(k, page)
    assert k.shrink() == 1


def test_an_mlocked_mapping_keeps_its_folio() -> None:
    k, rig, p, base = _setup()
    assert rig.mapping is not None
    _cached(rig, 0, b"x")
    p.mlock(base, PAGE_SIZE)
    for _ in range(3):
        k.shrink()
    assert 0 in rig.mapping.pages and p.mm.rss_file == 1
    k.check_invariants()


def test_direct_reclaim_frees_cached_folios_for_an_allocation() -> None:
    k, rig, p, _ = _setup(nr_pages=8)
    assert rig.mapping is not None
    n = 0
    while k.pages.nr_free:
        _cached(rig, n)
        n += 1
    with k.enter(p.task, "alloc"):
        page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    assert page.refcount == 1
    assert k.counters.direct_reclaim == 1 and k.counters.pgsteal_direct == n
    assert rig.mapping.pages == {}
    assert rig.calls[0] == (0, int(GFP_KERNEL))
    with k.enter(p.task, "alloc"):
        k.pages.put_page(page)
    k.check_invariants()


def test_a_nowait_allocation_does_not_reclaim() -> None:
    k, rig, p, _ = _setup(nr_pages=4)
    while k.pages.nr_free:
        _cached(rig, k.pages.nr_free)
    with k.enter(p.task, "alloc"), pytest.raises(KernelError):
        k.pages.alloc_page(int(GFP_NOWAIT), PageKind.KERNEL)
    assert rig.calls == []


def test_shrinkers_still_run_alongside_lru_reclaim() -> None:
    k, rig, _, _ = _setup()
    objects = [1, 2, 3]

    def scan(sc: ShrinkControl) -> int:
        n = min(sc.nr_to_scan, len(objects))
        del objects[:n]
        return n

    k.register_shrinker(Shrinker("objs", lambda sc: len(objects), scan))
    _cached(rig, 0)
    assert k.shrink() == 4
    assert objects == [] and k.counters.shrinker_freed == 3


def _sleeper(k: Kernel) -> Callable[[], None]:
    """A release_folio body that takes and drops a mutex (a sleeping lock)."""
    lock = Mutex("pc.mutex")

    def sleeps() -> None:
        lock.lock(k)
        lock.unlock(k)

    return sleeps


def test_release_folio_sleeping_without_direct_reclaim_is_reported_in_strict_mode() -> None:
    """drop_caches evicts with gfp 0 (mapping_evict_folio): the hook must not block."""
    k, rig, _, _ = _setup()
    _cached(rig, 0)
    rig.in_release = _sleeper(k)
    with expect_splat("release-folio-gfp", SplatKind.STRICT, match="pc_aops->release_folio"):
        k.drop_caches()


def test_release_folio_may_sleep_under_reclaim_and_linux_does_not_check_gfp() -> None:
    k, rig, _, _ = _setup()
    _cached(rig, 0)
    rig.in_release = _sleeper(k)
    assert k.shrink() == 1  # kswapd's GFP_KERNEL allows blocking
    relaxed = Kernel(strict=False)
    rig2 = Rig(relaxed)
    rig2.open_map(relaxed.spawn())
    _cached(rig2, 0)
    rig2.in_release = _sleeper(relaxed)
    assert relaxed.drop_caches() == 1 and relaxed.dmesg == []


def test_drop_caches_skips_mapped_and_referenced_folios() -> None:
    k, rig, p, base = _setup()
    assert rig.mapping is not None
    _cached(rig, 0, b"m")
    _cached(rig, 1)
    pinned = rig.add(2)
    p.read(base, 1)
    assert k.drop_caches() == 1
    assert sorted(rig.mapping.pages) == [0, 2]
    assert rig.calls == [(1, 0)]
    k.pages.put_page(pinned)
    k.check_invariants()


def test_a_driver_filling_another_files_page_cache_is_reported_in_strict_mode() -> None:
    from safemm.model.filemap import filemap_add_folio

    k, _rig, p, _ = _setup()
    fd = p.memfd_create("other")
    other = p.fds[fd].f_mapping
    page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    with (
        k.driver_hook("some driver", None, "some->ioctl"),
        expect_splat("pagecache-foreign", SplatKind.STRICT, match="did not create"),
    ):
        filemap_add_folio(other, page, 0, int(GFP_KERNEL))
