"""Race 1: a driver re-locks and inserts at a remembered address without ``check_vma``
(review: "a different VMA at the same address"; mm/memory.c ``vm_insert_page``).

The driver proves its VMA is its own (``check_vma``) under the mmap read lock, remembers the
address, drops the lock to allocate a page (``alloc_page`` may sleep: nothing may be held),
takes the mmap write lock again, looks the VMA up at the remembered address and inserts —
trusting whatever VMA sits there now. Run alone it works. A sibling thread that unmaps the
driver's mapping and maps anonymous memory at the same address while the lock is dropped
makes the driver insert its page into the user's anonymous VMA: strict mode reports
``foreign-vma``. The correct driver proves ownership again after re-locking.
"""

from __future__ import annotations

import errno

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelError,
    KernelWarning,
)
from safemm.explore import explore, replay
from safemm.fs import File
from safemm.page import Page
from tests.concurrency.race_rig import World, kernels, setup
from tests.hazards.support import BASE, NPAGES, Buf, HazardDriver, P, state_of, user_of

RW = PROT_READ | PROT_WRITE


def _own_address(driver: HazardDriver, file: File[Buf], index: int) -> int:
    """Under the mmap read lock: the address of page ``index`` in this file's own VMA."""
    state = state_of(file)
    user = user_of(file)
    try:
        with user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(state.base)
            mine = None if vma is None else driver.vm_ops.check_vma(vma, state)
            if mine is None:
                raise KernelError(errno.ESRCH, "the mapping is gone")
            return mine.start + index * P
    finally:
        user.mmput()


def _new_page(file: File[Buf]) -> Page:
    """Allocate (may sleep) and fill the page to insert; the file's state owns it."""
    page = Page.alloc_page()
    page.write(0, b"driver data")
    state_of(file).pages.append(page)
    return page


def insert_after_relock_broken(driver: HazardDriver, file: File[Buf], index: int) -> None:
    """Broken: re-lock, look up at the remembered address and insert into whatever is
    there (set_mixedmap under the write lock, the v6 cover letter's flow)."""
    addr = _own_address(driver, file, index)
    page = _new_page(file)  # the mmap lock is not held here
    user = user_of(file)
    try:
        with user.mmap_write_lock() as guard:
            vma = guard.vma_lookup(addr)
            if vma is None:
                raise KernelError(errno.ESRCH, f"no VMA at {addr:#x}")
            vma.set_mixedmap().vm_insert_page(addr, page)
    finally:
        user.mmput()


def insert_after_relock_checked(driver: HazardDriver, file: File[Buf], index: int) -> None:
    """Correct: after re-locking, prove again that the VMA at ``addr`` is this file's own
    (``check_vma``) and still maps page ``index`` there; ESRCH otherwise."""
    state = state_of(file)
    addr = _own_address(driver, file, index)
    page = _new_page(file)
    user = user_of(file)
    try:
        with user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(addr)
            mine = None if vma is None else driver.vm_ops.check_vma(vma, state)
            if mine is None or mine.pgoff + (addr - mine.start) // P != index:
                raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not this file's")
            mixed = mine.as_mixedmap_vma()
            if mixed is None:
                raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not VM_MIXEDMAP")
            mixed.vm_insert_page(addr, page)
    finally:
        user.mmput()


def _world(kernel: Kernel) -> World:
    return setup(kernel, HazardDriver("race1", insert=0))


def _replace(w: World) -> None:
    """The sibling thread: unmap the driver's mapping, map anonymous memory there."""
    w.thread.munmap(BASE, NPAGES * P)
    w.thread.mmap(BASE, NPAGES * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)


def race1_broken(kernel: Kernel) -> None:
    """The broken driver's ioctl against the sibling's munmap + mmap."""
    w = _world(kernel)
    kernel.concurrently(
        lambda: w.ioctl(lambda f: insert_after_relock_broken(w.driver, f, 1)),
        lambda: _replace(w),
    )


def race1_checked(kernel: Kernel) -> None:
    """The correct driver's ioctl against the same sibling."""
    w = _world(kernel)
    kernel.concurrently(
        lambda: w.ioctl(lambda f: insert_after_relock_checked(w.driver, f, 1)),
        lambda: _replace(w),
    )


@pytest.mark.parametrize("which", ["broken", "checked"])
def test_race1_sequential_both_drivers_insert_their_page(which: str) -> None:
    """Run one after the other, both drivers insert into their own VMA and nothing is
    reported; after the sibling replaced the mapping, both refuse (ESRCH at the first
    look-up)."""
    k = kernels()()
    w = _world(k)
    fn = insert_after_relock_broken if which == "broken" else insert_after_relock_checked
    w.ioctl(lambda f: fn(w.driver, f, 1))
    assert w.proc.read(BASE + P, 11) == b"driver data"
    _replace(w)
    with pytest.raises(KernelError) as err:
        w.ioctl(lambda f: fn(w.driver, f, 1))
    assert err.value.errno == errno.ESRCH
    assert k.dmesg == []
    w.proc.exit()
    k.check_invariants()


def test_race1_explorer_finds_the_foreign_insert() -> None:
    """PCT, told nothing about where to switch, finds the schedule where the sibling
    replaces the mapping while the lock is dropped; the token replays it."""
    ex = explore(race1_broken, strategy="pct", schedules=300, kernel_factory=kernels())
    assert [f.contract for f in ex.failures] == ["foreign-vma"], ex.report()
    f = ex.failures[0]
    assert isinstance(f.error, KernelWarning)
    assert "a different VMA now sits at that address" in str(f.error)
    assert "<-- preempted" in f.trace
    with pytest.raises(KernelWarning) as again:
        replay(race1_broken, f.schedule, kernel_factory=kernels())
    assert again.value.contract == "foreign-vma"


def test_race1_checked_driver_passes_dfs() -> None:
    """The correct driver: every schedule with at most 2 preemptions, nothing reported."""
    ex = explore(
        race1_checked, strategy="dfs", schedules=5000, preemptions=2, kernel_factory=kernels()
    )
    assert ex.exhausted and ex.ok, ex.report()
    assert ex.schedules_run > 100
