"""Scheduling while atomic on a kernel without ``panic_on_warn``, and the RCU read-side
section it silently ends (review, Jann Horn: "the scheduler will print a 'scheduling while
atomic' error message and then try to recover from that situation by resetting the
preempt_count and scheduling anyway. I think that theoretically breaks the RCU read-side
critical sections normally implied by spinlocks").

kernel/sched/core.c: ``__might_resched`` prints "BUG: sleeping function called from invalid
context" (CONFIG_DEBUG_ATOMIC_SLEEP); ``schedule_debug`` → ``__schedule_bug`` prints "BUG:
scheduling while atomic", and the scheduler resets the preempt count and switches anyway. The
context switch is a quiescent state: a grace period can end while the sleeper still holds its
spinlock and an RCU-protected pointer; ``kfree_rcu`` frees the object, and the sleeper's next
use is a use-after-free (mm/kasan/report.c). The preempt count is fixed up on the return to
user space. All of it is the kernel's own reporting (debug builds): strict mode adds nothing.
With ``panic_on_warn`` the first report raises.
The types cannot say "may sleep", but ``safemm check`` reports the sleeping call statically
(tests/atomic/reject/a7_h5_twins.py); the
correct driver copies what it needs and sleeps after unlocking.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm.fs import File
from safemm.rcu import RcuPointer, RcuRef, rcu_read_lock
from safemm.sync import SpinLock
from safemm.task import msleep
from safemm.testing import SplatKind, expect_splat

from .support import Buf, Rig, contracts, doc_splat


class Config:
    """A driver's RCU-protected configuration."""

    def __init__(self, generation: int) -> None:
        self.generation = generation


class Reader:
    """Driver state: a spinlock and an RCU-protected config; what the reader saw."""

    def __init__(self) -> None:
        self.lock = SpinLock("cfgdrv.lock")
        self.config: RcuPointer[Config] | None = None
        self.seen: list[int] = []
        self.preempt_after_sleep: list[int] = []
        self.locked_after_sleep: list[bool] = []


def _reader(reader: Reader, rig: Rig, *, sleep_inside: bool) -> Callable[[File[Buf]], object]:
    """The driver's ioctl: read the config under the spinlock; meanwhile another CPU
    publishes a new one and frees the old with kfree_rcu; sleep (inside the lock: the bug);
    use the config."""

    def action(file: File[Buf]) -> object:
        reader.config = RcuPointer("cfgdrv.config", Config(1))
        config = reader.config
        guard = reader.lock.lock()  # preemption off: an implied RCU read-side section
        cfg: RcuRef[Config] = config.read()
        config.replace(Config(2))  # CPU 1: rcu_assign_pointer + kfree_rcu(old)
        if sleep_inside:
            msleep(10)  # the bug: sleeping with the spinlock held
            reader.preempt_after_sleep.append(rig.kernel.current.preempt_count)
            reader.locked_after_sleep.append(guard.locked)
            reader.seen.append(cfg.get().generation)  # the use after the sleep
            guard.unlock()
        else:
            generation = cfg.get().generation  # used inside the section only
            guard.unlock()
            msleep(10)  # fine: preemptible again
            reader.seen.append(generation)
        return None

    return action


@doc_splat("sched-atomic")
def demo_sched_atomic() -> str:
    """All three reports, on a kernel without panic_on_warn."""
    rig = Rig(panic_on_warn=False)
    reader = Reader()
    rig.run(_reader(reader, rig, sleep_inside=True))
    return "\n".join(rig.kernel.dmesg)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_sched_atomic_ends_the_rcu_section_and_the_object_is_freed(strict: bool) -> None:
    """Scheduling while atomic (__schedule_bug, then the recovery): without panic_on_warn the
    kernel prints might-sleep and schedule-atomic, resets the preempt count (the spinlock is
    still held, but no longer keeps RCU readers safe), the grace period ends, kfree_rcu frees
    the old config, and the driver's next use is a KASAN use-after-free. The count is fixed up
    on the return to user space. Same in both modes (kernel debug checks)."""
    rig = Rig(strict=strict, panic_on_warn=False)
    reader = Reader()
    rig.run(_reader(reader, rig, sleep_inside=True))
    assert contracts(rig.kernel) == ["might-sleep", "schedule-atomic", "use-after-free"]
    titles = [line.splitlines()[1] for line in rig.kernel.dmesg]
    assert titles[0].startswith("BUG: sleeping function called from invalid context")
    assert titles[1].startswith("BUG: scheduling while atomic: victim/1/0x00000001")
    assert titles[2] == "BUG: KASAN: slab-use-after-free in rcu_dereference"
    assert reader.preempt_after_sleep == [0]
    assert reader.locked_after_sleep == [True]
    assert reader.seen == [1]  # the stale contents, read from freed memory
    task = rig.proc.task
    assert task.preempt_count == 0
    assert not task.preempt_reset
    rig.finish()


def test_sched_atomic_panic_on_warn_raises_at_the_first_report() -> None:
    """With panic_on_warn, the might-sleep report raises: the sleep never happens, no grace
    period ends, the object is not freed."""
    rig = Rig()
    reader = Reader()
    with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP):
        rig.run(_reader(reader, rig, sleep_inside=True))
    assert contracts(rig.kernel) == ["might-sleep"]
    assert reader.seen == []


def test_sched_correct_driver_sleeps_after_unlocking() -> None:
    """The correct driver uses the RCU-protected config only inside its read-side section and
    sleeps after the unlock: no report, and the old config is freed only after the reader
    let go of it."""
    rig = Rig()
    reader = Reader()
    rig.run(_reader(reader, rig, sleep_inside=False))
    assert reader.seen == [1]
    assert rig.kernel.dmesg == []
    rig.finish()


def test_sched_explicit_rcu_read_lock_sleep() -> None:
    """Sleeping inside an explicit rcu_read_lock section is the might-sleep report too (the
    RCU nest depth), in both modes."""
    for strict in (True, False):
        rig = Rig(strict=strict)

        def action(file: File[Buf]) -> object:
            with rcu_read_lock():
                msleep(1)
            return None

        with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP) as exc:
            rig.run(action)
        assert "RCU nest depth: 1" in str(exc.error)
        rig.finish()
