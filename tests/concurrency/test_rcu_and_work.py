"""Deferred work and RCU inside ``Kernel.concurrently``: ``mmput_async``'s teardown runs in
the kworker (kernel/fork.c ``mmput_async_fn``, kernel/workqueue.c ``flush_scheduled_work``),
interleaved with the other tasks; an RCU grace period (kernel/rcu/tree.c) ends only when
every task has left its read-side section."""

from __future__ import annotations

from safemm import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Kernel
from safemm.model.fork import mmget_not_zero, mmput_async
from safemm.model.process import Process
from safemm.model.runqueue import SwitchKind
from safemm.model.sched import msleep

from .scripted import Priority, Recording, yield_to

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def _exited_owner(k: Kernel, driver: Process) -> Process:
    """A process with memory that has exited while ``driver`` holds the last ``mm_users``
    reference on its mm (as a binder-style driver does)."""
    q = k.spawn("owner")
    a = q.mmap(None, 4 * P, RW, ANON)
    q.write(a, b"owner data")
    with k.enter(driver.task, "get mm"):
        assert mmget_not_zero(q.mm)
    q.exit()
    assert q.mm.mm_users == 1 and not q.mm.exited
    return q


def _release_while_busy(seed: int) -> bool:
    """One run: a driver's last ``mmput_async`` while another process works; whether the
    kworker's steps fell between that process's steps."""
    k = Kernel()
    rec = Recording(seed)
    k.sched_policy = rec
    d, other = k.spawn("driver"), k.spawn("other")
    q = _exited_owner(k, d)

    def release() -> None:
        with k.enter(d.task, "driver release"):
            mmput_async(q.mm)

    def busy() -> None:
        for _ in range(3):
            a = other.mmap(None, P, RW, ANON)
            other.write(a, b"x")
            other.munmap(a, P)

    k.concurrently(release, busy)
    assert q.mm.exited and not k._work
    k.check_invariants()
    sched = rec.sched
    assert sched is not None
    ctxs = [e.context for e in sched.trace]
    worker = [i for i, c in enumerate(ctxs) if c == 2]
    assert worker, "the kworker ran"
    assert all(sched.trace[i].task == "kworker/0:1:0" for i in worker)
    busy_steps = [i for i, c in enumerate(ctxs) if c == 1]
    return any(i < worker[0] for i in busy_steps) and any(i > worker[-1] for i in busy_steps)


def test_mmput_async_teardown_interleaves_with_other_tasks() -> None:
    """The last ``mmput_async`` queues ``__mmput`` to the kworker, which runs it as its own
    task between the other tasks' switch points; when ``concurrently`` returns, the work
    is done."""
    assert any(_release_while_busy(seed) for seed in range(30))


def test_flush_work_in_a_body_sleeps_until_the_kworker_is_done() -> None:
    """``flush_work`` inside a body: the task sleeps until the kworker has run every queued
    item, however much the scheduler prefers the flushing task."""
    k = Kernel()
    pol = Priority(0, 1, 2)  # the body before the kworker
    k.sched_policy = pol
    d, other = k.spawn("driver"), k.spawn("other")
    q = _exited_owner(k, d)
    seen: list[bool] = []

    def release() -> None:
        with k.enter(d.task, "driver release"):
            mmput_async(q.mm)
            seen.append(q.mm.exited)
        k.flush_work()
        seen.append(q.mm.exited)

    k.concurrently(release, lambda: other.mmap(None, P, RW, ANON))
    assert seen == [False, True]
    sched = pol.sched
    assert sched is not None
    waits = [e for e in sched.trace if e.kind is SwitchKind.BLOCK and e.context == 0]
    assert [e.label for e in waits] == ["the kworker to finish the queued work"]


def test_work_queued_last_is_drained_before_concurrently_returns() -> None:
    """Work queued as a body's last act still runs before ``concurrently`` returns."""
    k = Kernel()
    k.sched_policy = Priority(0, 1, 2)
    d = k.spawn("driver")
    q = _exited_owner(k, d)

    def release() -> None:
        with k.enter(d.task, "driver release"):
            mmput_async(q.mm)

    k.concurrently(release, lambda: None)
    assert q.mm.exited and q.mm.mm_users == 0 and not k._work
    k.check_invariants()


def test_grace_period_waits_for_every_reader() -> None:
    """``synchronize_rcu`` sleeps while any other task is inside a read-side section
    (these readers sleep there — reported — so that another task can run at all); the
    callbacks queued before it run once the last reader has left, not before."""
    k = Kernel(panic_on_warn=False)
    pol = Priority()
    k.sched_policy = pol
    r1, r2, w = k.spawn("r1"), k.spawn("r2"), k.spawn("w")
    log: list[str] = []

    def reader(p: Process, i: int, order: tuple[int, ...]) -> None:
        with k.enter(p.task, f"reader {i}"):
            k.rcu.read_lock()
            log.append(f"r{i} in")
            pol.prefer(*order)
            msleep(k, 1)  # sleeping in the section: reported, and another task runs
            log.append(f"r{i} out")
            k.rcu.read_unlock()

    def updater() -> None:
        with k.enter(w.task, "updater"):
            k.rcu.call_rcu(lambda: log.append("callback"))
            yield_to(k, pol, 0, 2, 1)  # the first reader leaves
            log.append("synchronize")
            k.rcu.synchronize()
            log.append("synchronized")

    k.concurrently(lambda: reader(r1, 1, (1, 2, 0)), lambda: reader(r2, 2, (2, 0, 1)), updater)
    assert log == [
        "r1 in",
        "r2 in",
        "r1 out",
        "synchronize",
        "r2 out",
        "callback",
        "synchronized",
    ]
    assert {s.contract for s in k.splats} == {"might-sleep"}
    sched = pol.sched
    assert sched is not None
    waits = [e for e in sched.trace if e.kind is SwitchKind.BLOCK]
    assert [(e.context, e.label) for e in waits] == [
        (2, "an RCU grace period (a task is in a read-side section)")
    ]
