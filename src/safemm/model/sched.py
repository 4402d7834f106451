"""Tasks and execution context: ``current``, preemption, RCU read side, ``might_sleep``.

Mirrors kernel/sched/core.c (``__might_resched``, ``schedule_debug``/``__schedule_bug``) and
the bookkeeping of include/linux/preempt.h and include/linux/rcupdate.h that the checks read.

Outside :meth:`Kernel.concurrently` one task runs at a time, each syscall (or kernel-thread
work item) to completion: "sleeping" is then only ever *reported* (``might_sleep``), and an
operation that would block on something no other task can release is a deadlock. Inside it,
``might_sleep`` and ``schedule`` are switch points of the run queue
(:mod:`safemm.model.runqueue`), where another task may run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import override

from . import atomic as _marks
from .printk import SplatKind
from .runqueue import SwitchKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from .kernel import Kernel
    from .locking import HeldLock
    from .mm_types import MmStruct
    from .runqueue import Context

__all__ = ["Task", "msleep"]

#: Task flag: the task is in memory reclaim (include/linux/sched.h PF_MEMALLOC).
PF_MEMALLOC = 0x00000800
#: Task flag: kernel thread.
PF_KTHREAD = 0x00200000


class Task:
    """A ``task_struct``: what the checks need to know about whoever is running.

    Invariant: ``preempt_count`` counts the spinlocks (and explicit preempt_disable) held;
    ``rcu_depth`` counts nested ``rcu_read_lock``; ``held_locks`` is lockdep's stack of held
    locks, innermost last.
    """

    __slots__ = (
        "comm",
        "ctx",
        "flags",
        "held_locks",
        "irqs_disabled",
        "kernel",
        "mm",
        "nosleep",
        "pid",
        "preempt_count",
        "preempt_reset",
        "rcu_depth",
    )

    def __init__(self, kernel: Kernel, pid: int, comm: str, flags: int = 0) -> None:
        self.kernel = kernel
        self.pid = pid
        self.comm = comm
        self.mm: MmStruct | None = None
        self.flags = flags
        self.preempt_count = 0
        self.rcu_depth = 0
        self.irqs_disabled = False
        #: Why this task must not sleep although it is not atomic (a ``release_folio`` called
        #: with a gfp mask without ``__GFP_DIRECT_RECLAIM``), or None. Strict mode only.
        self.nosleep: str | None = None
        #: Set when ``__schedule_bug`` reset the preempt count under held spinlocks; their
        #: unlocks then no longer decrement it (the kernel fixes it up on return to user).
        self.preempt_reset = False
        self.held_locks: list[HeldLock] = []
        #: The :class:`~safemm.model.runqueue.Context` running this task inside
        #: ``Kernel.concurrently`` (None outside, or while the task is in user space).
        self.ctx: Context | None = None

    def in_atomic(self) -> bool:
        """Whether sleeping is forbidden here (``preemptible()`` is false or RCU is held)."""
        return self.preempt_count > 0 or self.rcu_depth > 0 or self.irqs_disabled

    @override
    def __repr__(self) -> str:
        return f"<Task {self.comm}:{self.pid}>"


def might_sleep(kernel: Kernel, where: str, *, switch: bool = True) -> None:
    """``might_sleep()``: report a sleeping operation in atomic context.

    Inside ``Kernel.concurrently`` it is also a switch point (``switch=False`` for callers
    that make their own, such as a lock naming itself).

    Mirrors kernel/sched/core.c ``__might_resched``: prints "BUG: sleeping function called
    from invalid context" when preempt_count, the RCU nest depth or disabled interrupts say the
    caller cannot sleep, naming the marked safe-layer call on the stack
    (``safemm.model.atomic.sleeping_call``) and its fix. Like the kernel
    (CONFIG_DEBUG_ATOMIC_SLEEP) it only reports; the report raises :class:`KernelWarning` when
    ``panic_on_warn`` is on.
    """
    if _marks.audit is not None:
        _marks.audit(where)
    t = kernel.current
    if t.preempt_count or t.rcu_depth or t.irqs_disabled:
        held = ", ".join(h.lock.name for h in t.held_locks) or "none"
        # The marked safe-layer call that got here (the mark ``safemm check`` reads too).
        mark = _marks.sleeping_call()
        call = f"; sleeping call: {mark.name}() ({mark.fix})" if mark is not None else ""
        kernel.report(
            SplatKind.MIGHT_SLEEP,
            "might-sleep",
            f"in_atomic(): {int(t.preempt_count > 0)}, irqs_disabled(): "
            f"{int(t.irqs_disabled)}, pid: {t.pid}, name: {t.comm}; preempt_count: "
            f"{t.preempt_count}, expected: 0; RCU nest depth: {t.rcu_depth}, expected: 0; "
            f"locks held: {held}{call}",
            where,
        )
    elif t.nosleep is not None and kernel.strict:
        kernel.report(
            SplatKind.STRICT,
            "release-folio-gfp",
            f"{t.comm}/{t.pid} may sleep at {where} inside {t.nosleep}: the caller's gfp mask "
            "says this hook must not block (it may hold locks reclaim would wait on)",
            where,
        )
    if switch and kernel._sched is not None and not t.in_atomic():
        kernel._sched.point(SwitchKind.MIGHT_SLEEP, where.rsplit(":", 1)[-1])


def schedule(kernel: Kernel, where: str) -> None:
    """The current task really sleeps (``schedule()``), e.g. in ``msleep`` or reclaim.

    Mirrors kernel/sched/core.c ``schedule_debug``: in atomic context it prints "BUG: scheduling
    while atomic" and, when that does not panic, *recovers* the way the kernel does — it resets
    the preempt count and schedules anyway. The context switch is an RCU quiescent state, so a
    grace period can now end under code that still believes its spinlock keeps it inside an
    RCU read-side critical section (review, Jann Horn). The model lets that grace period end and
    runs the RCU callbacks, so a use of an object they freed is caught.
    """
    t = kernel.current
    if t.preempt_count > 0:
        count = t.preempt_count
        kernel.report(
            SplatKind.SCHED_ATOMIC,
            "schedule-atomic",
            f"{t.comm}/{t.pid}/0x{count:08x} slept with preempt_count {count}; the kernel "
            "resets the count and schedules anyway, ending the RCU read-side section the "
            "spinlock implied",
            where,
            title=f"BUG: scheduling while atomic: {t.comm}/{t.pid}/0x{count:08x}",
        )
        t.preempt_count = 0
        t.preempt_reset = True
    kernel.rcu.note_context_switch()
    if kernel._sched is not None:
        kernel._sched.point(SwitchKind.SCHEDULE, where.rsplit(":", 1)[-1])


def msleep(kernel: Kernel, msecs: int, where: str = "kernel/time/sleep_timeout.c:msleep") -> None:
    """``msleep()``: the current task sleeps for ``msecs`` milliseconds.

    ``might_sleep()`` first (the DEBUG_ATOMIC_SLEEP report), then a real ``schedule()`` —
    which, in atomic context and without ``panic_on_warn``, prints "scheduling while atomic",
    resets the preempt count and lets an RCU grace period end (see ``schedule()``). The
    model has no clock: the time itself passes instantly.
    """
    if msecs < 0:
        raise ValueError(f"msleep: negative time {msecs}")
    might_sleep(kernel, where)
    schedule(kernel, where)


class Rcu:
    """RCU: read-side sections, ``call_rcu`` callbacks and grace periods.

    Mirrors the semantics (not the implementation) of kernel/rcu/tree.c: a grace period ends
    only when no task is inside a read-side critical section, explicit (``rcu_read_lock``) or
    implied by disabled preemption (a held spinlock). Grace periods are driven at quiescent
    points: a context switch (``schedule()``, and every switch between tasks inside
    ``Kernel.concurrently``), ``synchronize_rcu`` and the return to user space.

    Simplification: a grace period waits until no task at all is a reader, not only the
    readers that began before ``call_rcu`` — later, never earlier, than the kernel's.
    """

    __slots__ = ("_callbacks", "kernel")

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._callbacks: list[Callable[[], None]] = []

    def read_lock(self) -> None:
        """``rcu_read_lock()``."""
        self.kernel.current.rcu_depth += 1

    def read_unlock(self) -> None:
        """``rcu_read_unlock()``; an unbalanced unlock is a WARN."""
        t = self.kernel.current
        if t.rcu_depth <= 0:
            self.kernel.report(
                SplatKind.WARNING,
                "unlock-balance",
                "rcu_read_unlock() without rcu_read_lock()",
                "include/linux/rcupdate.h:rcu_read_unlock",
            )
            return
        t.rcu_depth -= 1
        s = self.kernel._sched
        if s is not None and not t.rcu_depth:
            s.wake_up_var(self)  # a synchronize_rcu may be waiting for this reader
            s.point(SwitchKind.RCU_UNLOCK, "rcu_read_unlock")

    def call_rcu(self, fn: Callable[[], None]) -> None:
        """``call_rcu()``: run ``fn`` after the next grace period."""
        self._callbacks.append(fn)

    def synchronize(self) -> None:
        """``synchronize_rcu()``: sleeps until a grace period has ended — inside
        ``Kernel.concurrently``, until every other task has left its read-side section
        (explicit, or implied by a held spinlock), so the callbacks queued before it have run
        when it returns."""
        k = self.kernel
        might_sleep(k, "kernel/rcu/tree.c:synchronize_rcu")
        s = k._sched
        if s is not None:
            me = k.current
            while any(t is not me and self._reader(t) for t in k.all_tasks()):
                s.wait_var(self, lambda: "an RCU grace period (a task is in a read-side section)")
        schedule(k, "kernel/rcu/tree.c:synchronize_rcu")

    @staticmethod
    def _reader(t: Task) -> bool:
        return t.rcu_depth > 0 or t.preempt_count > 0

    def note_context_switch(self) -> None:
        """A quiescent state: end the grace period if no task is still a reader."""
        if not self._callbacks:
            return
        for t in self.kernel.all_tasks():
            if self._reader(t):
                return
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn()
