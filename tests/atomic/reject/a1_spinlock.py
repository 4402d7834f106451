"""Sleeping under a SpinLock: a ``with`` block, a live guard, after a successful try_lock;
every sleeping call of the safe layer, directly. One sleeping call per marked line."""

from __future__ import annotations

from safemm.fs import AddressSpace
from safemm.mm import MmapWriteGuard, MmWithUser, OwnedMmWithUser
from safemm.page import GFP_KERNEL, Gfp, Page
from safemm.sync import Mutex, SpinLock
from safemm.task import msleep
from safemm.virt import VmAreaRef


def mutex_in_with(lock: SpinLock, m: Mutex) -> None:
    with lock.lock():
        m.lock().unlock()  # atomic: atomic-sleep


def mmap_read_lock_live_guard(lock: SpinLock, mm: MmWithUser) -> None:
    g = lock.lock()
    mm.mmap_read_lock().unlock()  # atomic: atomic-sleep
    g.unlock()


def mmap_write_lock(lock: SpinLock, mm: MmWithUser) -> None:
    with lock.lock():
        mm.mmap_write_lock().unlock()  # atomic: atomic-sleep


def mmput(lock: SpinLock, mm: OwnedMmWithUser) -> None:
    with lock.lock():
        mm.mmput()  # atomic: atomic-sleep


def write_guard_lookup(lock: SpinLock, guard: MmapWriteGuard) -> None:
    with lock.lock():
        guard.vma_lookup(0)  # atomic: atomic-sleep


def alloc_default(lock: SpinLock) -> None:
    with lock.lock():
        Page.alloc_page().free()  # atomic: atomic-sleep


def alloc_kernel(lock: SpinLock) -> None:
    with lock.lock():
        Page.alloc_page(GFP_KERNEL).free()  # atomic: atomic-sleep


def alloc_reclaim_flag(lock: SpinLock) -> None:
    with lock.lock():
        Page.alloc_page(Gfp.DIRECT_RECLAIM | Gfp.IO).free()  # atomic: atomic-sleep


def alloc_not_constant(lock: SpinLock, gfp: Gfp) -> None:
    with lock.lock():
        Page.alloc_page(gfp).free()  # atomic: atomic-sleep


def unmap_mapping_range(lock: SpinLock, mapping: AddressSpace) -> None:
    with lock.lock():
        mapping.unmap_mapping_range(0, 4096)  # atomic: atomic-sleep


def zap(lock: SpinLock, vma: VmAreaRef) -> None:
    with lock.lock():
        vma.zap_page_range_single(vma.start, 4096)  # atomic: atomic-sleep


def sleep(lock: SpinLock) -> None:
    with lock.lock():
        msleep(1)  # atomic: atomic-sleep


def after_try_lock(lock: SpinLock) -> None:
    g = lock.try_lock()
    if g is None:
        return
    msleep(1)  # atomic: atomic-sleep
    g.unlock()


def inside_try_lock_branch(lock: SpinLock) -> None:
    g = lock.try_lock()
    if g is not None:
        msleep(1)  # atomic: atomic-sleep
        g.unlock()


def with_named_guard(lock: SpinLock) -> None:
    g = lock.lock()
    with g:
        msleep(1)  # atomic: atomic-sleep


def nested_spinlocks(a: SpinLock, b: SpinLock) -> None:
    with a.lock(), b.lock():
        msleep(1)  # atomic: atomic-sleep


def held_on_one_path(lock: SpinLock, flag: bool) -> None:
    g = lock.lock()
    if flag:
        g.unlock()
    msleep(1)  # atomic: atomic-sleep


def in_a_loop(lock: SpinLock, n: int) -> None:
    with lock.lock():
        for _ in range(n):
            msleep(1)  # atomic: atomic-sleep


def in_finally(lock: SpinLock) -> None:
    g = lock.lock()
    try:
        pass
    finally:
        msleep(1)  # atomic: atomic-sleep
        g.unlock()
