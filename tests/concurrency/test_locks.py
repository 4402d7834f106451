"""Blocking locks inside ``Kernel.concurrently``: rwsem (kernel/locking/rwsem.c), mutex
(kernel/locking/mutex.c) and spinlock (kernel/locking/spinlock.c) semantics, with each
interleaving scripted by a :class:`~tests.concurrency.scripted.Priority` policy."""

from __future__ import annotations

from collections.abc import Callable

from safemm import Kernel
from safemm.model.locking import Mutex, RwSemaphore, SpinLock
from safemm.model.process import Process
from safemm.model.sched import msleep
from safemm.testing import SplatKind, expect_splat

from .scripted import Priority, yield_to

_W = "tests/concurrency:"


def _setup(n: int, **kw: bool) -> tuple[Kernel, Priority, list[Process]]:
    k = Kernel(**kw)
    pol = Priority()
    k.sched_policy = pol
    return k, pol, [k.spawn(f"t{i}") for i in range(n)]


def _as(k: Kernel, p: Process, fn: Callable[[], None]) -> Callable[[], None]:
    """A body that runs ``fn`` inside one kernel entry as ``p``'s task."""

    def body() -> None:
        with k.enter(p.task, "test"):
            fn()

    body.__name__ = p.comm
    return body


def _reader(k: Kernel, sem: RwSemaphore, p: Process, log: list[str]) -> Callable[[], None]:
    """Read-lock ``sem``, log ``p``'s name, unlock."""

    def fn() -> None:
        sem.down_read(k, _W + p.comm)
        log.append(p.comm)
        sem.up_read(k, _W + p.comm)

    return fn


# ------------------------------------------------------------------------ rwsem


def test_queued_writer_fails_read_trylock_and_queues_readers_behind_it() -> None:
    """rwsem (``__down_read_trylock``, ``rwsem_down_read_slowpath``): once a writer waits,
    a read trylock fails and a new reader queues — even though the lock is only read-held
    and a reader could share it. The writer gets it when the first reader leaves; the
    queued reader after the writer."""
    k, pol, (a, b, c) = _setup(3)
    sem = RwSemaphore("sem")
    log: list[str] = []

    def reader() -> None:
        sem.down_read(k, _W + "a")
        log.append("a read")
        yield_to(k, pol, 1, 2, 0)  # b queues; c's read trylock fails and yields back
        yield_to(k, pol, 2, 0)  # c's down_read queues behind b
        assert [w.task for w in sem.waiters] == [b.task, c.task]
        assert sem.readers == [a.task]
        sem.up_read(k, _W + "a")

    def writer() -> None:
        sem.down_write(k, _W + "b")
        log.append("b write")
        assert sem.writer is b.task and not sem.readers
        sem.up_write(k, _W + "b")

    def late_reader() -> None:
        ok = sem.down_read_trylock(k, _W + "c")
        log.append(f"c trylock {ok}")
        sem.down_read(k, _W + "c")  # queues behind the writer
        log.append("c read")
        sem.up_read(k, _W + "c")

    k.concurrently(_as(k, a, reader), _as(k, b, writer), _as(k, c, late_reader))
    assert log == ["a read", "c trylock False", "b write", "c read"]
    assert not sem.readers and sem.writer is None and not sem.waiters
    assert k.dmesg == []


def test_writer_release_grants_every_queued_reader_at_once() -> None:
    """``rwsem_mark_wake``: when the writer leaves and a reader heads the queue, every
    queued reader gets the lock at once — also the one queued behind a waiting writer (the
    phase-fair rule) — while the writer keeps waiting."""
    k, pol, (a, b, c, d, e) = _setup(5)
    sem = RwSemaphore("sem")
    got: list[str] = []

    def holder() -> None:
        sem.down_write(k, _W + "a")
        yield_to(k, pol, 1, 2, 3, 4, 0)
        assert [w.task.comm for w in sem.waiters] == ["t1", "t2", "t3", "t4"]
        pol.prefer(0)
        sem.up_write(k, _W + "a")
        # Granted before any of them ran again.
        assert sem.readers == [b.task, c.task, e.task]
        assert [w.task for w in sem.waiters] == [d.task]
        assert sem.writer is None

    def write() -> None:
        sem.down_write(k, _W + "d")
        got.append("t3")
        assert not sem.readers
        sem.up_write(k, _W + "d")

    k.concurrently(
        _as(k, a, holder),
        _as(k, b, _reader(k, sem, b, got)),
        _as(k, c, _reader(k, sem, c, got)),
        _as(k, d, write),
        _as(k, e, _reader(k, sem, e, got)),
    )
    assert got[-1] == "t3" and sorted(got[:3]) == ["t1", "t2", "t4"]
    assert k.dmesg == []


def test_recursive_read_with_a_queued_writer_deadlocks() -> None:
    """rwsem: a reader that calls ``down_read`` again while a writer waits queues behind
    the writer, which waits for that reader — a real deadlock, reported with both tasks;
    lockdep's "possible recursive locking" fires first."""
    k, pol, (a, b) = _setup(2, panic_on_warn=False)
    sem = RwSemaphore("sem")

    def reader() -> None:
        sem.down_read(k, _W + "a")
        try:
            yield_to(k, pol, 1, 0)
            sem.down_read(k, _W + "a again")
            sem.up_read(k, _W + "a again")
        finally:
            sem.up_read(k, _W + "a")

    def writer() -> None:
        sem.down_write(k, _W + "b")
        sem.up_write(k, _W + "b")

    with expect_splat("deadlock", SplatKind.DEADLOCK) as ei:
        k.concurrently(_as(k, a, reader), _as(k, b, writer))
    assert [s.contract for s in k.splats] == ["recursive-lock", "deadlock"]
    text = str(ei.error)
    assert "task t0:1 [t0] blocked, waiting for rwsem sem for read" in text
    assert "task t1:2 [t1] blocked, waiting for rwsem sem for write" in text
    assert "holds: sem" in text
    # unwinding released the read lock and emptied the queue
    assert not sem.readers and not sem.waiters
    assert not a.task.held_locks and not b.task.held_locks


def test_recursive_read_warns_even_without_a_writer() -> None:
    """lockdep reports ``down_read`` of a held rwsem ("possible recursive locking") even in
    the schedule where no writer waits and nothing deadlocks (panic_on_warn: it raises)."""
    k, pol, (a, b) = _setup(2)
    sem = RwSemaphore("sem")

    def reader() -> None:
        sem.down_read(k, _W + "a")
        try:
            sem.down_read(k, _W + "a again")
            sem.up_read(k, _W + "a again")
        finally:
            sem.up_read(k, _W + "a")

    pol.prefer(0, 1)
    with expect_splat("recursive-lock", SplatKind.LOCKDEP):
        k.concurrently(_as(k, a, reader), _as(k, b, lambda: None))


def test_downgrade_lets_queued_readers_in() -> None:
    """``downgrade_write`` → ``rwsem_downgrade_wake``: the queued readers join the
    downgrading task at once."""
    k, pol, (a, b, c) = _setup(3)
    sem = RwSemaphore("sem")
    order: list[str] = []

    def holder() -> None:
        sem.down_write(k, _W + "a")
        yield_to(k, pol, 1, 2, 0)
        assert len(sem.waiters) == 2
        pol.prefer(0)
        sem.downgrade_write(k, _W + "a")
        assert sem.readers == [a.task, b.task, c.task] and not sem.waiters
        order.append("a downgraded")
        yield_to(k, pol, 1, 2, 0)
        sem.up_read(k, _W + "a")

    k.concurrently(
        _as(k, a, holder),
        _as(k, b, _reader(k, sem, b, order)),
        _as(k, c, _reader(k, sem, c, order)),
    )
    assert order == ["a downgraded", "t1", "t2"]
    assert k.dmesg == []


def test_downgrade_with_a_writer_first_wakes_nobody() -> None:
    """``rwsem_mark_wake(RWSEM_WAKE_READ_OWNED)`` with a writer at the head of the queue
    wakes nobody: the reader queued behind it keeps waiting after the downgrade."""
    k, pol, (a, b, c) = _setup(3)
    sem = RwSemaphore("sem")

    def holder() -> None:
        sem.down_write(k, _W + "a")
        yield_to(k, pol, 1, 2, 0)
        pol.prefer(0)
        sem.downgrade_write(k, _W + "a")
        assert sem.readers == [a.task]
        assert [w.task for w in sem.waiters] == [b.task, c.task]
        sem.up_read(k, _W + "a")

    def writer() -> None:
        sem.down_write(k, _W + "b")
        sem.up_write(k, _W + "b")

    def reader() -> None:
        sem.down_read(k, _W + "c")
        sem.up_read(k, _W + "c")

    k.concurrently(_as(k, a, holder), _as(k, b, writer), _as(k, c, reader))
    assert not sem.waiters and sem.writer is None and not sem.readers


def _free_with_one_waiter(sem: RwSemaphore) -> bool:
    return sem.writer is None and not sem.readers and len(sem.waiters) == 1


def test_trylocks_fail_on_a_free_rwsem_while_a_woken_writer_waits() -> None:
    """``__down_write_trylock``/``__down_read_trylock``: the count keeps
    RWSEM_FLAG_WAITERS while the woken writer has not run yet, so both trylocks fail on a
    lock nobody holds (each failure yields, here to a bystander that yields straight back)."""
    k, pol, (a, b, c) = _setup(3)
    sem = RwSemaphore("sem")
    seen: list[object] = []

    def holder() -> None:
        sem.down_write(k, _W + "a")
        yield_to(k, pol, 1, 2, 0)  # b queues, c hands the CPU back
        pol.prefer(0, 2, 1)
        sem.up_write(k, _W + "a")  # wakes b, which does not run yet
        assert _free_with_one_waiter(sem)
        seen.append(sem.down_write_trylock(k, _W + "a try write"))
        assert _free_with_one_waiter(sem)
        seen.append(sem.down_read_trylock(k, _W + "a try read"))
        assert _free_with_one_waiter(sem)

    def writer() -> None:
        sem.down_write(k, _W + "b")
        seen.append("b")
        sem.up_write(k, _W + "b")

    def bystander() -> None:
        for _ in range(3):
            yield_to(k, pol, 0, 2, 1)

    k.concurrently(_as(k, a, holder), _as(k, b, writer), _as(k, c, bystander))
    assert seen == [False, False, "b"]
    assert sem.writer is None and not sem.waiters


# ------------------------------------------------------------------------ mutex


def test_mutex_unlock_wakes_only_the_first_waiter() -> None:
    """``__mutex_unlock_slowpath``: the unlock wakes the first waiter only; waiters get the
    mutex in the order they queued, whatever the scheduler prefers."""
    k, pol, (a, b, c) = _setup(3)
    m = Mutex("m")
    got: list[str] = []

    def holder() -> None:
        m.lock(k)
        yield_to(k, pol, 1, 2, 0)
        assert len(m.waiters) == 2
        pol.prefer(0)
        m.unlock(k)
        sched = pol.sched
        assert sched is not None
        states = {ctx.name: repr(ctx) for ctx in sched.contexts[1:3]}
        assert "runnable" in states["t1"] and "blocked" in states["t2"]

    def locker(p: Process) -> Callable[[], None]:
        def fn() -> None:
            m.lock(k)
            got.append(p.comm)
            pol.prefer(2, 1, 0)  # prefer the later waiter: it is still asleep
            m.unlock(k)

        return fn

    k.concurrently(_as(k, a, holder), _as(k, b, locker(b)), _as(k, c, locker(c)))
    assert got == ["t1", "t2"]
    assert m.owner is None and not m.waiters


def test_mutex_steal_once_then_handoff() -> None:
    """kernel/locking/mutex.c: the unlocker may take the mutex back before the woken waiter
    runs (a steal); the waiter, first in line, then sets MUTEX_FLAG_HANDOFF
    (``__mutex_trylock_or_handoff``), and the next unlock hands the mutex straight to it
    (``__mutex_handoff``), so the unlocker cannot steal it twice."""
    k, pol, (a, b) = _setup(2)
    m = Mutex("m")
    log: list[str] = []

    def greedy() -> None:
        m.lock(k)
        yield_to(k, pol, 1, 0)  # b queues
        pol.prefer(0, 1)
        m.unlock(k)  # wakes b
        m.lock(k)  # steals it back before b runs
        log.append("a stole")
        yield_to(k, pol, 1, 0)  # b runs, finds it taken: HANDOFF
        pol.prefer(0, 1)
        m.unlock(k)  # hands it to b
        assert m.owner is b.task
        assert not m.trylock(k)
        log.append("a trylock failed")
        m.lock(k)
        log.append("a again")
        m.unlock(k)

    def waiter() -> None:
        m.lock(k)
        log.append("b")
        m.unlock(k)

    k.concurrently(_as(k, a, greedy), _as(k, b, waiter))
    assert log == ["a stole", "b", "a trylock failed", "a again"]
    assert m.owner is None and not m.waiters
    assert k.dmesg == []


# ------------------------------------------------------------------------ spinlock


def test_spinlock_is_contended_only_when_its_holder_slept() -> None:
    """A spinlock holder is in atomic context, so nothing switches while it holds the lock
    — unless it sleeps, which is reported ("scheduling while atomic"); only then does
    another task find the spinlock held and spin on it, and it gets the lock once the
    sleeper releases it."""
    k, pol, (a, b) = _setup(2, panic_on_warn=False)
    s = SpinLock("s")
    log: list[str] = []

    def sleeper() -> None:
        s.lock(k)
        pol.prefer(1, 0)
        m = Mutex("m")
        assert m.trylock(k)  # switch points in atomic context: no switch
        m.unlock(k)
        log.append("a no switch")
        msleep(k, 1)  # a real sleep: b runs and spins
        log.append("a back")
        s.unlock(k)

    def spinner() -> None:
        log.append("b start")
        s.lock(k)
        log.append("b locked")
        s.unlock(k)

    k.concurrently(_as(k, a, sleeper), _as(k, b, spinner))
    assert log == ["a no switch", "b start", "a back", "b locked"]
    contracts = [x.contract for x in k.splats]
    assert "schedule-atomic" in contracts and "might-sleep" in contracts
    assert s.owner is None and b.task.preempt_count == 0


def test_spinlock_holder_is_never_preempted() -> None:
    """Without a sleep, a task holding a spinlock runs its whole critical section without
    a switch, whatever the policy prefers."""
    k, pol, (a, b) = _setup(2)
    s = SpinLock("s")
    log: list[str] = []

    def holder() -> None:
        s.lock(k)
        pol.prefer(1, 0)
        for _ in range(3):
            m = Mutex("inner")
            m.trylock(k)
            m.unlock(k)
            log.append("a")
        s.unlock(k)

    def other() -> None:
        log.append("b")

    k.concurrently(_as(k, a, holder), _as(k, b, other))
    assert log == ["a", "a", "a", "b"]
    assert k.dmesg == []


# ------------------------------------------------------------------------ folio lock


def test_folio_lock_sleeps_until_the_holder_unlocks() -> None:
    """``folio_lock`` (include/linux/pagemap.h, ``__folio_lock``): a task finding
    ``PG_locked`` set sleeps, and ``folio_unlock`` (``folio_wake_bit``) wakes it."""
    from safemm.model.filemap import folio_lock, folio_unlock
    from safemm.model.page_alloc import GFP_KERNEL, PageKind

    k, pol, (a, b) = _setup(2)
    page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    log: list[str] = []

    def holder() -> None:
        folio_lock(k, page)
        log.append("a locked")
        yield_to(k, pol, 1, 0)  # b sleeps in folio_lock
        assert page.locked_by is a.task
        log.append("a unlocks")
        folio_unlock(k, page)

    def waiter() -> None:
        folio_lock(k, page)
        log.append("b locked")
        folio_unlock(k, page)

    k.concurrently(_as(k, a, holder), _as(k, b, waiter))
    assert log == ["a locked", "a unlocks", "b locked"]
    assert page.locked_by is None
    sched = pol.sched
    assert sched is not None
    assert any(e.note == "blocked" and "folio lock of pfn" in e.label for e in sched.trace)
