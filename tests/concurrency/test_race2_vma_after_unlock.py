"""Race 2: a VMA pointer used after the lock that covered it was dropped, while a sibling
thread unmaps (H12; include/linux/mmap_lock.h ``vma_assert_locked``, mm/vma.c
``vms_gather_munmap_vmas`` / ``vms_complete_munmap_vmas``).

Kernel-style code on the raw model (C binder's cached ``alloc->vma``): the driver looks its
VMA up under the mmap read lock, drops the lock to allocate a page (``alloc_page`` may sleep),
takes the read lock again and inserts through the ``struct vm_area_struct *`` it kept. Run
alone it works. If a sibling thread's munmap runs while the lock is dropped — or while munmap
has downgraded to the read lock, after it detached the VMA — the pointer names a detached VMA:
strict mode reports ``vma-attached`` (Linux would insert into a freed VMA's range). The
correct driver looks the VMA up again under the lock and checks it is still its own. (On the
safe layer the kept handle raises StaleReferenceError as soon as its guard ends, in every
schedule: tests/hazards/test_h12_stale_vma.py.)
"""

from __future__ import annotations

import errno

import pytest

from safemm import Kernel, KernelError, KernelWarning
from safemm.explore import explore, replay
from safemm.fs import File
from safemm.model import fork as raw_fork
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.mm_types import MmStruct, Vma
from safemm.model.page_alloc import GFP_KERNEL, PageKind
from tests.concurrency.race_rig import World, kernels, setup
from tests.hazards.support import BASE, NPAGES, Buf, HazardDriver, P, raw_mm, state_of

#: The page the ioctl inserts (``->mmap`` inserted page 0 only).
INDEX = 1


def _own_vma(mm: MmStruct, file: File[Buf], addr: int) -> Vma:
    """``vma_lookup`` plus the ownership check (its private data is this file's state);
    the caller holds the mmap lock. ESRCH if the VMA at ``addr`` is not this file's."""
    vma = raw_lock.vma_lookup(mm, addr)
    if vma is None or vma.vm_private_data is not state_of(file):
        raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not this file's")
    return vma


def _insert(file: File[Buf], *, lookup_again: bool) -> None:
    """The ioctl: find the VMA, drop the lock to allocate, re-lock, insert page INDEX —
    through the kept pointer (broken) or a fresh, checked look-up (correct)."""
    mm = raw_mm(file)
    addr = state_of(file).base + INDEX * P
    if not raw_fork.mmget_not_zero(mm):
        raise KernelError(errno.ESRCH, "the process has exited")
    try:
        raw_lock.mmap_read_lock(mm)
        try:
            vma = _own_vma(mm, file, addr)
        finally:
            raw_lock.mmap_read_unlock(mm)
        page = mm.kernel.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)  # may sleep
        try:
            raw_lock.mmap_read_lock(mm)
            try:
                if lookup_again:
                    vma = _own_vma(mm, file, addr)
                raw_mem.vm_insert_page(vma, addr, page)
            finally:
                raw_lock.mmap_read_unlock(mm)
        finally:
            mm.kernel.pages.put_page(page)  # the PTE keeps its own reference
    finally:
        raw_fork.mmput(mm)


def _world(kernel: Kernel) -> World:
    return setup(kernel, HazardDriver("race2"))


def race2_kept_pointer(kernel: Kernel) -> None:
    """The broken driver's ioctl against the sibling's munmap."""
    w = _world(kernel)
    kernel.concurrently(
        lambda: w.ioctl(lambda f: _insert(f, lookup_again=False)),
        lambda: w.thread.munmap(BASE, NPAGES * P),
    )


def race2_lookup_again(kernel: Kernel) -> None:
    """The correct driver's ioctl against the same munmap."""
    w = _world(kernel)
    kernel.concurrently(
        lambda: w.ioctl(lambda f: _insert(f, lookup_again=True)),
        lambda: w.thread.munmap(BASE, NPAGES * P),
    )


@pytest.mark.parametrize("lookup_again", [False, True], ids=["kept-pointer", "lookup-again"])
def test_race2_sequential_both_drivers_insert(lookup_again: bool) -> None:
    """One after the other, both drivers insert page INDEX and nothing is reported; after
    the munmap both refuse with ESRCH."""
    k = kernels()()
    w = _world(k)
    w.ioctl(lambda f: _insert(f, lookup_again=lookup_again))
    assert w.proc.mm.pgtables.lookup((BASE + INDEX * P) // P) is not None
    w.thread.munmap(BASE, NPAGES * P)
    with pytest.raises(KernelError) as err:
        w.ioctl(lambda f: _insert(f, lookup_again=lookup_again))
    assert err.value.errno == errno.ESRCH
    assert k.dmesg == []
    w.proc.exit()
    k.check_invariants()


def test_race2_explorer_finds_the_detached_vma() -> None:
    """PCT, told nothing about where to switch, finds munmap detaching the VMA while the
    driver's lock is dropped; strict mode reports vma-attached; the token replays it."""
    ex = explore(race2_kept_pointer, strategy="pct", schedules=300, kernel_factory=kernels())
    assert [f.contract for f in ex.failures] == ["vma-attached"], ex.report()
    f = ex.failures[0]
    assert "<-- preempted" in f.trace and "sys_munmap" in f.trace
    with pytest.raises(KernelWarning) as again:
        replay(race2_kept_pointer, f.schedule, kernel_factory=kernels())
    assert again.value.contract == "vma-attached"


def test_race2_lookup_again_passes_dfs() -> None:
    """The correct driver: every schedule with at most 2 preemptions, nothing reported."""
    ex = explore(
        race2_lookup_again, strategy="dfs", schedules=5000, preemptions=2, kernel_factory=kernels()
    )
    assert ex.exhausted and ex.ok, ex.report()
    assert ex.schedules_run > 100
