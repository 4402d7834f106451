"""Race 3: ``vm_insert_page`` on a VMA without VM_MIXEDMAP under the mmap read lock (H1;
mm/memory.c ``vm_insert_page``, kernel/locking/rwsem.c ``down_read_trylock``).

Without VM_MIXEDMAP, ``vm_insert_page`` sets the flag itself, which needs the mmap write
lock; the kernel's only guard is ``BUG_ON(mmap_read_trylock(vma->vm_mm))``. With the read lock
held that trylock succeeds — unless a writer is queued, in which case it fails and the flag is
written under the read lock, racing with the writer: only lockdep's assertion in
``vm_flags_set`` (``mmap_assert_write_locked``) says anything. Which one happens depends on
whether a sibling thread's mmap/munmap queued for the write lock in time. Kernel-style code on
the raw model, with ``Kernel(strict=False)``; strict mode reports ``insert-needs-mixedmap`` in
every schedule. The correct driver sets VM_MIXEDMAP in ``->mmap`` (the safe layer has
``vm_insert_page`` only on a VM_MIXEDMAP VMA).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Kernel, KernelBug
from safemm.explore import explore, replay
from safemm.fs import File
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.page_alloc import GFP_KERNEL, PageKind
from safemm.model.vm_flags import VM_MIXEDMAP
from tests.concurrency.race_rig import World, kernels, setup
from tests.hazards.support import Buf, HazardDriver, P, raw_mm, state_of

RW = PROT_READ | PROT_WRITE
#: What the scenario saw at vm_insert_page: "BUG" (the trylock succeeded), or "flag write"
#: (it failed: VM_MIXEDMAP was set under the read lock while a writer was queued).
Outcomes = list[str]


def _insert_under_read_lock(file: File[Buf], outcomes: Outcomes) -> None:
    """The driver's ioctl: allocate a page, mmap read lock, vma_lookup, vm_insert_page."""
    mm = raw_mm(file)
    addr = state_of(file).base
    page = mm.kernel.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    try:
        raw_lock.mmap_read_lock(mm)
        try:
            vma = raw_lock.vma_lookup(mm, addr)
            assert vma is not None
            try:
                raw_mem.vm_insert_page(vma, addr, page)
            except KernelBug as bug:
                outcomes.append(f"BUG {bug.contract}")
                raise
            if not mm.kernel.strict:
                writer_queued = any(w.write for w in mm.mmap_lock.waiters)
                assert writer_queued and vma.vm_flags & VM_MIXEDMAP
                outcomes.append("flag write")
        finally:
            raw_lock.mmap_read_unlock(mm)
    finally:
        mm.kernel.pages.put_page(page)  # the PTE keeps its own reference


def _sibling(w: World) -> None:
    """The sibling thread maps and unmaps anonymous memory (each takes the write lock)."""
    addr = w.thread.mmap(None, P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    w.thread.munmap(addr, P)


def race3(outcomes: Outcomes, *, mixedmap: bool) -> Callable[[Kernel], None]:
    """The scenario: the ioctl against the sibling; ``mixedmap``: ->mmap set VM_MIXEDMAP
    (the correct driver)."""

    def scenario(kernel: Kernel) -> None:
        w = setup(kernel, HazardDriver("race3", mixedmap=mixedmap, insert=0))
        kernel.concurrently(
            lambda: w.ioctl(lambda f: _insert_under_read_lock(f, outcomes)), lambda: _sibling(w)
        )

    return scenario


def test_race3_sequential_linux_bugs_every_time() -> None:
    """Alone (no writer can be queued), Linux's BUG_ON fires: the sequential test of
    tests/hazards/test_h1_insert_without_mixedmap.py. With VM_MIXEDMAP set in ->mmap the
    insert is fine."""
    outcomes: Outcomes = []
    k = kernels(strict=False)()
    w = setup(k, HazardDriver("race3", mixedmap=False, insert=0))
    with pytest.raises(KernelBug) as bug:
        w.ioctl(lambda f: _insert_under_read_lock(f, outcomes))
    assert bug.value.contract == "insert-needs-mixedmap"
    k = kernels()()
    w = setup(k, HazardDriver("race3", mixedmap=True, insert=0))
    w.ioctl(lambda f: _insert_under_read_lock(f, outcomes))
    _sibling(w)
    assert outcomes == ["BUG insert-needs-mixedmap"]
    assert k.dmesg == []


def test_race3_explorer_reaches_both_outcomes_in_linux_mode() -> None:
    """strict=False, panic_on_warn off (a production kernel that only logs lockdep): random
    schedules reach both the BUG and the unsynchronised flag write (reported only by
    lockdep's mmap_assert_write_locked); each failure's token replays it."""
    outcomes: Outcomes = []
    linux = kernels(strict=False, panic_on_warn=False)
    scenario = race3(outcomes, mixedmap=False)
    ex = explore(scenario, strategy="random", schedules=200, kernel_factory=linux)
    assert set(outcomes) == {"BUG insert-needs-mixedmap", "flag write"}, outcomes
    by_contract = {f.contract: f for f in ex.failures}
    assert set(by_contract) == {"insert-needs-mixedmap", "mmap-write-lock-held"}, ex.report()
    assert "<-- preempted" in by_contract["mmap-write-lock-held"].trace
    for contract, f in by_contract.items():
        with pytest.raises(Exception) as again:
            replay(scenario, f.schedule, kernel_factory=linux)
        assert getattr(again.value, "contract", None) == contract


def test_race3_strict_reports_in_every_schedule() -> None:
    """strict=True: every schedule within 2 preemptions reports insert-needs-mixedmap,
    whether or not a writer is queued."""
    outcomes: Outcomes = []
    ex = explore(
        race3(outcomes, mixedmap=False), strategy="dfs", schedules=5000, kernel_factory=kernels()
    )
    assert ex.exhausted
    assert [f.contract for f in ex.failures] == ["insert-needs-mixedmap"]
    assert outcomes == ["BUG insert-needs-mixedmap"] * ex.schedules_run


def test_race3_mixedmap_in_mmap_passes_dfs() -> None:
    """The correct driver (VM_MIXEDMAP set in ->mmap): every schedule within 2 preemptions,
    strict mode, nothing reported."""
    outcomes: Outcomes = []
    ex = explore(
        race3(outcomes, mixedmap=True), strategy="dfs", schedules=5000, kernel_factory=kernels()
    )
    assert ex.exhausted and ex.ok, ex.report()
    assert ex.schedules_run > 50 and not outcomes
