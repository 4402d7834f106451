"""The page allocator, reclaim, fault injection and counters: mm/page_alloc.c
``__alloc_pages`` (``__alloc_pages_direct_reclaim``), ``__free_pages``/``bad_page``,
mm/shrinker.c ``shrink_slab``/``do_shrink_slab``, lib/fault-inject.c ``should_fail``,
mm/vmstat.c counters."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Page, Process
from safemm.model.page_alloc import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, PageKind
from safemm.model.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker
from safemm.model.vmstat import delta
from safemm.testing import SplatKind, expect_splat

from .strategies import ANON, RW, P, in_task


def test_exhaustion_is_enomem(p: Process) -> None:
    """``__alloc_pages``: no free frame and nothing to reclaim → failure (the model has no OOM
    killer: ENOMEM)."""
    k = Kernel(nr_pages=4)
    q = k.spawn()
    pages = [k.pages.alloc_page(int(GFP_KERNEL)) for _ in range(4)]
    assert k.pages.nr_free == 0
    with pytest.raises(KernelError) as ei:
        k.pages.alloc_page(int(GFP_KERNEL))
    assert ei.value.errno == errno.ENOMEM
    assert k.counters.alloc_failed == 1
    a = q.mmap(None, P, RW, ANON)
    with pytest.raises(KernelError) as ei:
        q.write(a, b"x")  # do_anonymous_page → VM_FAULT_OOM
    assert ei.value.errno == errno.ENOMEM
    k.pages.put_page(pages[0])
    q.write(a, b"x")
    k.check_invariants()


def test_free_returns_the_frame(k: Kernel) -> None:
    """``put_page`` dropping the last reference frees the frame (``__free_pages``)."""
    free = k.pages.nr_free
    pg = k.pages.alloc_page(int(GFP_KERNEL))
    assert (pg.refcount, pg.mapcount, pg.kind) == (1, 0, PageKind.KERNEL)
    k.pages.get_page(pg)
    k.pages.put_page(pg)
    assert k.pages.nr_free == free - 1
    k.pages.put_page(pg)
    assert k.pages.nr_free == free and pg.kind is PageKind.FREE and pg.refcount == 0


def test_put_page_on_a_free_page_is_bug(k: Kernel) -> None:
    """``put_page`` of a page whose refcount is already 0 (VM_BUG_ON_PAGE)."""
    pg = k.pages.alloc_page(int(GFP_KERNEL))
    k.pages.put_page(pg)
    with expect_splat("page-refcount", SplatKind.BUG):
        k.pages.put_page(pg)
    with expect_splat("page-refcount", SplatKind.BUG):
        k.pages.get_page(pg)


def test_freeing_a_mapped_page_is_bad_page_state(k: Kernel) -> None:
    """``bad_page``: a page freed while its mapcount is non-zero → "Bad page state"."""
    pg = k.pages.alloc_page(int(GFP_KERNEL))
    pg.mapcount = 1  # a mapping that never took its own reference
    with expect_splat("page-refcount", SplatKind.WARNING) as ei:
        k.pages.put_page(pg)
    assert "Bad page state" in str(ei.error)


def test_zero_content_of_new_pages(k: Kernel) -> None:
    """__GFP_ZERO (and anonymous pages) start zeroed."""
    pg = k.pages.alloc_page(int(GFP_KERNEL))
    pg.write(0, b"dirty")
    k.pages.put_page(pg)
    from safemm.model.page_alloc import Gfp

    again = k.pages.alloc_page(int(GFP_KERNEL | Gfp.ZERO))
    assert again.read(0, 5) == bytes(5)


# -- reclaim --------------------------------------------------------------------------------------


class PageCache:
    """A driver cache of pages that its shrinker gives back."""

    def __init__(self, k: Kernel, n: int, stop: bool = False) -> None:
        self.k = k
        self.pages: list[Page] = [k.pages.alloc_page(int(GFP_KERNEL)) for _ in range(n)]
        self.stop = stop
        self.scans: list[int] = []
        self.shrinker = Shrinker("cache", self.count, self.scan)
        k.register_shrinker(self.shrinker)

    def count(self, sc: ShrinkControl) -> int:
        return len(self.pages) if self.pages else SHRINK_EMPTY

    def scan(self, sc: ShrinkControl) -> int:
        self.scans.append(sc.nr_to_scan)
        if self.stop:
            return SHRINK_STOP
        freed = 0
        while self.pages and freed < sc.nr_to_scan:
            self.k.pages.put_page(self.pages.pop())
            freed += 1
        return freed


def test_direct_reclaim_runs_the_shrinkers() -> None:
    """``__alloc_pages_direct_reclaim``: an allocation that finds no free frame runs the
    shrinkers in the allocating task (SWAP_CLUSTER_MAX objects each) and retries."""
    k = Kernel(nr_pages=8)
    p = k.spawn()
    cache = PageCache(k, 8)
    assert k.pages.nr_free == 0
    with in_task(p):
        pg = k.pages.alloc_page(int(GFP_KERNEL))
    assert pg.refcount == 1
    assert cache.scans == [8]  # min(count, SWAP_CLUSTER_MAX)
    assert k.counters.direct_reclaim == 1
    assert k.counters.shrinker_freed == 8


def test_atomic_allocations_do_not_reclaim() -> None:
    """GFP_ATOMIC/GFP_NOWAIT lack __GFP_DIRECT_RECLAIM: they fail at once, without
    ``might_sleep`` (allowed under a spinlock)."""
    from safemm.model.locking import SpinLock

    k = Kernel(nr_pages=2)
    p = k.spawn()
    cache = PageCache(k, 2)
    s = SpinLock("s")
    with in_task(p):
        s.lock(k)
        try:
            for gfp in (GFP_ATOMIC, GFP_NOWAIT):
                with pytest.raises(KernelError) as ei:
                    k.pages.alloc_page(int(gfp))
                assert ei.value.errno == errno.ENOMEM
        finally:
            s.unlock(k)
    assert cache.scans == []


def test_kswapd_shrink_and_shrink_stop(k: Kernel) -> None:
    """``shrink_slab``: ``count_objects`` == SHRINK_EMPTY skips the shrinker; ``SHRINK_STOP``
    ends its pass; ``Kernel.shrink(n)`` asks each for at most n objects."""
    full = PageCache(k, 5)
    stuck = PageCache(k, 3, stop=True)
    empty = PageCache(k, 0)
    assert k.shrink(2) == 2
    assert full.scans == [2] and stuck.scans == [2] and empty.scans == []
    assert k.shrink() == 3
    assert full.scans == [2, 3]
    with pytest.raises(KernelError) as ei:
        k.shrink(-1)
    assert ei.value.errno == errno.EINVAL


def test_reclaim_does_not_recurse() -> None:
    """PF_MEMALLOC: an allocation inside reclaim (a shrinker) does not enter reclaim again."""
    k = Kernel(nr_pages=4)
    p = k.spawn()
    nested: list[str] = []

    def scan(sc: ShrinkControl) -> int:
        try:
            k.pages.alloc_page(int(GFP_KERNEL))
        except KernelError:
            nested.append("failed without recursing")
        return 0

    k.register_shrinker(Shrinker("greedy", lambda sc: 1, scan))
    held = [k.pages.alloc_page(int(GFP_KERNEL)) for _ in range(4)]
    with in_task(p), pytest.raises(KernelError):
        k.pages.alloc_page(int(GFP_KERNEL))
    assert nested == ["failed without recursing"]
    assert k.counters.direct_reclaim == 1
    assert len(held) == 4


def test_register_shrinker_twice_is_ebusy(k: Kernel) -> None:
    """``shrinker_register`` of a registered shrinker."""
    cache = PageCache(k, 1)
    with pytest.raises(KernelError) as ei:
        k.register_shrinker(cache.shrinker)
    assert ei.value.errno == errno.EBUSY
    k.unregister_shrinker(cache.shrinker)
    assert k.shrink() == 0


# -- fault injection ------------------------------------------------------------------------------


def test_fail_next_n_allocations(k: Kernel) -> None:
    """``should_fail``: the next N calls at a site fail, then it behaves again."""
    k.fault_inject.fail_next("alloc_page", 2)
    for _ in range(2):
        with pytest.raises(KernelError) as ei:
            k.pages.alloc_page(int(GFP_KERNEL))
        assert ei.value.errno == errno.ENOMEM
    assert k.pages.alloc_page(int(GFP_KERNEL)).refcount == 1
    assert k.fault_inject.injected["alloc_page"] == 2


def test_injected_fault_path_allocation(k: Kernel, p: Process) -> None:
    """An injected allocation failure in the fault path is VM_FAULT_OOM; nothing is left
    half-done."""
    from .strategies import snapshot

    a = p.mmap(None, P, RW, ANON)
    p.write(a, b"x")
    b = p.mmap(None, P, RW, ANON)
    before = snapshot(k)
    k.fault_inject.fail_next("alloc_page")
    with pytest.raises(KernelError) as ei:
        p.write(b, b"y")
    assert ei.value.errno == errno.ENOMEM
    snap = snapshot(k)
    # the only change Linux also makes: vmf_anon_prepare gave the VMA its anon_vma first
    assert len(snap.mms[0].vmas) == len(before.mms[0].vmas)
    assert snap.pages == before.pages
    k.check_invariants()


def test_fail_fraction_is_seeded_and_reproducible() -> None:
    """A seeded fraction gives the same failure pattern on every run."""

    def pattern(seed: int) -> list[bool]:
        k = Kernel(seed=seed)
        k.fault_inject.fail_fraction("lock_vma_under_rcu", 0.5)
        return [k.fault_inject.should_fail("lock_vma_under_rcu") for _ in range(64)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 10 < sum(pattern(7)) < 54
    k = Kernel()
    k.fault_inject.fail_fraction("trylock", 1.0)
    assert all(k.fault_inject.should_fail("trylock") for _ in range(10))
    k.fault_inject.clear()
    assert not k.fault_inject.should_fail("trylock")


def test_fault_injection_bad_arguments(k: Kernel) -> None:
    """Unknown sites, negative counts and fractions outside [0, 1] are refused."""
    with pytest.raises(ValueError, match="unknown fault-injection site"):
        k.fault_inject.fail_next("nope")
    with pytest.raises(ValueError, match="n must be"):
        k.fault_inject.fail_next("trylock", -1)
    with pytest.raises(ValueError, match="fraction"):
        k.fault_inject.fail_fraction("trylock", 1.5)


# -- counters -------------------------------------------------------------------------------------


def test_counters_snapshot_and_delta(k: Kernel, p: Process) -> None:
    """Counters only go up; ``delta`` of two snapshots measures one workload."""
    before = k.counters.snapshot()
    a = p.mmap(None, 2 * P, RW, ANON)
    p.write(a, b"x")
    p.read(a + P, 1)
    p.munmap(a, 2 * P)
    d = delta(k.counters.snapshot(), before)
    assert d["mmap_write_lock"] == 2
    assert d["pgfault"] == 2 and d["pgfault_anon"] == 2
    assert d["pgalloc"] == 1 and d["pgfree"] == 1
    assert d["ptes_zapped"] == 2
    assert all(v >= 0 for v in d.values())
