"""RCU-protected pointers for drivers (``include/linux/rcupdate.h``): :class:`RcuPointer`
publishes an object; :meth:`RcuPointer.read` gives a :class:`RcuRef` that is valid only inside
the reader's RCU read-side section; :meth:`RcuPointer.replace` publishes a new object and
frees the old one after a grace period (``kfree_rcu``).

A read-side section is implied by a held :class:`~safemm.sync.SpinLock` (or an explicit
:func:`rcu_read_lock`). Sleeping inside it is a bug the model reports ("sleeping function
called from invalid context"); on a kernel without ``panic_on_warn`` the scheduler's recovery
ends the section early, the grace period ends, and the next :meth:`RcuRef.get` is reported as
a KASAN use-after-free (review, Jann Horn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, final

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
from .model import rcupdate as _rcu
from .model.atomic import atomic_guard, atomic_unlock

if TYPE_CHECKING:
    from .model.kernel import Kernel

__all__ = ["RcuPointer", "RcuReadGuard", "RcuRef", "rcu_read_lock"]

T = TypeVar("T")


@final
class RcuRef(SafeObject, Generic[T]):
    """An object read through an :class:`RcuPointer`.

    Invariant: the object is not freed while the reader stays inside the read-side section it
    was read in; :meth:`get` on an object whose grace period has ended is a use-after-free.
    """

    __slots__ = ("_obj",)

    def __init__(self, _key: _Token, obj: _rcu.RcuObject[T]) -> None:
        check_token(_key, "RcuRef")
        self._obj = obj

    def get(self) -> T:
        """The object's value (KASAN use-after-free report if it was freed meanwhile)."""
        return self._obj.get()

    @override
    def __repr__(self) -> str:
        return f"<RcuRef {self._obj!r}>"


@final
class RcuPointer(SafeObject, Generic[T]):
    """An ``__rcu`` pointer to a driver object of type ``T``."""

    __slots__ = ("_ptr",)

    def __init__(self, name: str, value: T) -> None:
        self._ptr: _rcu.RcuPointer[T] = _rcu.RcuPointer(
            running_kernel("RcuPointer()"), name, value
        )

    def read(self) -> RcuRef[T]:
        """``rcu_dereference``: the published object, valid until the read-side section (the
        held spinlock or :func:`rcu_read_lock` guard) ends."""
        return RcuRef(_TOKEN, self._ptr.rcu_dereference())

    def replace(self, value: T) -> None:
        """``rcu_assign_pointer`` + ``kfree_rcu(old)``: publish ``value``; the old object is
        freed once no reader can still hold it."""
        _rcu.kfree_rcu(self._ptr.rcu_assign_pointer(value))

    @override
    def __repr__(self) -> str:
        return f"<RcuPointer {self._ptr.name}>"


@final
@atomic_guard("RCU read-side section")
class RcuReadGuard(Releasable):
    """An explicit RCU read-side section (``rcu_read_lock()``), ended by :meth:`unlock`."""

    __slots__ = ("_kernel", "_scope")

    def __init__(self, _key: _Token, kernel: Kernel) -> None:
        check_token(_key, "RcuReadGuard")
        self._kernel = kernel
        self._scope = HookScope(kernel, "an RCU read-side section")

    @atomic_unlock
    def unlock(self) -> None:
        """``rcu_read_unlock()``."""
        if not self._scope.alive:
            stale("RcuReadGuard.unlock()", self._scope)
        self._kernel.rcu.read_unlock()
        self._scope.end("RcuReadGuard.unlock()")

    @override
    def _end_block(self) -> None:
        if self._scope.alive:
            self.unlock()


def rcu_read_lock() -> RcuReadGuard:
    """``rcu_read_lock()``: enter a read-side section (nothing in it may sleep)."""
    k = running_kernel("rcu_read_lock()")
    k.rcu.read_lock()
    return RcuReadGuard(_TOKEN, k)
