"""Tasks that interleave: the run queue, switch points, sleeping on a lock and waking up.

Mirrors kernel/sched/core.c in what it makes observable — ``schedule()`` picks the next task,
``try_to_wake_up()`` makes a sleeper runnable, a preemption happens only where the kernel can
preempt — and kernel/hung_task.c for what happens when nothing can run (a hung-task report).

How it runs: each body given to :meth:`Kernel.concurrently` is a *context* — a greenlet with
its own stack of kernel entries (``current`` and the driver frames), as a CPU has. Exactly one
context runs at a time. At every *switch point* — a lock acquire, release or trylock,
``might_sleep``, ``schedule``, ``rcu_read_unlock``, syscall entry and exit, page-fault entry,
driver hook entry and exit — the scheduler asks its :class:`SchedPolicy` which runnable
context runs next; a context that cannot take a lock *blocks* and another one runs. The policy
is deterministic given its seed (or, in :mod:`safemm.explore`, its schedule), so every run
replays exactly.

Simplifications (see docs/concurrency.md): no true parallelism between switch points (the
code between two switch points runs atomically), no weak memory ordering, one priority, and
nothing switches inside atomic context (a spinlock or RCU read-side section held, interrupts
off) unless the task really sleeps there — which the model reports.
"""

from __future__ import annotations

import contextvars
import enum
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from greenlet import GreenletExit, greenlet
from typing_extensions import override

from .errors import KernelError
from .printk import SplatKind

if TYPE_CHECKING:
    from .kernel import Kernel, _Frame
    from .sched import Task

__all__ = [
    "DEFAULT_MAX_STEPS",
    "Context",
    "RandomPolicy",
    "SchedPolicy",
    "Scheduler",
    "SwitchKind",
    "TraceEvent",
]

#: include/linux/sched.h PF_KTHREAD (as in :mod:`.sched`, which imports this module).
PF_KTHREAD = 0x00200000

#: Switch points per ``concurrently`` run before the run is reported as a livelock.
DEFAULT_MAX_STEPS = 20_000


class SwitchKind(enum.Enum):
    """Where a switch point is: each is a place where the kernel can switch tasks."""

    START = "start"
    SYSCALL_ENTER = "enter"
    SYSCALL_EXIT = "exit"
    FAULT = "fault"
    HOOK_ENTER = "hook"
    HOOK_EXIT = "hook return"
    LOCK = "lock"
    UNLOCK = "unlock"
    TRYLOCK_FAIL = "trylock failed"
    MIGHT_SLEEP = "might_sleep"
    SCHEDULE = "schedule"
    RCU_UNLOCK = "rcu_read_unlock"
    BLOCK = "blocked"
    DONE = "done"


#: Kinds at which the current task gives up the CPU of its own accord (a failed trylock, a
#: real sleep): switching away there is not a preemption, and staying would only spin.
_YIELDS = frozenset({SwitchKind.TRYLOCK_FAIL, SwitchKind.SCHEDULE})

_RUNNABLE = 0
_BLOCKED = 1
_DONE = 2
_IDLE = 3


class Context:
    """One flow of control: a body of :meth:`Kernel.concurrently` or the kworker.

    Invariant: while another context runs, ``tasks``/``frames``/``task_work`` hold this
    context's kernel entry stack (the running context's live in the :class:`Kernel`);
    ``state`` is runnable, blocked (``waiting`` says on what), done, or idle (the kworker with
    no work).
    """

    __slots__ = (
        "deadlocked",
        "error",
        "frames",
        "glet",
        "index",
        "name",
        "result",
        "state",
        "task_work",
        "tasks",
        "waiting",
    )

    def __init__(self, index: int, name: str, base: Task) -> None:
        self.index = index
        self.name = name
        self.tasks: list[Task] = [base]
        self.frames: list[_Frame] = []
        self.task_work: list[Callable[[], None]] = []
        self.state = _RUNNABLE
        self.waiting: Callable[[], str] | None = None
        self.deadlocked = False
        self.result: object = None
        self.error: BaseException | None = None
        self.glet: greenlet | None = None

    @property
    def task(self) -> Task:
        """The task this context runs as now (``current`` while it runs)."""
        return self.tasks[-1]

    @property
    def runnable(self) -> bool:
        """Whether the scheduler may pick it."""
        return self.state == _RUNNABLE

    @override
    def __repr__(self) -> str:
        state = ("runnable", "blocked", "done", "idle")[self.state]
        return f"<context {self.index} {self.name} {state}>"


class TraceEvent:
    """One switch point as it happened: which context, as which task, where.

    ``note`` is ``"preempted"`` when the scheduler switched away from this still-runnable
    context here, ``"blocked"`` when it could not go on, ``"yield"`` for a failed trylock or a
    sleep that let another task run, and empty otherwise.
    """

    __slots__ = ("context", "kind", "label", "note", "step", "task")

    def __init__(
        self, step: int, context: int, task: str, kind: SwitchKind, label: str, note: str
    ) -> None:
        self.step = step
        self.context = context
        self.task = task
        self.kind = kind
        self.label = label
        self.note = note

    @override
    def __repr__(self) -> str:
        note = f" [{self.note}]" if self.note else ""
        return f"{self.step:4d} #{self.context} {self.task}: {self.kind.value} {self.label}{note}"


class SchedPolicy(Protocol):
    """Chooses which context runs at each decision (a switch point with a choice)."""

    def begin(self, sched: Scheduler) -> None:
        """A :meth:`Kernel.concurrently` run starts with this scheduler."""
        ...

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """Pick one of ``candidates`` (at least two, in context order). ``current`` is the
        running context when it could go on (choosing another one is a preemption), None
        when it blocked, finished or yields."""
        ...


class RandomPolicy:
    """The default scheduler outside the explorer: a uniformly random choice at every
    decision, from a seeded generator — so ``concurrently`` is deterministic per kernel."""

    __slots__ = ("rng",)

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def begin(self, sched: Scheduler) -> None:
        """Nothing to prepare: the generator carries on across runs."""

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """A uniformly random candidate."""
        return candidates[self.rng.randrange(len(candidates))]


class Scheduler:
    """The run queue of one :meth:`Kernel.concurrently` run.

    Invariant: ``current`` is the context whose greenlet is running; every other context is
    runnable (suspended at a switch point), blocked (suspended in :meth:`block`), idle or done.
    ``steps`` counts switch points; ``preemptions`` counts switches away from a context that
    could have gone on.
    """

    def __init__(self, kernel: Kernel, policy: SchedPolicy, max_steps: int) -> None:
        self.kernel = kernel
        self.policy = policy
        self.max_steps = max_steps
        self.contexts: list[Context] = []
        self.main = Context(-1, "main", kernel.current)
        self.current = self.main
        self.steps = 0
        self.preemptions = 0
        self.trace: list[TraceEvent] = []
        self.aborting = False
        #: The first report that ended the run (see :meth:`fail`), raised by :meth:`run`.
        self.failure: BaseException | None = None
        self.kworker: Context | None = None
        self._var_waiters: dict[int, list[Context]] = {}
        policy.begin(self)

    # ---------------------------------------------------------------- running

    def run(self, bodies: Sequence[Callable[[], object]]) -> list[object]:
        """Run every body to completion, interleaved; their results in order."""
        k = self.kernel
        main_glet = greenlet.getcurrent()
        parent_ctx = contextvars.copy_context()
        for i, body in enumerate(bodies):
            ctx = Context(i, _body_name(body, i), k._idle)
            ctx.glet = greenlet(self._body_main(ctx, body), parent=main_glet)
            ctx.glet.gr_context = parent_ctx.copy()
            self.contexts.append(ctx)
        kw = Context(len(bodies), "kworker/0:1", k._idle)
        kw.state = _RUNNABLE if k._work else _IDLE
        kw.glet = greenlet(self._kworker_main(kw), parent=main_glet)
        self.contexts.append(kw)
        self.kworker = kw
        self._save(self.main)
        try:
            failed: Context | None = None
            while True:
                nxt = self._pick(SwitchKind.START if self.steps == 0 else SwitchKind.DONE, None)
                if nxt is None:
                    break
                self._load(nxt)
                assert nxt.glet is not None
                nxt.glet.switch()
                self._save(self.current)
                failed = next((c for c in self.contexts if c.error is not None), None)
                if failed is not None or self.failure is not None:
                    break
            if self.failure is not None:
                self._abort()
                raise self.failure
            if failed is not None:
                self._abort()
                assert failed.error is not None
                raise failed.error
        finally:
            self._finish()
            self._load(self.main)
        return [c.result for c in self.contexts[:-1]]

    def _body_main(self, ctx: Context, body: Callable[[], object]) -> Callable[[], None]:
        def main() -> None:
            try:
                ctx.result = body()
            except KernelError as e:
                ctx.result = e
            except GreenletExit:
                pass
            except BaseException as e:
                ctx.error = e
            ctx.state = _DONE

        return main

    def _kworker_main(self, ctx: Context) -> Callable[[], None]:
        k = self.kernel

        def main() -> None:
            try:
                while True:
                    if not k._work:
                        ctx.state = _IDLE
                        self.wake_up_var(ctx)
                        self._switch_away(SwitchKind.BLOCK, "worker idle")
                        continue
                    name, fn = k._work.pop(0)
                    with k.enter(k._kworker, f"kworker: {name}"):
                        fn()
            except GreenletExit:
                pass
            except BaseException as e:
                ctx.error = e
            ctx.state = _DONE

        return main

    def _save(self, ctx: Context) -> None:
        k = self.kernel
        ctx.tasks = k._tasks
        ctx.frames = k._frames
        ctx.task_work = k._task_work

    def _load(self, ctx: Context) -> None:
        k = self.kernel
        k._tasks = ctx.tasks
        k._frames = ctx.frames
        k._task_work = ctx.task_work
        self.current = ctx

    def fail(self, error: BaseException) -> None:
        """A report that ends the run (a BUG, a deadlock, a WARN under ``panic_on_warn``) is
        being raised in the running context: from now on nothing switches and nothing more
        is reported, so that context unwinds alone, then :meth:`run` unwinds the others and
        raises ``error`` — even if the body caught it, as a panic cannot be caught."""
        if self.failure is None:
            self.failure = error
        self.aborting = True

    def _abort(self) -> None:
        """Unwind every unfinished context (its ``finally`` blocks release what it holds)
        with reports and switches off; the run's failure is what propagates."""
        self.aborting = True
        for ctx in self.contexts:
            g = ctx.glet
            if g is None or g.dead or ctx.state == _DONE:
                continue
            self._save(self.current)
            self._load(ctx)
            try:
                g.throw(GreenletExit)
            except BaseException:
                pass
            self._save(ctx)

    def _finish(self) -> None:
        for ctx in self.contexts:
            g = ctx.glet
            if g is not None and not g.dead:
                self.aborting = True
                self._load(ctx)
                try:
                    g.throw(GreenletExit)
                except BaseException:
                    pass
                self._save(ctx)
        for t in self.kernel.all_tasks():
            t.ctx = None
        self.kernel.rcu.note_context_switch()

    # ---------------------------------------------------------------- decisions

    def _pick(self, kind: SwitchKind, label: str | None) -> Context | None:
        """The next context after the current one stopped (blocked, finished, idle)."""
        cands = [c for c in self.contexts if c.state == _RUNNABLE]
        if not cands:
            blocked = [c for c in self.contexts if c.state == _BLOCKED]
            if not blocked:
                return None
            blocked[0].deadlocked = True
            return blocked[0]
        if len(cands) == 1:
            return cands[0]
        return self.policy.choose(self, kind, label or kind.value, None, cands)

    def point(self, kind: SwitchKind, label: str) -> None:
        """A switch point in the running context: the policy may run another task here.

        Nothing switches in atomic context (the task holds a spinlock, is in an RCU
        read-side section or has interrupts off) — except at ``schedule()``, where the task
        really sleeps: the kernel switches there even from atomic context, after reporting
        it (a reader that sleeps stays an RCU reader: the grace period waits for it).
        """
        if self.aborting:
            return
        cur = self.current
        k = self.kernel
        t = k._tasks[-1]
        self.steps += 1
        if self.steps > self.max_steps:
            self._livelock()
        if (t.preempt_count or t.rcu_depth or t.irqs_disabled) and kind is not SwitchKind.SCHEDULE:
            return
        cands = [c for c in self.contexts if c.state == _RUNNABLE]
        yields = kind in _YIELDS
        if len(cands) == 1:
            self.trace.append(TraceEvent(self.steps, cur.index, _who(t), kind, label, ""))
            return
        if yields:
            others = [c for c in cands if c is not cur]
            nxt = (
                others[0]
                if len(others) == 1
                else self.policy.choose(self, kind, label, None, others)
            )
            note = "yield"
        else:
            nxt = self.policy.choose(self, kind, label, cur, cands)
            note = "preempted" if nxt is not cur else ""
        self.trace.append(TraceEvent(self.steps, cur.index, _who(t), kind, label, note))
        if nxt is not cur:
            if not yields:
                self.preemptions += 1
            self._switch_to(nxt)

    def block(self, waiting: Callable[[], str]) -> None:
        """The running context cannot go on until :meth:`wake`: run another one.

        When no context can run, this is a deadlock: report it (the hung-task report, with
        every task, what it waits for and what it holds) in the context that found it.
        """
        if self.aborting:
            raise GreenletExit
        cur = self.current
        cur.state = _BLOCKED
        cur.waiting = waiting
        t = self.kernel._tasks[-1]
        self.steps += 1
        what = waiting()
        self.trace.append(
            TraceEvent(self.steps, cur.index, _who(t), SwitchKind.BLOCK, what, "blocked")
        )
        self._switch_away(SwitchKind.BLOCK, what)
        if cur.deadlocked:
            cur.deadlocked = False
            self._deadlock()
        if self.aborting:
            raise GreenletExit

    def wake(self, ctx: Context | None) -> None:
        """``try_to_wake_up``: a blocked context becomes runnable (it runs when picked)."""
        if ctx is not None and ctx.state == _BLOCKED:
            ctx.state = _RUNNABLE
            ctx.waiting = None

    def wait_var(self, var: object, waiting: Callable[[], str]) -> None:
        """``wait_var_event``'s sleep: block until :meth:`wake_up_var` on ``var``."""
        self._var_waiters.setdefault(id(var), []).append(self.current)
        try:
            self.block(waiting)
        finally:
            lst = self._var_waiters.get(id(var))
            if lst is not None and self.current in lst:
                lst.remove(self.current)

    def wake_up_var(self, var: object) -> None:
        """``wake_up_var``: wake every context waiting on ``var``."""
        lst = self._var_waiters.pop(id(var), None)
        if lst:
            for ctx in lst:
                self.wake(ctx)

    def claim(self, task: Task) -> None:
        """The running context enters the kernel as ``task``.

        A task runs in one context at a time: a kernel thread busy elsewhere (kswapd in
        another ``shrink``) is waited for; a user task busy elsewhere is a usage error.
        """
        cur = self.current
        while task.ctx is not None and task.ctx is not cur:
            owner = task.ctx
            if not task.flags & PF_KTHREAD:
                raise RuntimeError(
                    f"task {_who(task)} is already running in {owner.name}: two concurrent "
                    "bodies cannot use one Process at once; give each body its own thread "
                    "with Process.spawn_thread()"
                )
            what = f"{_who(task)} to finish its work in {owner.name}"
            self.wait_var(task, what.__str__)
        task.ctx = cur

    def release(self, task: Task) -> None:
        """The running context left its outermost entry as ``task``."""
        if task not in self.kernel._tasks:
            task.ctx = None
            self.wake_up_var(task)

    def flush_work(self) -> None:
        """``flush_scheduled_work``: sleep until the kworker has run everything queued."""
        kw = self.kworker
        k = self.kernel
        while kw is not None and kw is not self.current and (k._work or kw.state != _IDLE):
            self.wait_var(kw, lambda: "the kworker to finish the queued work")

    def work_queued(self) -> None:
        """``queue_work``: the kworker has something to do."""
        kw = self.kworker
        if kw is not None and kw.state == _IDLE:
            kw.state = _RUNNABLE

    def _switch_away(self, kind: SwitchKind, label: str) -> None:
        cur = self.current
        nxt = self._pick(kind, label)
        if nxt is cur:
            return  # cur is blocked and deadlocked: block() reports it
        if nxt is None:
            # Nothing else can run (the kworker went idle last): back to the main loop,
            # which ends the run.
            assert cur.glet is not None and cur.glet.parent is not None
            cur.glet.parent.switch()
            return
        self._switch_to(nxt)

    def _switch_to(self, nxt: Context) -> None:
        cur = self.current
        self._save(cur)
        self._load(nxt)
        self.kernel.rcu.note_context_switch()
        assert nxt.glet is not None
        nxt.glet.switch()

    # ---------------------------------------------------------------- reports

    def describe_tasks(self) -> str:
        """Every context: what it runs as, what it waits for, what it holds (lockdep)."""
        lines = []
        for ctx in self.contexts:
            if ctx.state == _IDLE:
                continue
            tasks = ctx.tasks if ctx is not self.current else self.kernel._tasks
            t = tasks[-1]
            state = ("runnable", "blocked", "finished", "idle")[ctx.state]
            if ctx is self.current and ctx.state == _BLOCKED:
                state = "blocked"
            waits = f", waiting for {ctx.waiting()}" if ctx.waiting is not None else ""
            held = ", ".join(f"{h.lock.name} (taken at {h.where})" for h in t.held_locks)
            lines.append(
                f"  task {_who(t)} [{ctx.name}] {state}{waits}; holds: {held or 'nothing'}"
            )
        return "\n".join(lines)

    def _deadlock(self) -> None:
        k = self.kernel
        t = k.current
        k.report(
            SplatKind.DEADLOCK,
            "deadlock",
            "no task can run: every unfinished task is blocked\n" + self.describe_tasks(),
            "kernel/hung_task.c:check_hung_uninterruptible_tasks",
            title=f"INFO: task {t.comm}:{t.pid} blocked for more than 120 seconds.",
        )

    def _livelock(self) -> None:
        k = self.kernel
        self.max_steps = self.steps + 1_000_000
        k.report(
            SplatKind.DEADLOCK,
            "livelock",
            f"{self.steps - 1} switch points without the run finishing (a task spinning on a "
            "trylock, or a retry loop that never succeeds)\n" + self.describe_tasks(),
            "kernel/watchdog.c:watchdog_timer_fn",
            title="BUG: soft lockup - the run made no progress",
        )


def _who(t: Task) -> str:
    return f"{t.comm}:{t.pid}"


def _body_name(body: Callable[[], object], i: int) -> str:
    name = getattr(body, "__name__", "")
    return name if isinstance(name, str) and name and name != "<lambda>" else f"body {i}"
