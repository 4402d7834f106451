"""The mm reference types and the lock guards (see :mod:`safemm.mm`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self, final

from typing_extensions import deprecated, override

from . import _virt
from ._scope import _TOKEN, SafeObject, Scope, _Token, check_token, install_missing, stale
from .model import fork as _fork
from .model import mmap_lock as _ml
from .model.atomic import may_sleep
from .model.errors import StaleReferenceError
from .model.mmap_lock import mmap_read_lock as _mmap_read_lock
from .model.mmap_lock import mmap_read_unlock as _mmap_read_unlock

_new = object.__new__

if TYPE_CHECKING:
    from types import TracebackType

    from .model.kernel import Kernel
    from .model.mm_types import MmStruct, Vma

__all__ = [
    "Mm",
    "MmWithUser",
    "MmWithUserAsync",
    "MmapReadGuard",
    "MmapWriteGuard",
    "VmaReadGuard",
]

# Reference kinds.
_BORROWED = 0
_COUNT = 1  # owns one mm_count (mmgrab)
_USERS = 2  # owns one mm_users (mmget_not_zero)
_ASYNC = 3  # owns one mm_users, released with mmput_async


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


class Mm(SafeObject):
    """An ``mm_struct`` known to be allocated: holds (or borrows) an ``mm_count`` reference.

    Invariant: the ``mm_struct`` is not freed while this handle is valid; its address space
    may already be gone (``mm_users`` may be 0), so nothing here touches VMAs or locks. An
    owned reference (from :meth:`MmWithUser.mmgrab`) must be released with :meth:`mmdrop`;
    a borrowed one is valid only while its lender is.
    """

    __slots__ = ("__weakref__", "_kind", "_mm", "_released", "_scope")

    def __init__(self, _key: _Token, mm: MmStruct, kind: int, scope: Scope | None) -> None:
        check_token(_key, type(self).__name__)
        self._mm = mm
        self._kind = kind
        self._scope = scope
        self._released = ""

    def _live(self) -> MmStruct:
        if self._released:
            raise StaleReferenceError(f"{self!r} used after {self._released}")
        s = self._scope
        if s is not None and not s.alive:
            stale(repr(self), s)
        return self._mm

    @property
    def _kernel(self) -> Kernel:
        return self._mm.kernel

    def mmget_not_zero(self) -> MmWithUser | None:
        """``mmget_not_zero``: a new owned ``mm_users`` reference, or None if the address space
        is already being torn down. Release it with :meth:`MmWithUser.mmput`."""
        mm = self._live()
        if not _fork.mmget_not_zero(mm):
            return None
        return MmWithUser(_TOKEN, mm, _USERS, None)

    def mmdrop(self) -> None:
        """Release the owned ``mm_count`` reference (``mmdrop``)."""
        mm = self._live()
        if self._kind != _COUNT:
            raise TypeError(_wrong_release(self, "mmdrop()"))
        self._released = "mmdrop()"
        _fork.mmdrop(mm)

    def is_same_mm(self, other: Mm) -> bool:
        """Whether both handles name the same ``mm_struct`` (``ptr::eq`` in Rust binder)."""
        return self._live() is other._live()

    def __del__(self) -> None:
        if not hasattr(self, "_released"):  # the constructor refused (no token)
            return
        if self._kind != _BORROWED and not self._released:
            what = {_COUNT: "mm_count (mmgrab)", _USERS: "mm_users", _ASYNC: "mm_users"}
            self._mm.kernel.leak(
                f"{type(self).__name__} of mm {self._mm.id}",
                f"an owned {what[self._kind]} reference on mm {self._mm.id} was dropped "
                "without being released",
            )

    @override
    def __repr__(self) -> str:
        kind = {_BORROWED: "borrowed", _COUNT: "mmgrab", _USERS: "mmget", _ASYNC: "mmget"}
        return f"<{type(self).__name__} mm={self._mm.id} {kind[self._kind]}>"


_NEEDS_USERS = (
    "needs an mm_users reference: `user = mm.mmget_not_zero()`, check it for None, then use `user`"
)
_MM_HINTS = {
    "mmap_read_lock": _NEEDS_USERS,
    "mmap_read_trylock": _NEEDS_USERS,
    "mmap_write_lock": _NEEDS_USERS,
    "lock_vma_under_rcu": _NEEDS_USERS,
    "vma_lookup": "needs the mmap lock: `with user.mmap_read_lock() as guard: "
    "guard.vma_lookup(addr)`",
}


# Run-time messages for calls the type checker would refuse (attr-defined).
install_missing(Mm, _MM_HINTS)


def _wrong_release(ref: Mm, call: str) -> str:
    if ref._kind == _BORROWED:
        return f"{call} on a borrowed {type(ref).__name__}: only references you took are yours"
    if ref._kind == _COUNT:
        return f"{call} on an mm_count reference: release it with mmdrop()"
    return f"{call} on an mm_users reference: release it with mmput()"


def _check_users(self: Mm) -> MmStruct:
    """The mm behind a handle that must hold (or borrow) ``mm_users``."""
    mm = self._live()
    if self._kind == _COUNT:
        # An mm_count handle forced into this method (an unbound call, a cast).
        raise TypeError(f"{self!r} holds only mm_count: locking {_NEEDS_USERS}")
    if mm.mm_users <= 0:
        raise StaleReferenceError(f"{self!r}: the address space is gone (mm_users is 0)")
    return mm


class MmWithUser(Mm):
    """An ``mm_struct`` whose address space is alive: ``mm_users > 0`` is held (or borrowed).

    Invariant: ``mm_users`` stays non-zero while this handle is valid, so the mmap lock, the
    per-VMA locks and the VMA tree may be used. This is the only type that can take them.
    """

    __slots__ = ()

    @may_sleep("use mmap_read_trylock() (or lock_vma_under_rcu())")
    def mmap_read_lock(self) -> MmapReadGuard:
        """``mmap_read_lock``: may sleep."""
        mm = self._mm
        s = self._scope
        if (
            self._released
            or self._kind == _COUNT
            or mm.mm_users <= 0
            or (s is not None and not s.alive)
        ):
            mm = _check_users(self)  # raises the right error
        _mmap_read_lock(mm)
        guard = _new(MmapReadGuard)  # MmapReadGuard.__init__, inlined: a hot path
        guard.alive = True
        guard._owner = self
        guard._struct = mm
        return guard

    def mmap_read_trylock(self) -> MmapReadGuard | None:
        """``mmap_read_trylock``: never sleeps; None when contended."""
        mm = _check_users(self)
        if not _ml.mmap_read_trylock(mm):
            return None
        return MmapReadGuard(_TOKEN, self, mm)

    @may_sleep("take the mmap write lock outside the atomic section")
    def mmap_write_lock(self) -> MmapWriteGuard:
        """``mmap_write_lock``: may sleep."""
        mm = _check_users(self)
        _ml.mmap_write_lock(mm)
        return MmapWriteGuard(_TOKEN, self, mm)

    def lock_vma_under_rcu(self, addr: int) -> VmaReadGuard | None:
        """``lock_vma_under_rcu``: read-lock the VMA at ``addr`` without the mmap lock; None
        on any contention (fall back to :meth:`mmap_read_lock`)."""
        mm = _check_users(self)
        vma = _ml.lock_vma_under_rcu(mm, _int("addr", addr))
        if vma is None:
            return None
        return VmaReadGuard(_TOKEN, self, mm, vma)

    def mmgrab(self) -> Mm:
        """``mmgrab``: a new owned ``mm_count`` reference (release with :meth:`Mm.mmdrop`)."""
        mm = self._live()
        _fork.mmgrab(mm)
        return Mm(_TOKEN, mm, _COUNT, None)

    @may_sleep("take the reference with into_mmput_async() and release it with mmput()")
    def mmput(self) -> None:
        """Release the owned ``mm_users`` reference (``mmput``; may sleep, and the last one
        tears the address space down here)."""
        mm = self._live()
        if self._kind != _USERS:
            raise TypeError(_wrong_release(self, "mmput()"))
        self._released = "mmput()"
        _fork.mmput(mm)

    def into_mmput_async(self) -> MmWithUserAsync:
        """The same reference, to be released with ``mmput_async`` (safe where sleeping is
        not). This handle is consumed."""
        mm = self._live()
        if self._kind != _USERS:
            raise TypeError(_wrong_release(self, "into_mmput_async()"))
        self._released = "into_mmput_async() (the reference moved)"
        return MmWithUserAsync(_TOKEN, mm, _ASYNC, None)

    @override
    @deprecated(
        "an MmWithUser holds an mm_users reference: release it with mmput(), not mmdrop()",
        category=None,
    )
    def mmdrop(self) -> None:
        """Refused: an ``mm_users`` reference is released with :meth:`mmput`."""
        raise TypeError(_wrong_release(self, "mmdrop()"))


@final
class MmWithUserAsync(MmWithUser):
    """An owned ``mm_users`` reference released with ``mmput_async``: its teardown (if last)
    runs later in a kworker, so releasing it never sleeps — as shrinkers need."""

    __slots__ = ()

    @override
    def mmput(self) -> None:
        """Release with ``mmput_async``."""
        mm = self._live()
        if self._kind != _ASYNC:
            raise TypeError(_wrong_release(self, "mmput()"))
        self._released = "mmput_async()"
        _fork.mmput_async(mm)


class _Guard(Scope):
    """A held lock: valid until unlocked, and the scope of every handle taken through it.
    Not thread-safe: unlock in the task that locked.

    Invariant: ``alive`` while the current task holds the lock through this guard. A guard
    never unlocked is reported by lockdep when the task leaves the kernel ("lock held when
    returning to user space") and at interpreter exit.
    """

    __slots__ = ("_owner", "_struct")

    # Scope fields that are the same for every guard of a class (read-only class attributes:
    # this object is created on every lock acquisition, so it sets only what varies).
    what = "a lock"
    detached_ok = False

    def __init__(self, _key: _Token, owner: MmWithUser, mm: MmStruct) -> None:
        if _key is not _TOKEN:
            check_token(_key, type(self).__name__)
        self.alive = True
        self._owner = owner
        self._struct = mm

    def unlock(self) -> None:
        """Release the lock; every handle taken through this guard becomes stale."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.alive:
            self.unlock()


class MmapReadGuard(_Guard):
    """Holds the mmap read lock of an mm.

    Invariant: while valid, the current task holds ``mmap_lock`` for reading (or, for the
    :class:`MmapWriteGuard` subclass, writing), so VMAs looked up through it are stable.
    """

    __slots__ = ()
    what = "the mmap read lock"

    @override
    def unlock(self) -> None:
        """``mmap_read_unlock``; every handle taken through this guard becomes stale."""
        if not self.alive:
            stale("MmapReadGuard.unlock()", self)
        _mmap_read_unlock(self._struct)
        self.alive = False
        self.ended_by = "MmapReadGuard.unlock()"

    def vma_lookup(self, addr: int) -> _virt.VmAreaRef | None:
        """``vma_lookup``: the VMA containing ``addr``, valid until this guard ends."""
        if not self.alive:
            stale(f"{type(self).__name__}.vma_lookup()", self)
        if type(addr) is not int:
            addr = _int("addr", addr)
        vma = self._struct.mm_mt.load(addr)
        if vma is None:
            return None
        ref = _new(_virt.VmAreaRef)
        ref._vma = vma
        ref._scope = self
        return ref


@final
class MmapWriteGuard(MmapReadGuard):
    """Holds the mmap write lock.

    Invariant: while valid, the current task holds ``mmap_lock`` for writing; VMAs looked up
    through it are write-locked (``vma_start_write``) and may have their flags changed.
    """

    __slots__ = ()
    what = "the mmap write lock"

    @override
    def unlock(self) -> None:
        """``mmap_write_unlock``; every handle taken through this guard becomes stale."""
        if not self.alive:
            stale("MmapWriteGuard.unlock()", self)
        _ml.mmap_write_unlock(self._struct)
        self.alive = False
        self.ended_by = "MmapWriteGuard.unlock()"

    @override
    @may_sleep("look the VMA up before the atomic section (vma_start_write sleeps)")
    def vma_lookup(self, addr: int) -> _virt.VmAreaMut | None:
        """``vma_lookup`` + ``vma_start_write``: the VMA at ``addr``, writable flags."""
        if not self.alive:
            stale(f"{type(self).__name__}.vma_lookup()", self)
        vma = self._struct.mm_mt.load(_int("addr", addr))
        if vma is None:
            return None
        _ml.vma_start_write(vma)
        return _virt.make_ref(_virt.VmAreaMut, vma, self)

    def downgrade(self) -> MmapReadGuard:
        """``mmap_write_downgrade``: keep a read lock. This guard and its VMA handles become
        stale; use the returned read guard."""
        if not self.alive:
            stale(f"{type(self).__name__}.downgrade()", self)
        _ml.mmap_write_downgrade(self._struct)
        self.alive = False
        self.ended_by = "MmapWriteGuard.downgrade()"
        return MmapReadGuard(_TOKEN, self._owner, self._struct)


@final
class VmaReadGuard(_Guard):
    """Holds one VMA's per-VMA read lock (from ``lock_vma_under_rcu``).

    Invariant: while valid, the VMA cannot be modified or unmapped (writers wait).
    """

    __slots__ = ("_vma",)
    what = "a per-VMA read lock"

    def __init__(self, _key: _Token, owner: MmWithUser, mm: MmStruct, vma: Vma) -> None:
        super().__init__(_key, owner, mm)
        self._vma = vma

    @override
    def unlock(self) -> None:
        """``vma_end_read``; every handle taken through this guard becomes stale."""
        if not self.alive:
            stale("VmaReadGuard.unlock()", self)
        _ml.vma_end_read(self._vma)
        self.alive = False
        self.ended_by = "VmaReadGuard.unlock()"

    @property
    def vma(self) -> _virt.VmAreaRef:
        """The locked VMA, valid until this guard ends."""
        if not self.alive:
            stale(f"{type(self).__name__}.vma", self)
        return _virt.make_ref(_virt.VmAreaRef, self._vma, self)
