"""The legal patterns: no error here (checked with --strict)."""

from __future__ import annotations

from safemm.fs import AddressSpace
from safemm.mm import MmWithUser
from safemm.page import GFP_ATOMIC, GFP_NOWAIT, Gfp, Page
from safemm.rcu import rcu_read_lock
from safemm.shrinker import ListLru, LruStatus, LruWalk
from safemm.sync import Mutex, SpinLock
from safemm.task import msleep


def trylocks_under_spinlock(lock: SpinLock, m: Mutex, mm: MmWithUser) -> None:
    with lock.lock():
        g = m.try_lock()
        if g is not None:
            g.unlock()
        r = mm.mmap_read_trylock()
        if r is not None:
            r.unlock()


def atomic_gfp(lock: SpinLock) -> None:
    with lock.lock():
        Page.alloc_page(GFP_ATOMIC).free()
        Page.alloc_page(GFP_NOWAIT).free()
        Page.alloc_page(gfp=Gfp.HIGH | Gfp.KSWAPD_RECLAIM).free()


def sleep_after_unlock(lock: SpinLock, m: Mutex) -> None:
    g = lock.lock()
    g.unlock()
    msleep(1)
    with lock.lock():
        pass
    m.lock().unlock()


def failed_try_lock_branch(lock: SpinLock) -> None:
    g = lock.try_lock()
    if g is None:
        msleep(1)
        return
    g.unlock()
    msleep(1)


def rcu_then_sleep() -> None:
    with rcu_read_lock() as r:
        r.unlock()
    msleep(1)


def mmput_async_in_spinlock(lock: SpinLock, mm: MmWithUser) -> None:
    user = mm.mmget_not_zero()
    if user is None:
        return
    a = user.into_mmput_async()
    with lock.lock():
        a.mmput()


def trylock_variant(lock: SpinLock, mapping: AddressSpace) -> None:
    with lock.lock():
        mapping.unmap_mapping_range_trylock(0, 4096)


def sleeping_is_fine_outside(mm: MmWithUser, mapping: AddressSpace) -> None:
    mm.mmap_read_lock().unlock()
    mapping.unmap_mapping_range(0, 4096)
    Page.alloc_page().free()


class Reclaimer:
    def __init__(self, lru: ListLru[Page], mm: MmWithUser) -> None:
        self.lru = lru
        self.mm = mm

    def scan(self) -> int:
        return self.lru.walk(self.isolate, 8)

    def isolate(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        """Unlock, do the sleeping work, relock: the legal shape of an isolate callback."""
        walk.isolate(page)
        user = self.mm.mmget_not_zero()
        if user is None:
            return LruStatus.SKIP
        walk.unlock()
        guard = user.mmap_read_lock()
        vma = guard.vma_lookup(0)
        if vma is not None:
            vma.zap_page_range_single(vma.start, 4096)
        guard.unlock()
        user.mmput()
        page.free()
        walk.relock()
        return LruStatus.REMOVED_RETRY


def lambda_that_does_not_sleep(lru: ListLru[Page]) -> int:
    return lru.walk(lambda page, walk: LruStatus.SKIP, 1)
