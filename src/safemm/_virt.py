"""The VMA typestates (see :mod:`safemm.virt`)."""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Generic, TypeVar, final

from typing_extensions import override

from . import _mm
from ._page import Page
from ._scope import _TOKEN, SafeObject, Scope, _Token, check_token, install_missing, stale
from .model.atomic import may_sleep
from .model.errors import KernelError, StaleReferenceError
from .model.memory import vm_insert_page as _vm_insert_page
from .model.memory import zap_page_range_single as _zap_page_range_single
from .model.printk import SplatKind
from .model.vm_flags import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_EXEC,
    VM_IO,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
    VmFlags,
)
from .model.vm_flags_update import vm_flags_clear as _vm_flags_clear
from .model.vm_flags_update import vm_flags_set as _vm_flags_set

if TYPE_CHECKING:
    from ._fs import VmOperations
    from .model.mm_types import Vma

__all__ = [
    "VmAreaMixedMapRef",
    "VmAreaMut",
    "VmAreaNew",
    "VmAreaOwnedRef",
    "VmAreaRef",
]

T = TypeVar("T")
R = TypeVar("R", bound="VmAreaRef")


_new = object.__new__


def make_ref(cls: type[R], vma: Vma, scope: Scope) -> R:
    """A new handle of state ``cls`` over ``vma``, valid while ``scope`` is (no token check:
    this is the safe layer's own constructor)."""
    ref = object.__new__(cls)
    ref._vma = vma
    ref._scope = scope
    return ref


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


_NEEDS_NEW = "only inside ->mmap, on the VmAreaNew the hook receives"
_NEEDS_MUT = (
    "needs the mmap write lock: MmapWriteGuard.vma_lookup() gives a VmAreaMut (or use "
    "->mmap's VmAreaNew)"
)
_NEVER = "no driver may make this change (review: Jann Horn; rust/kernel/mm/virt.rs)"
_VMA_HINTS = {
    "vm_insert_page": "vm_insert_page needs VM_MIXEDMAP: call as_mixedmap_vma() and check the "
    "result for None (or use set_mixedmap()'s result in ->mmap)",
    "set_io": _NEEDS_NEW,
    "set_dontexpand": _NEEDS_NEW,
    "try_clear_mayread": _NEEDS_NEW,
    "set_vm_ops": _NEEDS_NEW,
    "readable": _NEEDS_NEW,
    "writable": _NEEDS_NEW,
    "executable": _NEEDS_NEW,
    "set_mixedmap": _NEEDS_MUT,
    "set_dontcopy": _NEEDS_MUT,
    "set_dontdump": _NEEDS_MUT,
    "try_clear_maywrite": _NEEDS_MUT,
    "try_clear_mayexec": _NEEDS_MUT,
    "set_pfnmap": _NEVER,
    "set_hugetlb": _NEVER,
    "clear_mixedmap": _NEVER,
    "clear_pfnmap": _NEVER,
    "set_flags": _NEVER,
    "vm_flags_set": _NEVER,
    "vm_flags_clear": _NEVER,
    "private_data": "check ownership first: VmOperations.check_vma(vma, owner) gives a "
    "VmAreaOwnedRef with typed private_data",
}


class VmAreaRef(SafeObject):
    """A VMA the caller may read: ``VmaRef`` in the Rust crate.

    Invariant: while valid, the current task holds the mmap read lock (or stronger) or this
    VMA's per-VMA read lock, so the VMA is attached and its fields are stable. Nothing here
    changes flags; whatever the flags are, every method is safe.
    """

    __slots__ = ("_scope", "_vma")

    def __init__(self, _key: _Token, vma: Vma, scope: Scope) -> None:
        check_token(_key, type(self).__name__)
        self._vma = vma
        self._scope = scope

    def _live(self) -> Vma:
        if not self._scope.alive:
            stale(repr(self), self._scope)
        v = self._vma
        if v.detached and not v.in_setup and not self._scope.detached_ok:
            raise StaleReferenceError(
                f"{self!r} used after its VMA was unmapped; look it up again under the lock"
            )
        return v

    @property
    def start(self) -> int:
        """``vm_start`` (inclusive)."""
        return self._live().vm_start

    @property
    def end(self) -> int:
        """``vm_end`` (exclusive)."""
        return self._live().vm_end

    @property
    def flags(self) -> VmFlags:
        """``vm_flags``."""
        return VmFlags(self._live().vm_flags)

    @property
    def pgoff(self) -> int:
        """``vm_pgoff``: the file page offset of ``start``."""
        return self._live().vm_pgoff

    @property
    def mm(self) -> _mm.MmWithUser:
        """The VMA's mm, borrowed for as long as this handle is valid (``vm_mm``)."""
        v = self._live()
        return _mm.MmWithUser(_TOKEN, v.vm_mm, self._scope)

    @may_sleep("drop the lock first (LruWalk.unlock() in an isolate callback), then zap")
    def zap_page_range_single(self, address: int, size: int) -> None:
        """``zap_page_range_single``: remove the user PTEs in ``[address, address+size)``.

        The range must lie inside the VMA; outside it is a WARN and nothing is zapped (the
        Rust abstraction's check). May sleep.
        """
        v = self._vma
        if not self._scope.alive or v.detached:
            v = self._live()
        if type(address) is not int or type(size) is not int:
            address, size = _int("address", address), _int("size", size)
        if size < 0 or address < v.vm_start or address + size > v.vm_end:
            v.vm_mm.kernel.report(
                SplatKind.WARNING,
                "zap-range",
                f"zap_page_range_single({address:#x}, {size:#x}) outside {v!r}; nothing zapped",
                "rust/kernel/mm/virt.rs:zap_page_range_single",
            )
            return
        _zap_page_range_single(v, address, size)

    def as_mixedmap_vma(self) -> VmAreaMixedMapRef | None:
        """The same VMA as :class:`VmAreaMixedMapRef` if VM_MIXEDMAP is set, else None."""
        v = self._vma
        if not self._scope.alive or v.detached:
            v = self._live()
        if v.vm_flags & VM_MIXEDMAP:
            ref = _new(VmAreaMixedMapRef)
            ref._vma = v
            ref._scope = self._scope
            return ref
        return None

    @override
    def __repr__(self) -> str:
        v = self._vma
        return f"<{type(self).__name__} {v.vm_start:#x}-{v.vm_end:#x}>"


# Run-time messages for calls the type checker would refuse (attr-defined).
install_missing(VmAreaRef, _VMA_HINTS)


@final
class VmAreaMixedMapRef(VmAreaRef):
    """A readable VMA known to be VM_MIXEDMAP: ``VmaMixedMap`` in the Rust crate.

    Invariant: as :class:`VmAreaRef`, plus VM_MIXEDMAP is set (it is never cleared), so
    ``vm_insert_page`` needs no write lock (review: Jann Horn's first clean contract).
    """

    __slots__ = ()

    def vm_insert_page(self, address: int, page: Page) -> None:
        """``vm_insert_page``: map ``page`` at ``address`` (EFAULT outside the VMA, EBUSY if
        already mapped). The mapping takes its own page reference."""
        v = self._vma
        if not self._scope.alive or v.detached:
            v = self._live()
        if type(page) is not Page:
            raise TypeError(f"vm_insert_page needs a Page, got {type(page).__name__}")
        if type(address) is not int:
            address = _int("address", address)
        _vm_insert_page(v, address, page._page if not page._freed else page._live())


class VmAreaMut(VmAreaRef):
    """A VMA under the mmap write lock, write-locked: ``VmAreaMut`` of the v6 series.

    Invariant: as :class:`VmAreaRef`, plus the current task holds the mmap write lock and has
    write-locked this VMA (``vma_start_write``). Only the flag changes that are safe on a live
    VMA exist here: nothing changes VM_READ/WRITE/EXEC, clears VM_MIXEDMAP/VM_PFNMAP, or sets
    VM_PFNMAP/VM_HUGETLB.
    """

    __slots__ = ()

    def set_mixedmap(self) -> VmAreaMixedMapRef:
        """Set VM_MIXEDMAP; returns the capability to insert pages.

        Refused (EINVAL) when VM_PFNMAP is set (the two are exclusive) or when a userfaultfd
        context is attached (H8).
        """
        v = self._live()
        if v.vm_flags & VM_PFNMAP:
            raise KernelError(_errno.EINVAL, f"set_mixedmap: {v!r} is VM_PFNMAP")
        if v.vm_userfaultfd_ctx is not None:
            raise KernelError(_errno.EINVAL, f"set_mixedmap: {v!r} has a userfaultfd context")
        _vm_flags_set(self._live(), VM_MIXEDMAP)
        return make_ref(VmAreaMixedMapRef, v, self._scope)

    def set_dontcopy(self) -> None:
        """Set VM_DONTCOPY: fork does not copy this VMA."""
        _vm_flags_set(self._live(), VM_DONTCOPY)

    def set_dontdump(self) -> None:
        """Set VM_DONTDUMP: excluded from core dumps."""
        _vm_flags_set(self._live(), VM_DONTDUMP)

    def try_clear_maywrite(self) -> None:
        """Clear VM_MAYWRITE (irreversibly): later mprotect(PROT_WRITE) fails with EACCES.
        EINVAL if VM_WRITE is set."""
        if self._live().vm_flags & VM_WRITE:
            raise KernelError(_errno.EINVAL, "try_clear_maywrite: VM_WRITE is set")
        _vm_flags_clear(self._live(), VM_MAYWRITE)

    def try_clear_mayexec(self) -> None:
        """Clear VM_MAYEXEC (irreversibly). EINVAL if VM_EXEC is set."""
        if self._live().vm_flags & VM_EXEC:
            raise KernelError(_errno.EINVAL, "try_clear_mayexec: VM_EXEC is set")
        _vm_flags_clear(self._live(), VM_MAYEXEC)


@final
class VmAreaNew(VmAreaMut):
    """The VMA inside a driver's ``->mmap``: ``VmaNew`` in the Rust crate.

    Invariant: the VMA is being set up by ``mmap_region`` under the mmap write lock and is
    not linked yet, so its flags, vm_ops and private data may be written. Valid only until
    ``->mmap`` returns.
    """

    __slots__ = ()

    def set_io(self) -> None:
        """Set VM_IO."""
        _vm_flags_set(self._live(), VM_IO)

    def set_dontexpand(self) -> None:
        """Set VM_DONTEXPAND: mremap may not grow this VMA."""
        _vm_flags_set(self._live(), VM_DONTEXPAND)

    def try_clear_mayread(self) -> None:
        """Clear VM_MAYREAD (irreversibly). EINVAL if VM_READ is set."""
        if self._live().vm_flags & VM_READ:
            raise KernelError(_errno.EINVAL, "try_clear_mayread: VM_READ is set")
        _vm_flags_clear(self._live(), VM_MAYREAD)

    @property
    def readable(self) -> bool:
        """Whether VM_READ is set."""
        return bool(self._live().vm_flags & VM_READ)

    @property
    def writable(self) -> bool:
        """Whether VM_WRITE is set."""
        return bool(self._live().vm_flags & VM_WRITE)

    @property
    def executable(self) -> bool:
        """Whether VM_EXEC is set."""
        return bool(self._live().vm_flags & VM_EXEC)

    def set_vm_ops(self, ops: VmOperations[T], private_data: T) -> None:
        """Attach the driver's ``vm_operations_struct`` and its private data (typed: hooks
        and :meth:`VmOperations.check_vma` give ``private_data`` back as ``T``)."""
        v = self._live()
        v.vm_ops = ops._raw_ops(v.vm_mm.kernel, private_data)
        v.vm_private_data = private_data


@final
class VmAreaOwnedRef(VmAreaRef, Generic[T]):
    """A readable VMA proven to be the driver's own: it carries the driver's vm_ops, and
    therefore private data of type ``T`` (Rust binder's ``check_vma``, made a type).

    Invariant: as :class:`VmAreaRef`, plus ``vm_ops`` is the table of ``ops`` and
    ``private_data`` is the object the driver attached in ``->mmap`` (or a split/copy of that
    VMA). A driver that only ever inserts into an owned VMA cannot hit hazard H3.
    """

    __slots__ = ("_ops",)

    _ops: VmOperations[T]

    @property
    def private_data(self) -> T:
        """The private data the driver attached, typed."""
        v = self._live()
        data = self._ops._typed(v.vm_private_data)
        if data is None:
            raise StaleReferenceError(f"{self!r}: private data no longer of the driver's type")
        return data


def make_owned(ops: VmOperations[T], vma: Vma, scope: Scope) -> VmAreaOwnedRef[T]:
    """An owned-VMA handle (the safe layer's constructor)."""
    ref: VmAreaOwnedRef[T] = make_ref(VmAreaOwnedRef, vma, scope)
    ref._ops = ops
    return ref
