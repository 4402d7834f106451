"""Sleeping and spinning locks with lockdep-style checking.

Mirrors kernel/locking/{spinlock,mutex,rwsem}.c for semantics and kernel/locking/lockdep.c for
the checks: every acquisition is recorded on the task's held-lock stack; a blocking acquisition
adds "held → acquired" edges between lock classes and reports a cycle ("possible circular
locking dependency detected"); re-taking a held lock, releasing a lock one does not hold, and
(at the return to user space) still holding a lock are reported.

Simplification: with no real concurrency, a blocking acquisition of a lock that is not free can
never succeed (its holder cannot run); the model reports that as a :class:`Deadlock` instead of
hanging. ``RwSemaphore.queued_writers`` simulates a writer waiting in another task, which is
what makes a read trylock fail and a recursive read acquisition deadlock in the kernel.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from typing_extensions import override

from .printk import SplatKind
from .sched import might_sleep

if TYPE_CHECKING:
    from .kernel import Kernel
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
        """Record an acquisition (``lock_acquire``); check it unless it is a trylock."""
        if not trylock and task.held_locks:
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


class _OwnedLock(_Lock):
    """An exclusive lock with a strict owner (what a spinlock and a mutex share).

    Invariant: ``owner`` is the task holding it, or None. Subclasses say whether taking it
    sleeps (``mutex``) or disables preemption (``spinlock``) and how an unlock by the wrong
    task is titled.
    """

    __slots__ = ("owner",)

    #: Taking it may sleep (``might_sleep`` in the blocking acquisition).
    _sleeps = False
    #: Holding it is atomic context (raises the preempt count).
    _atomic = False
    _wrong_owner_title = "BUG: lock wrong owner"

    def __init__(self, name: str, lock_class: LockClass | None = None) -> None:
        super().__init__(name, lock_class)
        self.owner: Task | None = None

    def _acquire(self, kernel: Kernel, where: str) -> None:
        """The blocking acquisition: a lock held for ever (by anyone) is a deadlock."""
        if self._sleeps:
            might_sleep(kernel, where)
        t = kernel.current
        if self.owner is t:
            _recursive(kernel, t, self, where)
            _deadlock(kernel, t, self, "itself", where)
        elif self.owner is not None:
            _deadlock(kernel, t, self, repr(self.owner), where)
        kernel.lockdep.acquire(t, self, read=False, trylock=False, where=where)
        self.owner = t
        if self._atomic:
            t.preempt_count += 1

    def _try(self, kernel: Kernel, where: str) -> bool:
        """The trylock: fails when held or when fault injection says so; never sleeps."""
        kernel.counters.trylock += 1
        if self.owner is not None or kernel.fault_inject.should_fail("trylock"):
            kernel.counters.trylock_failed += 1
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


class SpinLock(_OwnedLock):
    """A ``spinlock_t`` (kernel/locking/spinlock.c): holding it disables preemption, so the
    holder is in atomic context.

    Invariant: ``owner`` is the task holding it, or None.
    """

    __slots__ = ()
    _atomic = True
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


class RwSemaphore(_Lock):
    """A ``struct rw_semaphore`` (the mmap lock, ``i_mmap_rwsem``).

    Invariant: either ``writer`` is set and ``readers`` is empty, or ``writer`` is None; a
    task appears in ``readers`` once per read acquisition it holds. ``queued_writers`` counts
    writers simulated as waiting in other tasks (a read trylock fails while one waits).
    """

    __slots__ = ("queued_writers", "readers", "writer")

    def __init__(self, name: str, lock_class: LockClass | None = None) -> None:
        super().__init__(name, lock_class)
        self.readers: list[Task] = []
        self.writer: Task | None = None
        self.queued_writers = 0

    def down_read(self, kernel: Kernel, where: str) -> None:
        """``down_read()``: may sleep; blocked forever behind a held or queued writer."""
        might_sleep(kernel, where)
        t = kernel.current
        if self.writer is not None:
            if self.writer is t:
                _recursive(kernel, t, self, where)
            _deadlock(kernel, t, self, f"writer {self.writer!r}", where)
        if t in self.readers:
            _recursive(kernel, t, self, where)
            if self.queued_writers:
                _deadlock(
                    kernel, t, self, "itself (a writer is queued behind its read lock)", where
                )
        elif self.queued_writers:
            _deadlock(kernel, t, self, "a queued writer", where)
        kernel.lockdep.acquire(t, self, read=True, trylock=False, where=where)
        self.readers.append(t)

    def down_read_trylock(self, kernel: Kernel, where: str) -> bool:
        """``down_read_trylock()``: fails while a writer holds it or is queued."""
        if (
            self.writer is not None
            or self.queued_writers
            or kernel.fault_inject.should_fail("trylock")
        ):
            return False
        t = kernel.current
        kernel.lockdep.acquire(t, self, read=True, trylock=True, where=where)
        self.readers.append(t)
        return True

    def down_write(self, kernel: Kernel, where: str) -> None:
        """``down_write()``: may sleep; blocked forever while anyone else holds it."""
        might_sleep(kernel, where)
        t = kernel.current
        if self.writer is not None or self.readers:
            if self.writer is t or t in self.readers:
                _recursive(kernel, t, self, where)
                _deadlock(kernel, t, self, "itself", where)
            holder = self.writer if self.writer is not None else self.readers[0]
            _deadlock(kernel, t, self, repr(holder), where)
        kernel.lockdep.acquire(t, self, read=False, trylock=False, where=where)
        self.writer = t

    def down_write_trylock(self, kernel: Kernel, where: str) -> bool:
        """``down_write_trylock()``."""
        if self.writer is not None or self.readers or kernel.fault_inject.should_fail("trylock"):
            return False
        t = kernel.current
        kernel.lockdep.acquire(t, self, read=False, trylock=True, where=where)
        self.writer = t
        return True

    def up_read(self, kernel: Kernel, where: str) -> None:
        """``up_read()``: the reader must hold it."""
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

    def up_write(self, kernel: Kernel, where: str) -> None:
        """``up_write()``: only the writer may release it."""
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

    def downgrade_write(self, kernel: Kernel, where: str) -> None:
        """``downgrade_write()``: the writer becomes a reader without releasing."""
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

    def is_write_locked_by(self, t: Task) -> bool:
        """Whether ``t`` holds it for writing."""
        return self.writer is t

    def is_locked_by(self, t: Task) -> bool:
        """Whether ``t`` holds it for reading or writing (``rwsem_assert_held`` per task)."""
        return self.writer is t or t in self.readers
