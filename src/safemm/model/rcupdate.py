"""RCU-protected pointers and objects freed after a grace period.

Mirrors the updater and reader API of include/linux/rcupdate.h — ``rcu_assign_pointer``,
``rcu_dereference`` and ``kfree_rcu`` (an object is freed once every reader that could have
seen it has left its read-side section) — with the detection KASAN adds on top
(mm/kasan/report.c ``kasan_report``): touching an object after it was freed prints
"BUG: KASAN: slab-use-after-free".

The model's grace periods are driven by :class:`~safemm.model.sched.Rcu`: they end at a
quiescent point (a context switch, ``synchronize_rcu``, the return to user space) when no
task is inside a read-side section, explicit (``rcu_read_lock``) or implied by a held
spinlock. That is what makes the review's "scheduling while atomic" scenario observable: after
``__schedule_bug`` resets the preempt count, the spinlock no longer keeps the grace period
from ending, the object is freed under the reader's feet, and its next use is reported here.

Simplification: a reader's pointer is the object itself (no address reuse, so a freed object
stays detectably freed forever).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from typing_extensions import override

from .printk import SplatKind

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["RcuObject", "RcuPointer", "kfree_rcu"]

T = TypeVar("T")


class RcuObject(Generic[T]):
    """A slab object published under RCU (a ``struct`` with an ``rcu_head``).

    Invariant: ``freed`` becomes True once, when the grace period after ``kfree_rcu()``
    ends; ``value`` is its contents, readable (with a KASAN report after the free) through
    :meth:`get`.
    """

    __slots__ = ("freed", "id", "kernel", "name", "queued", "value")

    def __init__(self, kernel: Kernel, name: str, value: T) -> None:
        self.kernel = kernel
        self.id = kernel.new_id("rcu")
        self.name = name
        self.value = value
        self.queued = False
        self.freed = False

    def get(self, where: str = "include/linux/rcupdate.h:rcu_dereference") -> T:
        """Read the object: a KASAN use-after-free report if it was already freed (raised
        under ``panic_on_warn``; otherwise the stale contents are returned, as the kernel
        would read them)."""
        if self.freed:
            k = self.kernel
            t = k.current
            k.report(
                SplatKind.WARNING,
                "use-after-free",
                f"read of {self.name} (object #{self.id}) by task {t.comm}/{t.pid}, freed by "
                "kfree_rcu after a grace period that ended while this reader still used it",
                where,
                title=f"BUG: KASAN: slab-use-after-free in {where.rsplit(':', 1)[-1]}",
            )
        return self.value

    @override
    def __repr__(self) -> str:
        state = " freed" if self.freed else (" queued" if self.queued else "")
        return f"<rcu object {self.name}#{self.id}{state}>"


class RcuPointer(Generic[T]):
    """An ``__rcu`` pointer: readers ``rcu_dereference`` it, updaters ``rcu_assign_pointer``
    a new object and free the old one with ``kfree_rcu()``.

    Invariant: ``current`` is the published object, never freed while published.
    """

    __slots__ = ("current", "kernel", "name")

    def __init__(self, kernel: Kernel, name: str, value: T) -> None:
        self.kernel = kernel
        self.name = name
        self.current: RcuObject[T] = RcuObject(kernel, name, value)

    def rcu_dereference(self) -> RcuObject[T]:
        """``rcu_dereference``: the published object. It stays valid only until the reader's
        read-side section ends (``rcu_read_unlock``, or the spinlock that implied it)."""
        return self.current

    def rcu_assign_pointer(self, value: T) -> RcuObject[T]:
        """``rcu_assign_pointer``: publish a new object; returns the old one, which readers
        may still hold (free it with ``kfree_rcu()``)."""
        old = self.current
        self.current = RcuObject(self.kernel, self.name, value)
        return old

    @override
    def __repr__(self) -> str:
        return f"<__rcu {self.name} -> {self.current!r}>"


def kfree_rcu(obj: RcuObject[T]) -> None:
    """``kfree_rcu``: free ``obj`` after the next grace period (``call_rcu``); a double free
    is a KASAN report."""
    k = obj.kernel
    if obj.queued:
        k.report(
            SplatKind.WARNING,
            "use-after-free",
            f"kfree_rcu of {obj!r}, which is already freed or queued to be",
            "include/linux/rcupdate.h:kfree_rcu",
            title="BUG: KASAN: double-free in kfree_rcu",
        )
        return
    obj.queued = True

    def free() -> None:
        obj.freed = True

    k.rcu.call_rcu(free)
