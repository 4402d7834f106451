"""Driver locks with lockdep checking: :class:`Mutex` (sleeping) and :class:`SpinLock`
(atomic context while held). Mirrors kernel/locking via :mod:`safemm.model.locking`.

Guards are context managers; a guard must be unlocked by the task that locked it, before the
hook returns to user space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from typing_extensions import override

from ._scope import (
    _TOKEN,
    HookScope,
    Releasable,
    SafeObject,
    _Token,
    check_token,
    running_kernel,
    stale,
)
from .model import locking as _locking
from .model.atomic import atomic_guard, atomic_unlock, may_sleep

if TYPE_CHECKING:
    from .model.kernel import Kernel

__all__ = ["Mutex", "MutexGuard", "SpinLock", "SpinLockGuard"]


class _LockGuard(Releasable):
    __slots__ = ("__weakref__", "_kernel", "_lock", "_scope")

    def __init__(
        self, _key: _Token, kernel: Kernel, lock: _locking.Mutex | _locking.SpinLock
    ) -> None:
        check_token(_key, type(self).__name__)
        self._kernel = kernel
        self._lock = lock
        self._scope = HookScope(kernel, f"the hold of {lock.name}")

    @atomic_unlock
    def unlock(self) -> None:
        """Release the lock."""
        if not self._scope.alive:
            stale(f"{type(self).__name__}.unlock()", self._scope)
        self._lock.unlock(self._kernel)
        self._scope.end(f"{type(self).__name__}.unlock()")

    @property
    def locked(self) -> bool:
        """Whether this guard still holds the lock."""
        return self._scope.alive

    @override
    def _end_block(self) -> None:
        if self._scope.alive:
            self.unlock()

    def __del__(self) -> None:
        if not hasattr(self, "_scope"):  # the constructor refused (no token)
            return
        if self._scope.alive:
            self._kernel.leak(
                f"{type(self).__name__} of {self._lock.name}",
                f"{self._lock.name} was locked and the guard dropped without unlock()",
            )


@final
class MutexGuard(_LockGuard):
    """Holds a :class:`Mutex`."""

    __slots__ = ()


@final
@atomic_guard("SpinLock '{lock}'")
class SpinLockGuard(_LockGuard):
    """Holds a :class:`SpinLock` (the holder is in atomic context: nothing may sleep)."""

    __slots__ = ()


@final
class Mutex(SafeObject):
    """A sleeping lock (``struct mutex``). Locks sharing a ``name`` share a lockdep class."""

    __slots__ = ("_lock",)

    _classes: dict[str, _locking.LockClass] = {}  # noqa: RUF012 - lockdep keys by init site

    def __init__(self, name: str) -> None:
        cls = Mutex._classes.setdefault(name, _locking.LockClass(name))
        self._lock = _locking.Mutex(name, cls)

    @may_sleep("use Mutex.try_lock(), or take the mutex before the atomic section")
    def lock(self) -> MutexGuard:
        """``mutex_lock``: may sleep."""
        k = running_kernel("Mutex.lock")
        self._lock.lock(k)
        return MutexGuard(_TOKEN, k, self._lock)

    def try_lock(self) -> MutexGuard | None:
        """``mutex_trylock``: never sleeps; None when held."""
        k = running_kernel("Mutex.try_lock")
        if not self._lock.trylock(k):
            return None
        return MutexGuard(_TOKEN, k, self._lock)

    @override
    def __repr__(self) -> str:
        return f"<Mutex {self._lock.name}>"


@final
class SpinLock(SafeObject):
    """A spinning lock (``spinlock_t``): holding it disables preemption."""

    __slots__ = ("_lock",)

    _classes: dict[str, _locking.LockClass] = {}  # noqa: RUF012 - lockdep keys by init site

    def __init__(self, name: str) -> None:
        cls = SpinLock._classes.setdefault(name, _locking.LockClass(name))
        self._lock = _locking.SpinLock(name, cls)

    def lock(self) -> SpinLockGuard:
        """``spin_lock``."""
        k = running_kernel("SpinLock.lock")
        self._lock.lock(k)
        return SpinLockGuard(_TOKEN, k, self._lock)

    def try_lock(self) -> SpinLockGuard | None:
        """``spin_trylock``."""
        k = running_kernel("SpinLock.try_lock")
        if not self._lock.trylock(k):
            return None
        return SpinLockGuard(_TOKEN, k, self._lock)

    @override
    def __repr__(self) -> str:
        return f"<SpinLock {self._lock.name}>"
