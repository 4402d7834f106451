"""The mm reference types and the lock guards (see :mod:`safemm.mm`)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar, final

from typing_extensions import override

from . import _virt
from ._scope import (
    _TOKEN,
    Releasable,
    SafeObject,
    Scope,
    _Token,
    check_token,
    install_missing,
    stale,
)
from .model import fork as _fork
from .model import mmap_lock as _ml
from .model.atomic import may_sleep
from .model.errors import StaleReferenceError
from .model.mmap_lock import mmap_read_lock as _mmap_read_lock
from .model.mmap_lock import mmap_read_unlock as _mmap_read_unlock

_new = object.__new__

if TYPE_CHECKING:
    from .model.kernel import Kernel
    from .model.mm_types import MmStruct, Vma

__all__ = [
    "Mm",
    "MmWithUser",
    "MmWithUserAsync",
    "MmapReadGuard",
    "MmapWriteGuard",
    "OwnedMm",
    "OwnedMmWithUser",
    "VmaReadGuard",
]


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


class Mm(SafeObject):
    """A borrowed ``mm_struct`` (``&Mm`` in Rust): known to be allocated while its lender is.

    Invariant: the ``mm_struct`` is not freed while this handle is valid; its address space
    may already be gone (``mm_users`` may be 0), so nothing here touches VMAs or locks. A
    borrowed reference cannot be released: it has no ``mmdrop``/``mmput``. The owned forms are
    :class:`OwnedMm` (from :meth:`MmWithUser.mmgrab`), :class:`OwnedMmWithUser` (from
    :meth:`mmget_not_zero`) and :class:`MmWithUserAsync`; each is a subclass, so passing one
    where an ``Mm`` is expected lends it.
    """

    __slots__ = ("__weakref__", "_mm", "_released", "_scope")

    def __init__(self, _key: _Token, mm: MmStruct, scope: Scope | None) -> None:
        check_token(_key, type(self).__name__)
        self._mm = mm
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

    def mmget_not_zero(self) -> OwnedMmWithUser | None:
        """``mmget_not_zero``: a new owned ``mm_users`` reference, or None if the address space
        is already being torn down. Release it with ``mmput()``, or use it as a context
        manager: ``with user: ...``."""
        mm = self._live()
        if not _fork.mmget_not_zero(mm):
            return None
        return OwnedMmWithUser(_TOKEN, mm, None)

    def is_same_mm(self, other: Mm) -> bool:
        """Whether both handles name the same ``mm_struct`` (``ptr::eq`` in Rust binder)."""
        return self._live() is other._live()

    @override
    def __repr__(self) -> str:
        return f"<{type(self).__name__} mm={self._mm.id} borrowed>"


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
    "mmdrop": "only an owned mm_count reference (OwnedMm, from mmgrab()) is released with "
    "mmdrop(); an mm_users reference is released with mmput(), and a borrowed one is not yours "
    "to release",
    "mmput": "only an owned mm_users reference (OwnedMmWithUser, from mmget_not_zero(), or "
    "MmWithUserAsync) is released with mmput(); an mm_count reference is released with "
    "mmdrop(), and a borrowed one is not yours to release",
    "into_mmput_async": "needs an owned mm_users reference: `user = mm.mmget_not_zero()`, "
    "check it for None, then `user.into_mmput_async()`",
    "__enter__": "only an owned reference is a context manager: `with mm.mmget_not_zero() ...` "
    "after the None check, or `with user.mmgrab() as mm: ...`; a borrowed one needs no release",
}


# Run-time messages for calls the type checker would refuse (attr-defined).
install_missing(Mm, _MM_HINTS)


def _check_users(self: Mm) -> MmStruct:
    """The mm behind a handle that must hold (or borrow) ``mm_users``."""
    mm = self._live()
    if not isinstance(self, MmWithUser):
        # An mm_count handle forced into this method (an unbound call).
        raise TypeError(f"{self!r} holds only mm_count: locking {_NEEDS_USERS}")
    if mm.mm_users <= 0:
        raise StaleReferenceError(f"{self!r}: the address space is gone (mm_users is 0)")
    return mm


class MmWithUser(Mm):
    """A borrowed ``mm_struct`` whose address space is alive (``&MmWithUser`` in Rust).

    Invariant: ``mm_users`` stays non-zero while this handle is valid, so the mmap lock, the
    per-VMA locks and the VMA tree may be used. This is the only type that can take them. A
    borrowed one (``current().mm()``, ``VmAreaRef.mm``) has no release method; the owned
    forms are :class:`OwnedMmWithUser` and :class:`MmWithUserAsync`.
    """

    __slots__ = ()

    @may_sleep("use mmap_read_trylock() (or lock_vma_under_rcu())")
    def mmap_read_lock(self) -> MmapReadGuard:
        """``mmap_read_lock``: may sleep."""
        mm = self._mm
        s = self._scope
        if (
            self._released
            or mm.mm_users <= 0
            or (s is not None and not s.alive)
            or not isinstance(self, MmWithUser)  # an mm_count handle, by an unbound call
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

    def mmgrab(self) -> OwnedMm:
        """``mmgrab``: a new owned ``mm_count`` reference. Release it with
        :meth:`OwnedMm.mmdrop`, or use it as a context manager: ``with user.mmgrab() as mm:``."""
        mm = self._live()
        _fork.mmgrab(mm)
        return OwnedMm(_TOKEN, mm, None)


def _take(ref: Mm, cls: type[_Owned], call: str) -> MmStruct:
    """Mark ``ref`` released by ``call`` and return its mm, whose count the caller drops.

    ``cls`` is the class whose release method was called: on any other reference (an unbound
    call around the types, on a borrowed or a differently counted one) it is refused.
    """
    mm = ref._live()
    if type(ref) is not cls:
        raise TypeError(f"{call} on {ref!r}: {_MM_HINTS[call.partition('(')[0]]}")
    ref._released = call
    return mm


class _Owned(Releasable, Mm):
    """An owned reference (``ARef<...>`` in Rust): released exactly once, by its release
    method or at the end of a ``with`` block; after that every use is stale. One dropped
    without being released is a leak (reported by its finaliser and ``check_invariants``).
    """

    __slots__ = ()

    #: The counter this reference holds, for the leak report.
    counter: ClassVar[str]

    def __del__(self) -> None:
        if not hasattr(self, "_released"):  # the constructor refused (no token)
            return
        if not self._released:
            self._mm.kernel.leak(
                f"{type(self).__name__} of mm {self._mm.id}",
                f"an owned {self.counter} reference on mm {self._mm.id} was dropped "
                "without being released",
            )

    @override
    def __repr__(self) -> str:
        return f"<{type(self).__name__} mm={self._mm.id} owned>"


@final
class OwnedMm(_Owned):
    """An owned ``mm_count`` reference (``ARef<Mm>``), from :meth:`MmWithUser.mmgrab`.

    Invariant: until :meth:`mmdrop` (or the end of its ``with`` block) this handle holds one
    ``mm_count``, so the ``mm_struct`` stays allocated; the address space may not.
    """

    __slots__ = ()
    counter = "mm_count (mmgrab)"

    def mmdrop(self) -> None:
        """``mmdrop``: release the reference; this handle becomes stale."""
        _fork.mmdrop(_take(self, OwnedMm, "mmdrop()"))

    @override
    def _end_block(self) -> None:
        if not self._released:
            self.mmdrop()


@final
class OwnedMmWithUser(_Owned, MmWithUser):
    """An owned ``mm_users`` reference (``ARef<MmWithUser>``), from :meth:`Mm.mmget_not_zero`.

    Invariant: until :meth:`mmput` (or the end of its ``with`` block, or
    :meth:`into_mmput_async`) this handle holds one ``mm_users``, so the address space stays.
    """

    __slots__ = ()
    counter = "mm_users"

    @may_sleep("take the reference with into_mmput_async() and release it with mmput()")
    def mmput(self) -> None:
        """``mmput``: release the reference (may sleep, and the last one tears the address
        space down here); this handle becomes stale."""
        _fork.mmput(_take(self, OwnedMmWithUser, "mmput()"))

    def into_mmput_async(self) -> MmWithUserAsync:
        """The same reference, to be released with ``mmput_async`` (safe where sleeping is
        not). This handle is consumed (``MmWithUser::into_mmput_async``)."""
        mm = _take(self, OwnedMmWithUser, "into_mmput_async()")
        self._released = "into_mmput_async() (the reference moved)"
        return MmWithUserAsync(_TOKEN, mm, None)

    @override
    def _end_block(self) -> None:
        if not self._released:
            self.mmput()


@final
class MmWithUserAsync(_Owned, MmWithUser):
    """An owned ``mm_users`` reference released with ``mmput_async``: its teardown (if last)
    runs later in a kworker, so releasing it never sleeps — as shrinkers need.

    Invariant: as :class:`OwnedMmWithUser`, until :meth:`mmput` or the end of its ``with``
    block.
    """

    __slots__ = ()
    counter = "mm_users"

    def mmput(self) -> None:
        """``mmput_async``: release the reference without sleeping; this handle becomes
        stale."""
        _fork.mmput_async(_take(self, MmWithUserAsync, "mmput()"))

    @override
    def _end_block(self) -> None:
        if not self._released:
            self.mmput()


class _Guard(Scope, Releasable):
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

    @abstractmethod
    def unlock(self) -> None:
        """Release the lock; every handle taken through this guard becomes stale."""

    @override
    def _end_block(self) -> None:
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
