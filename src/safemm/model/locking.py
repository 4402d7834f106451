"""Sleeping and spinning locks with lockdep-style checking.

Mirrors kernel/locking/{spinlock,mutex,rwsem}.c for semantics and kernel/locking/lockdep.c for
the checks: every acquisition is recorded on the task's held-lock stack; a blocking acquisition
adds "held → acquired" edges between lock classes and reports a cycle ("possible circular
locking dependency detected"); re-taking a held lock, releasing a lock one does not hold, and
(at the return to user space) still holding a lock are reported.

Outside ``Kernel.concurrently`` one task runs at a time, so a blocking acquisition of a lock
that is not free can never succeed (its holder cannot run): the model reports that as a
:class:`Deadlock` instead of hanging. Inside it, the task *blocks* — it joins the lock's wait
queue and another task runs — and is woken by the release, with each lock's kernel semantics
(a mutex wakes its first waiter, which may find the lock stolen once, and is then handed it; a
spinlock is taken in queue order; an rwsem queues new readers behind a waiting writer and
hands the lock to all queued readers at once); every acquire,
release and failed trylock is a switch point. ``RwSemaphore.queued_writers`` simulates a
writer waiting in another task without running one.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from typing_extensions import override

from . import atomic as _marks
from .printk import SplatKind
from .runqueue import SwitchKind
from .sched import might_sleep

if TYPE_CHECKING:
    from .kernel import Kernel
    from .runqueue import Context, Scheduler
    from .sched import Task

__all__ = ["HeldLock", "LockClass", "Lockdep", "Mutex", "RwSemaphore", "SpinLock"]


class LockClass:
    """A lockdep class: all locks initialised at one site share one (e.g. every mmap_lock)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @override
    def __repr__(self) -> str:
        return f"<LockClass {self.name}>"


class _Lock:
    """What every lock has: a name for reports and a lockdep class."""

    __slots__ = ("lock_class", "name")

    def __init__(self, name: str, lock_class: LockClass | None = None) -> None:
        self.name = name
        self.lock_class = lock_class if lock_class is not None else LockClass(name)


class VmLockMap(_Lock):
    """The lockdep identity of one VMA's per-VMA lock (``vma->vmlock_dep_map``)."""

    __slots__ = ()


VM_LOCK_CLASS = LockClass("&vma->vm_lock")


class HeldLock:
    """One entry of a task's held-lock stack (lockdep's ``struct held_lock``)."""

    __slots__ = ("lock", "read", "where")

    def __init__(self, lock: _Lock, read: bool, where: str) -> None:
        self.lock = lock
        self.read = read
        self.where = where


class Lockdep:
    """The dependency graph between lock classes, for one kernel.

    Invariant: ``_after[A]`` holds every class B that some task acquired (blocking) while
    holding A; the graph has no cycle that has not been reported.
    """

    __slots__ = ("_after", "_reported", "kernel")

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._after: dict[LockClass, dict[LockClass, str]] = {}
        self._reported: set[tuple[LockClass, LockClass]] = set()

    def acquire(self, task: Task, lock: _Lock, *, read: bool, trylock: bool, where: str) -> None:
        """Record an acquisition (``lock_acquire``); check it unless it is a trylock (or was
        checked before the task blocked on it)."""
        if not trylock and task.held_locks:
            # check(), inlined: this runs at every lock acquisition.
            cls = lock.lock_class
            for held in task.held_locks:
                hcls = held.lock.lock_class
                if hcls is cls:
                    continue
                edges = self._after.get(hcls)
                if edges is not None and cls in edges:
                    continue
                self._add_edge(hcls, cls, where, task)
        task.held_locks.append(HeldLock(lock, read, where))

    def check(self, task: Task, lock: _Lock, where: str) -> None:
        """The dependency check of a blocking acquisition (``check_prevs_add``), made before
        the task waits, as lockdep's ``lock_acquire`` runs before the lock is contended."""
        cls = lock.lock_class
        for held in task.held_locks:
            hcls = held.lock.lock_class
            if hcls is cls:
                continue
            edges = self._after.get(hcls)
            if edges is not None and cls in edges:
                continue
            self._add_edge(hcls, cls, where, task)

    def release(self, task: Task, lock: _Lock, where: str) -> bool:
        """Record a release (``lock_release``); False (and a report) if it was not held."""
        held = task.held_locks
        for i in range(len(held) - 1, -1, -1):
            if held[i].lock is lock:
                del held[i]
                return True
        self.kernel.report(
            SplatKind.LOCKDEP,
            "unlock-balance",
            f"{task.comm}/{task.pid} is trying to release lock ({lock.name}) but there are no "
            "more locks to release!",
            where,
            title="WARNING: bad unlock balance detected!",
        )
        return False

    def holds(self, task: Task, lock: _Lock) -> bool:
        """Whether ``task`` holds ``lock`` (``lock_is_held``)."""
        return any(h.lock is lock for h in task.held_locks)

    def _add_edge(self, a: LockClass, b: LockClass, where: str, task: Task) -> None:
        path = self._path(b, a)
        if path is not None and (a, b) not in self._reported:
            self._reported.add((a, b))
            chain = " -> ".join(c.name for c in path)
            self.kernel.report(
                SplatKind.LOCKDEP,
                "lock-order",
                f"{task.comm}/{task.pid} is trying to acquire lock {b.name} while holding "
                f"{a.name}, but the existing dependency chain {chain} means {b.name} is taken "
                f"before {a.name} elsewhere (first seen at {self._after[path[0]][path[1]]}): "
                "this ABBA order can deadlock",
                where,
                title="WARNING: possible circular locking dependency detected",
            )
        self._after.setdefault(a, {})[b] = where

    def _path(self, src: LockClass, dst: LockClass) -> list[LockClass] | None:
        """A dependency path src → … → dst, if one exists (breadth first)."""
        if src is dst:
            return [src]
        prev: dict[LockClass, LockClass] = {}
        todo = deque([src])
        seen = {src}
        while todo:
            c = todo.popleft()
            for n in self._after.get(c, ()):
                if n in seen:
                    continue
                prev[n] = c
                if n is dst:
                    path = [n]
                    while path[-1] is not src:
                        path.append(prev[path[-1]])
                    path.reverse()
                    return path
                seen.add(n)
                todo.append(n)
        return None


def _recursive(kernel: Kernel, task: Task, lock: _Lock, where: str) -> None:
    kernel.report(
        SplatKind.LOCKDEP,
        "recursive-lock",
        f"{task.comm}/{task.pid} is trying to acquire lock ({lock.name}) but task is already "
        "holding lock",
        where,
        title="WARNING: possible recursive locking detected",
    )


def _deadlock(kernel: Kernel, task: Task, lock: _Lock, holder: str, where: str) -> None:
    kernel.report(
        SplatKind.DEADLOCK,
        "deadlock",
        f"{task.comm}/{task.pid} waits for {lock.name}, held by {holder}, which can never "
        "release it",
        where,
        title=f"INFO: task {task.comm}:{task.pid} blocked forever",
    )


def _who(t: Task | None) -> str:
    return "nobody" if t is None else f"{t.comm}:{t.pid}"


def _label(where: str, name: str) -> str:
    return f"{where.rsplit(':', 1)[-1]} {name}"


class _OwnedLock(_Lock):
    """An exclusive lock with a strict owner (what a spinlock and a mutex share).

    Invariant: ``owner`` is the task holding it, or None — or the first waiter, handed the
    lock by the unlock before it ran again; ``waiters`` are the contexts blocked on it inside
    ``Kernel.concurrently``, first come first; ``handoff`` is set while the first waiter, woken
    once and robbed, asks for the lock to be handed to it. Subclasses say whether taking it
    sleeps (``mutex``) or disables preemption (``spinlock``), whether an unlock always hands
    it to the first waiter (``spinlock``) and how an unlock by the wrong task is titled.
    """

    __slots__ = ("handoff", "owner", "waiters")

    #: Taking it may sleep (``might_sleep`` in the blocking acquisition).
    _sleeps = False
    #: Holding it is atomic context (raises the preempt count).
    _atomic = False
    #: Waiters get it strictly in queue order: the unlock hands it to the first one.
    _fifo = False
    _wrong_owner_title = "BUG: lock wrong owner"

    def __init__(self, name: str, lock_class: LockClass | None = None) -> None:
        super().__init__(name, lock_class)
        self.owner: Task | None = None
        self.waiters: list[Context] = []
        self.handoff = False

    def _acquire(self, kernel: Kernel, where: str) -> None:
        """The blocking acquisition: waits for the owner inside ``Kernel.concurrently``;
        outside it, a lock held for ever (by anyone) is a deadlock."""
        t = kernel.current
        if self._sleeps and (
            t.preempt_count
            or t.rcu_depth
            or t.irqs_disabled
            or t.nosleep
            or _marks.audit is not None
        ):
            might_sleep(kernel, where, switch=False)  # the report (its check, inlined)
        s = kernel._sched
        if s is not None:
            s.point(SwitchKind.LOCK, _label(where, self.name))
        if self.owner is t:
            _recursive(kernel, t, self, where)
            _deadlock(kernel, t, self, "itself", where)
        elif self.owner is not None:
            if s is None:
                _deadlock(kernel, t, self, repr(self.owner), where)
            else:
                kernel.lockdep.check(t, self, where)
                self._wait(s, t, where)
                kernel.lockdep.acquire(t, self, read=False, trylock=True, where=where)
                self.owner = t
                if self._atomic:
                    t.preempt_count += 1
                return
        kernel.lockdep.acquire(t, self, read=False, trylock=False, where=where)
        self.owner = t
        if self._atomic:
            t.preempt_count += 1

    def _wait(self, s: Scheduler, t: Task, where: str) -> None:
        """Sleep (mutex) or spin (spinlock) until the lock is free or handed to ``t``.

        A woken mutex waiter that finds the lock taken again (stolen by a task that locked
        it before the waiter ran) waits again, keeping its place; if it is the first waiter
        it sets the handoff flag, so the next unlock hands the lock straight to it
        (kernel/locking/mutex.c ``__mutex_trylock_or_handoff``, ``__mutex_handoff``).
        """
        verb = "mutex" if self._sleeps else "spinlock"
        me = s.current
        self.waiters.append(me)
        try:
            while self.owner not in (None, t):
                s.block(lambda: f"{verb} {self.name}, held by {_who(self.owner)}")
                if self.owner not in (None, t) and self.waiters[0] is me:
                    self.handoff = True
        except BaseException:
            # Unwound (a failed run) after the unlock handed it over: it was never taken.
            if self.owner is t:
                self.owner = None
            raise
        finally:
            if self.waiters and self.waiters[0] is me:
                self.handoff = False
            if me in self.waiters:
                self.waiters.remove(me)

    def _try(self, kernel: Kernel, where: str) -> bool:
        """The trylock: fails when held or when fault injection says so; never sleeps."""
        kernel.counters.trylock += 1
        s = kernel._sched
        if s is not None:
            s.point(SwitchKind.LOCK, _label(where, self.name))
        if self.owner is not None or kernel.fault_inject.should_fail("trylock"):
            kernel.counters.trylock_failed += 1
            if s is not None:
                s.point(SwitchKind.TRYLOCK_FAIL, _label(where, self.name))
            return False
        t = kernel.current
        kernel.lockdep.acquire(t, self, read=False, trylock=True, where=where)
        self.owner = t
        if self._atomic:
            t.preempt_count += 1
        return True

    def _release(self, kernel: Kernel, where: str, call: str) -> None:
        """The unlock: only the owner may release (reported otherwise, lock kept)."""
        t = kernel.current
        if self.owner is not t:
            kernel.report(
                SplatKind.LOCKDEP,
                "unlock-balance",
                f"{call} of {self.name} by {t.comm}/{t.pid}, owner is {self.owner!r}",
                where,
                title=self._wrong_owner_title,
            )
            return
        kernel.lockdep.release(t, self, where)
        self.owner = None
        if self._atomic and t.preempt_count > 0:
            t.preempt_count -= 1
        s = kernel._sched
        if s is not None:
            if self._atomic and not t.preempt_count:
                s.wake_up_var(kernel.rcu)  # the implied RCU read-side section ended
            if self.waiters:
                first = self.waiters[0]
                if self._fifo or self.handoff:
                    # __mutex_handoff / the qspinlock queue head: the first waiter owns it
                    # from now on; nobody can steal it before the waiter runs.
                    self.owner = first.task
                    self.handoff = False
                s.wake(first)
            s.point(SwitchKind.UNLOCK, _label(where, self.name))


class SpinLock(_OwnedLock):
    """A ``spinlock_t`` (kernel/locking/spinlock.c): holding it disables preemption, so the
    holder is in atomic context.

    Invariant: ``owner`` is the task holding it, or None. Waiters get it in the order they
    came (the MCS queue of kernel/locking/qspinlock.c: the unlock hands it to the queue head).
    """

    __slots__ = ()
    _atomic = True
    _fifo = True
    _wrong_owner_title = "BUG: spinlock wrong owner on CPU#0"

    def lock(self, kernel: Kernel, where: str = "kernel/locking/spinlock.c:spin_lock") -> None:
        """``spin_lock()``: spinning on a lock that is held for ever is a deadlock."""
        self._acquire(kernel, where)

    def trylock(
        self, kernel: Kernel, where: str = "kernel/locking/spinlock.c:spin_trylock"
    ) -> bool:
        """``spin_trylock()``."""
        return self._try(kernel, where)

    def unlock(self, kernel: Kernel, where: str = "kernel/locking/spinlock.c:spin_unlock") -> None:
        """``spin_unlock()``."""
        self._release(kernel, where, "spin_unlock")


class Mutex(_OwnedLock):
    """A ``struct mutex`` (kernel/locking/mutex.c): a sleeping lock with a strict owner.

    Invariant: ``owner`` is the task holding it, or None.
    """

    __slots__ = ()
    _sleeps = True
    _wrong_owner_title = "DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)"

    def lock(self, kernel: Kernel, where: str = "kernel/locking/mutex.c:mutex_lock") -> None:
        """``mutex_lock()``: may sleep; blocking on a lock held for ever is a deadlock."""
        self._acquire(kernel, where)
        kernel.counters.mutex_lock += 1

    def trylock(self, kernel: Kernel, where: str = "kernel/locking/mutex.c:mutex_trylock") -> bool:
        """``mutex_trylock()``."""
        return self._try(kernel, where)

    def unlock(self, kernel: Kernel, where: str = "kernel/locking/mutex.c:mutex_unlock") -> None:
        """``mutex_unlock()``: only the owner may unlock (DEBUG_MUTEXES)."""
        self._release(kernel, where, "mutex_unlock")

    def is_locked(self) -> bool:
        """``mutex_is_locked()``."""
        return self.owner is not None


class _RwWaiter:
    """One task queued on an rwsem (``struct rwsem_waiter``)."""

    __slots__ = ("ctx", "granted", "task", "where", "write")

    def __init__(self, ctx: Context, task: Task, write: bool, where: str) -> None:
        self.ctx = ctx
        self.task = task
        self.write = write
        self.where = where
        self.granted = False


class RwSemaphore(_Lock):
    """A ``struct rw_semaphore`` (the mmap lock, ``i_mmap_rwsem``).

    Invariant: either ``writer`` is set and ``readers`` is empty, or ``writer`` is None; a
    task appears in ``readers`` once per read acquisition it holds. ``waiters`` is the wait
    list inside ``Kernel.concurrently`` (kernel/locking/rwsem.c): while it is not empty a read
    trylock fails and a new reader queues unless the lock is free. ``queued_writers`` counts
    writers simulated as waiting in other tasks (a read trylock fails while one waits).
    """

    __slots__ = ("queued_writers", "readers", "waiters", "writer")

    def __init__(self, name: str, lock_class: LockClass | None = None) -> None:
        super().__init__(name, lock_class)
        self.readers: list[Task] = []
        self.writer: Task | None = None
        self.queued_writers = 0
        self.waiters: deque[_RwWaiter] = deque()

    def _holders(self) -> str:
        if self.writer is not None:
            return f"writer {_who(self.writer)}"
        if self.readers:
            return "readers " + ", ".join(_who(r) for r in self.readers)
        return "nobody (a waiter ahead was woken)"

    def down_read(self, kernel: Kernel, where: str) -> None:
        """``down_read()``: may sleep. Inside ``Kernel.concurrently`` it queues behind a
        held or queued writer (``rwsem_down_read_slowpath``: a reader steals the lock only
        when nobody holds it); outside, blocking there is a deadlock."""
        t = kernel.current
        if (
            t.preempt_count
            or t.rcu_depth
            or t.irqs_disabled
            or t.nosleep
            or _marks.audit is not None
        ):
            might_sleep(kernel, where, switch=False)  # the report (its check, inlined)
        s = kernel._sched
        if s is not None:
            s.point(SwitchKind.LOCK, _label(where, self.name))
        if self.writer is not None:
            if self.writer is t:
                _recursive(kernel, t, self, where)
            if s is None or self.writer is t:
                _deadlock(kernel, t, self, f"writer {self.writer!r}", where)
        if t in self.readers:
            _recursive(kernel, t, self, where)
            if self.queued_writers:
                _deadlock(
                    kernel, t, self, "itself (a writer is queued behind its read lock)", where
                )
        elif self.queued_writers:
            _deadlock(kernel, t, self, "a queued writer", where)
        if s is not None and not (self.writer is None and (not self.waiters or not self.readers)):
            kernel.lockdep.check(t, self, where)
            self._queue(s, t, False, where)
            return
        kernel.lockdep.acquire(t, self, read=True, trylock=False, where=where)
        self.readers.append(t)

    def _queue(self, s: Scheduler, t: Task, write: bool, where: str) -> None:
        """Join the wait list and sleep: a reader until a waker grants it the lock, a writer
        until it is woken and finds the lock free (``rwsem_down_write_slowpath``)."""
        w = _RwWaiter(s.current, t, write, where)
        self.waiters.append(w)
        kind = "write" if write else "read"
        try:
            while True:
                s.block(lambda: f"rwsem {self.name} for {kind}, held by {self._holders()}")
                if w.granted:
                    return
                if write and self.writer is None and not self.readers:
                    self.waiters.remove(w)
                    w.granted = True
                    t.kernel.lockdep.acquire(t, self, read=False, trylock=True, where=where)
                    self.writer = t
                    return
        except BaseException:
            if w.granted and not write and t in self.readers:
                # Unwound (a failed run) after rwsem_mark_wake granted it: give it back.
                self.readers.remove(t)
                t.kernel.lockdep.release(t, self, where)
            raise
        finally:
            if not w.granted and w in self.waiters:
                self.waiters.remove(w)

    def _wake(self, s: Scheduler) -> None:
        """``rwsem_mark_wake``: a writer at the head of the queue is woken to retry (when the
        lock is free); readers at the head get the lock at once, every queued reader with
        them (writers keep their place)."""
        if not self.waiters:
            return
        first = self.waiters[0]
        if first.write:
            if self.writer is None and not self.readers:
                s.wake(first.ctx)
            return
        if self.writer is not None:
            return
        for w in [w for w in self.waiters if not w.write]:
            self.waiters.remove(w)
            w.granted = True
            w.task.kernel.lockdep.acquire(w.task, self, read=True, trylock=True, where=w.where)
            self.readers.append(w.task)
            s.wake(w.ctx)

    def down_read_trylock(self, kernel: Kernel, where: str) -> bool:
        """``down_read_trylock()``: fails while a writer holds it or anyone waits for it."""
        s = kernel._sched
        if s is not None:
            s.point(SwitchKind.LOCK, _label(where, self.name))
        if (
            self.writer is not None
            or self.queued_writers
            or self.waiters
            or kernel.fault_inject.should_fail("trylock")
        ):
            if s is not None:
                s.point(SwitchKind.TRYLOCK_FAIL, _label(where, self.name))
            return False
        t = kernel.current
        kernel.lockdep.acquire(t, self, read=True, trylock=True, where=where)
        self.readers.append(t)
        return True

    def down_write(self, kernel: Kernel, where: str) -> None:
        """``down_write()``: may sleep; inside ``Kernel.concurrently`` it waits for every
        holder; outside, blocking there is a deadlock."""
        t = kernel.current
        if (
            t.preempt_count
            or t.rcu_depth
            or t.irqs_disabled
            or t.nosleep
            or _marks.audit is not None
        ):
            might_sleep(kernel, where, switch=False)  # the report (its check, inlined)
        s = kernel._sched
        if s is not None:
            s.point(SwitchKind.LOCK, _label(where, self.name))
        if self.writer is not None or self.readers:
            if self.writer is t or t in self.readers:
                _recursive(kernel, t, self, where)
                _deadlock(kernel, t, self, "itself", where)
            if s is None:
                holder = self.writer if self.writer is not None else self.readers[0]
                _deadlock(kernel, t, self, repr(holder), where)
            else:
                kernel.lockdep.check(t, self, where)
                self._queue(s, t, True, where)
                return
        kernel.lockdep.acquire(t, self, read=False, trylock=False, where=where)
        self.writer = t

    def down_write_trylock(self, kernel: Kernel, where: str) -> bool:
        """``down_write_trylock()``: fails while anyone holds it or waits for it."""
        s = kernel._sched
        if s is not None:
            s.point(SwitchKind.LOCK, _label(where, self.name))
        if (
            self.writer is not None
            or self.readers
            or self.waiters
            or kernel.fault_inject.should_fail("trylock")
        ):
            if s is not None:
                s.point(SwitchKind.TRYLOCK_FAIL, _label(where, self.name))
            return False
        t = kernel.current
        kernel.lockdep.acquire(t, self, read=False, trylock=True, where=where)
        self.writer = t
        return True

    def up_read(self, kernel: Kernel, where: str) -> None:
        """``up_read()``: the reader must hold it; the last reader wakes the queue."""
        t = kernel.current
        if t not in self.readers:
            kernel.report(
                SplatKind.LOCKDEP,
                "unlock-balance",
                f"up_read of {self.name} by {t.comm}/{t.pid}, which does not hold it for read",
                where,
                title="DEBUG_RWSEMS_WARN_ON(!is_rwsem_reader_owned(sem))",
            )
            return
        kernel.lockdep.release(t, self, where)
        self.readers.remove(t)
        s = kernel._sched
        if s is not None:
            if not self.readers:
                self._wake(s)
            s.point(SwitchKind.UNLOCK, _label(where, self.name))

    def up_write(self, kernel: Kernel, where: str) -> None:
        """``up_write()``: only the writer may release it; wakes the queue."""
        t = kernel.current
        if self.writer is not t:
            kernel.report(
                SplatKind.LOCKDEP,
                "unlock-balance",
                f"up_write of {self.name} by {t.comm}/{t.pid}, owner is {self.writer!r}",
                where,
                title="DEBUG_RWSEMS_WARN_ON(sem->owner != current)",
            )
            return
        kernel.lockdep.release(t, self, where)
        self.writer = None
        s = kernel._sched
        if s is not None:
            self._wake(s)
            s.point(SwitchKind.UNLOCK, _label(where, self.name))

    def downgrade_write(self, kernel: Kernel, where: str) -> None:
        """``downgrade_write()``: the writer becomes a reader without releasing; queued
        readers at the head of the queue join it (``rwsem_downgrade_wake``)."""
        t = kernel.current
        if self.writer is not t:
            kernel.report(
                SplatKind.LOCKDEP,
                "unlock-balance",
                f"downgrade_write of {self.name} by {t.comm}/{t.pid}, owner is {self.writer!r}",
                where,
                title="DEBUG_RWSEMS_WARN_ON(sem->owner != current)",
            )
            return
        self.writer = None
        self.readers.append(t)
        for h in t.held_locks:
            if h.lock is self:
                h.read = True
        s = kernel._sched
        if s is not None:
            self._wake(s)
            s.point(SwitchKind.UNLOCK, _label(where, self.name))

    def is_write_locked_by(self, t: Task) -> bool:
        """Whether ``t`` holds it for writing."""
        return self.writer is t

    def is_locked_by(self, t: Task) -> bool:
        """Whether ``t`` holds it for reading or writing (``rwsem_assert_held`` per task)."""
        return self.writer is t or t in self.readers
