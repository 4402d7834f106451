"""A fatal report ends a concurrent run at the splat (src/safemm/model/runqueue.py
``Scheduler.fail``): the oopsed task unwinds without switch points or further reports."""

from __future__ import annotations

import pytest

from safemm import Kernel, KernelBug
from safemm.explore import explore, replay
from safemm.model.locking import Mutex
from safemm.model.printk import SplatKind
from tests.concurrency.race_rig import kernels


def oops_in_finally(k: Kernel) -> None:
    """Body 0 BUGs holding a mutex; its ``finally`` unlocks and reports again."""
    p, q = k.spawn(), k.spawn()
    m = Mutex("m")

    def bad() -> None:
        with k.enter(p.task, "test"):
            m.lock(k)
            try:
                k.report(SplatKind.BUG, "insert-pfnmap", "first", "test:first")
            finally:
                m.unlock(k)
                k.report(SplatKind.BUG, "leak", "second", "test:second")

    def other() -> None:
        with k.enter(q.task, "test"):
            m.lock(k)
            m.unlock(k)

    k.concurrently(bad, other)


def test_the_first_splat_is_the_failure_and_the_trace_ends_there() -> None:
    ex = explore(
        oops_in_finally, strategy="dfs", schedules=100, preemptions=2, kernel_factory=kernels()
    )
    assert ex.exhausted
    assert [f.contract for f in ex.failures] == ["insert-pfnmap"], ex.report()
    trace = ex.failures[0].trace.split("\n\n")[0]
    assert trace.splitlines()[-1].endswith("lock m")  # not the unlock in the finally
    with pytest.raises(KernelBug) as again:
        replay(oops_in_finally, ex.failures[0].schedule, kernel_factory=kernels())
    assert again.value.contract == "insert-pfnmap"
