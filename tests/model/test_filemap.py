"""The page cache and the folio lock (src/safemm/model/filemap.py, mm/filemap.c)."""

from __future__ import annotations

import errno

import pytest

from safemm.model import GFP_KERNEL, BusError, Deadlock, InvariantError, Kernel, KernelError
from safemm.model.filemap import (
    filemap_add_folio,
    filemap_get_folio,
    filemap_lock_folio,
    filemap_release_folio,
    filemap_remove_folio,
    folio_lock,
    folio_unlock,
)
from safemm.model.mman import PAGE_SIZE
from safemm.model.page_alloc import PageKind
from safemm.model.truncate import truncate_inode_pages
from safemm.testing import SplatKind, expect_splat

from .pagecache_rig import Rig


def _rig() -> tuple[Kernel, Rig, int]:
    k = Kernel()
    rig = Rig(k)
    p = k.spawn("user")
    base = rig.open_map(p)
    return k, rig, base


def test_add_returns_the_folio_locked_cached_and_on_the_inactive_lru() -> None:
    k, rig, _ = _rig()
    assert rig.mapping is not None
    page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    filemap_add_folio(rig.mapping, page, 3, int(GFP_KERNEL))
    assert page.locked_by is k.current
    assert (page.refcount, page.mapping, page.index) == (2, rig.mapping, 3)
    assert page.lru and not page.active and page.pfn in k.lruvec.inactive
    assert rig.mapping.pages == {3: page}
    folio_unlock(k, page)
    got = filemap_get_folio(rig.mapping, 3)
    assert got is page and page.refcount == 3
    assert filemap_get_folio(rig.mapping, 4) is None
    k.check_invariants()


def test_add_refuses_a_taken_index_and_a_folio_in_use_and_changes_nothing() -> None:
    k, rig, _ = _rig()
    assert rig.mapping is not None
    first = rig.add(0)
    other = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    with pytest.raises(KernelError) as e:
        filemap_add_folio(rig.mapping, other, 0, int(GFP_KERNEL))
    assert e.value.errno == errno.EEXIST
    assert (other.refcount, other.mapping, other.locked_by, other.lru) == (1, None, None, False)
    with pytest.raises(KernelError) as e:
        filemap_add_folio(rig.mapping, first, 1, int(GFP_KERNEL))  # already cached at 0
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as e:
        filemap_add_folio(rig.mapping, other, -1, int(GFP_KERNEL))
    assert e.value.errno == errno.EINVAL
    assert rig.mapping.pages == {0: first} and first.refcount == 2
    k.check_invariants()


def test_a_fault_maps_the_cached_folio_and_unlocks_it_after_the_pte_is_in() -> None:
    k, rig, base = _rig()
    page = rig.add(1, b"cached")
    p = next(iter(k.processes.values()))
    assert p.read(base + PAGE_SIZE, 6) == b"cached"
    assert page.mapcount == 1 and page.refcount == 3 and page.locked_by is None
    with pytest.raises(BusError):
        p.read(base, 1)  # nothing cached at offset 0: SIGBUS
    k.check_invariants()


def test_lock_folio_rechecks_the_mapping_after_locking() -> None:
    k, rig, _ = _rig()
    assert rig.mapping is not None
    rig.add(2)
    page = filemap_lock_folio(rig.mapping, 2)
    assert page is not None and page.locked_by is k.current and page.refcount == 3
    folio_unlock(k, page)
    k.pages.put_page(page)
    assert filemap_lock_folio(rig.mapping, 5) is None


def test_unlocking_a_folio_twice_is_a_bug() -> None:
    k, rig, _ = _rig()
    page = rig.add(0)
    folio_lock(k, page)
    folio_unlock(k, page)
    with expect_splat("folio-locked", SplatKind.BUG, match="not locked"):
        folio_unlock(k, page)


def test_removing_or_releasing_an_unlocked_folio_is_a_bug() -> None:
    _, rig, _ = _rig()
    page = rig.add(0)
    with expect_splat("folio-locked", SplatKind.BUG):
        filemap_remove_folio(page)
    with expect_splat("folio-locked", SplatKind.BUG):
        filemap_release_folio(page, int(GFP_KERNEL))


def test_folio_lock_on_a_folio_nobody_can_unlock_is_a_deadlock() -> None:
    k, rig, _ = _rig()
    page = rig.add(0)
    folio_lock(k, page)
    with pytest.raises(Deadlock):
        folio_lock(k, page)


def test_removing_a_mapped_folio_is_bad_page_cache() -> None:
    k, rig, base = _rig()
    page = rig.add(0, b"x")
    p = next(iter(k.processes.values()))
    p.read(base, 1)
    folio_lock(k, page)
    with expect_splat("pagecache-free", SplatKind.WARNING, match="still mapped"):
        filemap_remove_folio(page)


def test_freeing_a_folio_still_in_the_page_cache_is_bad_page_state() -> None:
    k, rig, _ = _rig()
    page = rig.add(0)
    k.pages.put_page(page)  # the allocation's reference
    with expect_splat("pagecache-free", SplatKind.WARNING, match="still in the page cache"):
        k.pages.put_page(page)  # the cache's: the cache still points at it


def test_remove_takes_the_folio_out_and_drops_the_cache_reference() -> None:
    k, rig, _ = _rig()
    assert rig.mapping is not None
    page = rig.add(0)
    folio_lock(k, page)
    filemap_remove_folio(page)
    assert page.mapping is None and rig.mapping.pages == {} and page.refcount == 1
    folio_unlock(k, page)
    k.pages.put_page(page)
    assert page.kind is PageKind.FREE and not page.lru
    k.check_invariants()


def test_truncate_unmaps_every_process_and_empties_the_cache() -> None:
    k, rig, base = _rig()
    assert rig.mapping is not None
    p = next(iter(k.processes.values()))
    child = p.fork()
    for i in range(3):
        k.pages.put_page(rig.add(i, b"%d" % i))
    p.read(base, 1)
    child.read(base + PAGE_SIZE, 1)
    free = k.pages.nr_free
    with k.enter(p.task, "truncate"):
        assert truncate_inode_pages(rig.mapping, PAGE_SIZE) == 2
    assert sorted(rig.mapping.pages) == [0]
    assert k.pages.nr_free == free + 2
    with pytest.raises(BusError):
        child.read(base + PAGE_SIZE, 1)
    with pytest.raises(KernelError) as e:
        truncate_inode_pages(rig.mapping, 1)
    assert e.value.errno == errno.EINVAL
    k.check_invariants()


def test_a_folio_naming_another_index_breaks_the_page_cache_invariant() -> None:
    k, rig, _ = _rig()
    rig.add(0).index = 5
    with pytest.raises(InvariantError, match="invariant 'page-cache' broken"):
        k.check_invariants()


def test_a_folio_on_the_wrong_list_breaks_the_lru_invariant() -> None:
    k, rig, _ = _rig()
    rig.add(0).active = True  # still on the inactive list
    with pytest.raises(InvariantError, match="invariant 'lru' broken"):
        k.check_invariants()


def test_a_page_cache_never_truncated_is_a_leak() -> None:
    """The rig's driver never truncates its inode: once every file is closed, its folios are
    left on the LRU for ever (the kernel's iput would have evicted them)."""
    k, rig, _ = _rig()
    k.pages.put_page(rig.add(0))
    for p in list(k.processes.values()):
        p.exit()
    with pytest.raises(InvariantError, match="invariant 'no-leaks' broken: 1 page-cache folio"):
        k.check_invariants()
