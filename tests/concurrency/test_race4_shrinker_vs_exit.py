"""Race 4: a shrinker racing with process exit (kernel/fork.c ``mmget_not_zero``,
``mmput_async``; mm/vmscan.c ``shrink_slab``).

A C-style shrinker (binder's ``binder_alloc_free_page``) keeps the process's ``mm_struct``
with ``mmgrab`` — which pins the struct, not the address space — and, to zap a page, takes a
user reference with ``mmget_not_zero``, ``mmap_read_trylock``, looks its VMA up and zaps, then
``mmput_async``. When the process exits first, ``mm_users`` is 0, ``mmget_not_zero`` fails and
the address space is already torn down. The broken shrinker ignores the result and goes on:
strict mode reports ``mm-users`` (the mmap lock of an mm whose ``mm_users`` is 0); had it got
that far, its ``mmput_async`` would underflow ``mm_users``. Run before the exit, it works. The
correct shrinker returns when ``mmget_not_zero`` fails.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm import Kernel, KernelWarning
from safemm.explore import explore, replay
from safemm.model import fork as raw_fork
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.mm_types import MmStruct
from safemm.model.shrinker import SHRINK_STOP, ShrinkControl, Shrinker
from tests.concurrency.race_rig import World, kernels, setup
from tests.hazards.support import BASE, Buf, HazardDriver, P

Scans = list[str]


class ZapShrinker:
    """The driver's shrinker: zap the first page of the mapping at BASE in the mm it grabbed.

    Invariant: holds an ``mm_count`` reference on ``mm`` until :meth:`free`.
    """

    def __init__(self, kernel: Kernel, driver: HazardDriver, mm: MmStruct, *, check: bool):
        self.kernel = kernel
        self.mm = mm
        self.check = check
        self.scans: Scans = []
        raw_fork.mmgrab(mm)
        self.raw = Shrinker("race4", self.count, self.scan, owner=driver)
        kernel.register_shrinker(self.raw)

    def count(self, sc: ShrinkControl) -> int:
        return 1

    def scan(self, sc: ShrinkControl) -> int:
        mm = self.mm
        got = raw_fork.mmget_not_zero(mm)
        self.scans.append("mm" if got else "no mm")
        if not got and self.check:
            return SHRINK_STOP  # the process exited: nothing of ours is mapped any more
        try:
            if not raw_lock.mmap_read_trylock(mm):
                return SHRINK_STOP
            try:
                vma = raw_lock.vma_lookup(mm, BASE)
                if vma is None or not isinstance(vma.vm_private_data, Buf):
                    return 0
                raw_mem.zap_page_range_single(vma, BASE, P)
            finally:
                raw_lock.mmap_read_unlock(mm)
        finally:
            raw_fork.mmput_async(mm)  # reclaim must not sleep in __mmput
        return 1

    def free(self) -> None:
        """``shrinker_free`` and drop the mm."""
        self.kernel.unregister_shrinker(self.raw)
        raw_fork.mmdrop(self.mm)


def _world(kernel: Kernel, check: bool) -> tuple[World, ZapShrinker]:
    w = setup(kernel, HazardDriver("race4"))
    w.thread.exit()  # a single-threaded process: its exit drops the last mm_users
    return w, ZapShrinker(kernel, w.driver, w.proc.mm, check=check)


def race4(scans: Scans, *, check: bool) -> Callable[[Kernel], None]:
    """kswapd runs the shrinker while the process exits."""

    def scenario(kernel: Kernel) -> None:
        w, shrinker = _world(kernel, check)
        try:
            kernel.concurrently(kernel.shrink, w.proc.exit)
        finally:
            scans.extend(shrinker.scans)
        shrinker.free()
        kernel.check_invariants()

    return scenario


@pytest.mark.parametrize("check", [False, True], ids=["ignores", "checks"])
def test_race4_sequential_shrink_then_exit(check: bool) -> None:
    """Before the exit, both shrinkers get the mm and zap page 0; nothing is reported."""
    k = kernels()()
    w, shrinker = _world(k, check)
    assert w.proc.mm.pgtables.lookup(BASE // P) is not None
    assert k.shrink() == 1
    assert w.proc.mm.pgtables.lookup(BASE // P) is None
    w.proc.exit()
    shrinker.free()
    assert shrinker.scans == ["mm"] and k.dmesg == []
    k.check_invariants()


def test_race4_explorer_finds_the_ignored_mmget_not_zero() -> None:
    """PCT finds the schedules where the exit wins; the shrinker that ignores the failed
    mmget_not_zero is reported (mm-users); the token replays it."""
    scans: Scans = []
    scenario = race4(scans, check=False)
    ex = explore(scenario, strategy="pct", schedules=100, kernel_factory=kernels())
    assert {"mm", "no mm"} <= set(scans)
    assert [f.contract for f in ex.failures] == ["mm-users"], ex.report()
    assert "do_exit" in ex.failures[0].trace
    with pytest.raises(KernelWarning) as again:
        replay(scenario, ex.failures[0].schedule, kernel_factory=kernels())
    assert again.value.contract == "mm-users"


def test_race4_checking_shrinker_passes_dfs() -> None:
    """The correct shrinker: every schedule within 2 preemptions — both outcomes of
    mmget_not_zero among them — nothing reported, every model invariant holds."""
    scans: Scans = []
    ex = explore(
        race4(scans, check=True), strategy="dfs", schedules=5000, kernel_factory=kernels()
    )
    assert ex.exhausted and ex.ok, ex.report()
    assert {"mm", "no mm"} <= set(scans)
