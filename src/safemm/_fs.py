"""Driver-facing file and VMA hooks (see :mod:`safemm.fs`).

The model calls drivers through raw tables (``FileOperationsStruct``, ``VmOperationsStruct``)
of its own; :class:`FileOperations` and :class:`VmOperations` build those tables from the
methods a driver overrides, and wrap every model object they hand over into a typed handle
that is valid for that one call.
"""

from __future__ import annotations

import enum
import errno
import inspect
import weakref
from typing import TYPE_CHECKING, Generic, TypeVar, final

from typing_extensions import override

from . import _virt
from ._page import Page, PageLock
from ._scope import _TOKEN, HookCall, SafeObject, Scope, _Token, check_token, running_kernel, stale
from .model import fs as _rawfs
from .model import memory as _memory
from .model.atomic import may_sleep
from .model.errors import KernelError
from .model.mm_types import (
    VM_FAULT_LOCKED,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VmOperationsStruct,
)

if TYPE_CHECKING:
    from ._filemap import FolioGuard
    from .model.fs import AddressSpace as _RawMapping
    from .model.fs import File as _RawFile
    from .model.kernel import Kernel
    from .model.mm_types import Vma
    from .model.mm_types import VmFault as _RawFault

__all__ = ["AddressSpace", "File", "FileOperations", "VmFault", "VmFaultReason", "VmOperations"]

P = TypeVar("P")
T = TypeVar("T")


@final
class AddressSpace(SafeObject):
    """A file's ``address_space``: its ``i_mmap`` knows every VMA, in every process, that
    maps the file, wherever split, mremap or fork moved it.

    Invariant: wraps a live address space (it lives as long as its inode).
    """

    __slots__ = ("_mapping",)

    def __init__(self, _key: _Token, mapping: _RawMapping) -> None:
        check_token(_key, "AddressSpace")
        self._mapping = mapping

    @staticmethod
    def new_anon() -> AddressSpace:
        """``alloc_anon_inode``: the address space of a fresh anonymous inode (one per open
        file, as aio does; or one per device, as DRM does)."""
        k = running_kernel("AddressSpace.new_anon")
        return AddressSpace(_TOKEN, _rawfs.alloc_anon_inode(k).i_mapping)

    @may_sleep("use unmap_mapping_range_trylock(), or unlock first (LruWalk.unlock())")
    def unmap_mapping_range(self, start: int, length: int, even_cows: bool = True) -> None:
        """``unmap_mapping_range``: zap file bytes ``[start, start+length)`` in every VMA that
        maps them. Takes no mmap lock and no mm reference; may sleep (``i_mmap_rwsem``)."""
        _memory.unmap_mapping_range(
            self._mapping, _nonneg("start", start), _nonneg("length", length), even_cows
        )

    def unmap_mapping_range_trylock(self, start: int, length: int, even_cows: bool = True) -> bool:
        """The same without sleeping, for reclaim: False if ``i_mmap_rwsem`` is contended
        (the trylock variant Jann Horn proposed; not in mainline)."""
        return _memory.unmap_mapping_range_trylock(
            self._mapping, _nonneg("start", start), _nonneg("length", length), even_cows
        )

    @override
    def __eq__(self, other: object) -> bool:
        return isinstance(other, AddressSpace) and other._mapping is self._mapping

    @override
    def __hash__(self) -> int:
        return id(self._mapping)


def _nonneg(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise KernelError(errno.EINVAL, f"{name} must not be negative, got {value}")
    return value


def _forgot_init(obj: object, base: str) -> TypeError:
    """The error for a driver class whose ``__init__`` did not call ``super().__init__``."""
    cls = type(obj).__name__
    return TypeError(
        f"{cls}.__init__ did not call super().__init__(private_type, name): {base} needs the "
        f"type of its private data and a name. Begin {cls}.__init__ with "
        f'`super().__init__(MyState, "{cls.lower()}")`'
    )


def _check_hooks(obj: object, base: type, hooks: dict[str, str]) -> None:
    """Refuse, at registration, a hook the kernel could not call: one that is not a plain
    method taking the hook's arguments (a missing ``self``, a parameter too many or too few,
    an ``async def``)."""
    cls = type(obj)
    for hook, spelled in hooks.items():
        mine = getattr(cls, hook)
        if mine is getattr(base, hook):
            continue
        where = f"{cls.__name__}.{hook}"
        expected = f"the kernel calls it as {base.__name__}.{spelled}"
        if not callable(mine):
            raise TypeError(f"{where} is not a method: {expected}")
        if inspect.iscoroutinefunction(mine):
            raise TypeError(f"{where} is async def: hooks run synchronously; {expected}")
        try:
            sig = inspect.signature(mine)
        except ValueError:  # no signature to check (a builtin)
            continue
        try:
            sig.bind(obj, *[None] * spelled.count(","))
        except TypeError:
            raise TypeError(
                f"{where}({', '.join(sig.parameters)}) has the wrong signature: {expected} "
                f"(define it as `def {spelled}`)"
            ) from None


_FILE_HOOKS = {
    "probe": "probe(self)",
    "open": "open(self, file)",
    "release": "release(self, file)",
    "mmap": "mmap(self, file, vma)",
    "ioctl": "ioctl(self, file, cmd, arg)",
}
_VM_HOOKS = {
    "open": "open(self, vma)",
    "close": "close(self, vma)",
    "fault": "fault(self, vmf)",
    "may_split": "may_split(self, vma, addr)",
    "mremap": "mremap(self, vma)",
}


@final
class File(SafeObject, Generic[P]):
    """An open file, as a driver hook sees it: valid for the duration of that hook.

    Invariant: wraps a file that is open (not yet released); ``private_data`` is either None
    or the driver's per-open state of type ``P``.
    """

    __slots__ = ("_file", "_ops", "_scope")

    def __init__(self, _key: _Token, file: _RawFile, scope: Scope, ops: FileOperations[P]) -> None:
        check_token(_key, "File")
        self._file = file
        self._scope = scope
        self._ops = ops

    def _live(self) -> _RawFile:
        if not self._scope.alive:
            stale(repr(self), self._scope)
        return self._file

    @property
    def private_data(self) -> P | None:
        """The driver's per-open state (``file->private_data``)."""
        return self._ops._typed(self._live().private_data)

    @private_data.setter
    def private_data(self, value: P | None) -> None:
        self._live().private_data = value

    @property
    def id(self) -> int:
        """A number identifying the open file (for messages and registries)."""
        return self._live().id

    @property
    def mapping(self) -> AddressSpace:
        """``file->f_mapping``."""
        return AddressSpace(_TOKEN, self._live().f_mapping)

    def set_mapping(self, mapping: AddressSpace) -> None:
        """Point ``f_mapping`` at another address space (only inside ``->open``, before any
        VMA maps the file — as DRM and aio do)."""
        f = self._live()
        if not self._scope.what.endswith("->open"):
            raise KernelError(errno.EBUSY, "set_mapping is only allowed in ->open")
        f.f_mapping = mapping._mapping

    @override
    def __repr__(self) -> str:
        return f"<File {self._file.path} #{self._file.id}>"


class FileOperations(Generic[P]):
    """A character-device driver: override the hooks you support.

    ``P`` is the type of the per-open state the driver keeps in ``File.private_data``.
    ``probe`` runs once when the device is registered (module init); a hook that is not
    overridden is absent, as a NULL ``file_operations`` member is (mmap → ENODEV, ioctl →
    ENOTTY).
    """

    def __init__(self, private_type: type[P], name: str = "driver") -> None:
        self.private_type = private_type
        self.name = name
        #: Where this instance is registered: (kernel, path), once it is.
        self._registered: tuple[weakref.ref[Kernel], str] | None = None

    def probe(self) -> None:
        """Called once, in kernel context, when the device is registered."""

    def open(self, file: File[P]) -> None:
        """``->open``: raise KernelError to refuse the open."""

    def release(self, file: File[P]) -> None:
        """``->release``: the last reference to the open file is gone."""

    def mmap(self, file: File[P], vma: _virt.VmAreaNew) -> None:
        """``->mmap``: set up ``vma``; raise KernelError to refuse the mapping."""
        raise KernelError(errno.ENODEV, "no mmap")

    def ioctl(self, file: File[P], cmd: int, arg: object) -> object:
        """``->unlocked_ioctl``."""
        raise KernelError(errno.ENOTTY, "no ioctl")

    @final
    def _typed(self, obj: object) -> P | None:
        return obj if isinstance(obj, self.private_type) else None

    @final
    def _safemm_file_operations_(self, kernel: Kernel, path: str) -> _rawfs.FileOperationsStruct:
        """The raw table the model calls (built once per registration)."""
        if "_registered" not in self.__dict__:
            raise _forgot_init(self, "FileOperations")
        if self._registered is not None:
            first, at = self._registered
            where = at if first() is kernel else f"{at} of another Kernel"
            raise RuntimeError(
                f"this {type(self).__name__} instance is already registered at {where}: a "
                "driver instance holds one device's state (its vm_ops, its open files); "
                f"register a new instance at {path}: "
                f"kernel.register_device({path!r}, {type(self).__name__}(...))"
            )
        _check_hooks(self, FileOperations, _FILE_HOOKS)
        self._registered = (weakref.ref(kernel), path)
        cls = type(self)
        name = self.name

        def call(f: _RawFile, hook: str) -> File[P]:
            return File(_TOKEN, f, _current_scope(), self)

        def open_(f: _RawFile) -> None:
            with HookCall(kernel, f"{name}->open", f"{name}->open returned"):
                self.open(call(f, "open"))

        def release(f: _RawFile) -> None:
            with HookCall(kernel, f"{name}->release", f"{name}->release returned"):
                self.release(call(f, "release"))

        def mmap(f: _RawFile, vma: Vma) -> None:
            with HookCall(kernel, f"{name}->mmap", f"{name}->mmap returned") as scope:
                self.mmap(call(f, "mmap"), _virt.make_ref(_virt.VmAreaNew, vma, scope))

        def ioctl(f: _RawFile, cmd: int, arg: object) -> object:
            with HookCall(kernel, f"{name}->ioctl", f"{name}->ioctl returned"):
                return self.ioctl(call(f, "ioctl"), cmd, arg)

        with (
            kernel.driver_hook(self, None, f"{name} probe"),
            HookCall(kernel, f"{name} probe", f"{name} probe returned"),
        ):
            self.probe()
        return _rawfs.FileOperationsStruct(
            name=name,
            open=open_ if cls.open is not FileOperations.open else None,
            release=release if cls.release is not FileOperations.release else None,
            mmap=mmap if cls.mmap is not FileOperations.mmap else None,
            unlocked_ioctl=ioctl if cls.ioctl is not FileOperations.ioctl else None,
            owner=self,
        )


def _current_scope() -> Scope:
    from ._scope import hook_scope

    return hook_scope("File")


class VmFaultReason(enum.Enum):
    """What a ``->fault`` hook returns instead of a page."""

    #: The access is invalid: the process gets SIGBUS (``VM_FAULT_SIGBUS``).
    SIGBUS = VM_FAULT_SIGBUS
    #: Out of memory (``VM_FAULT_OOM``).
    OOM = VM_FAULT_OOM
    #: The hook installed the PTE itself, or the access should fault again (``VM_FAULT_NOPAGE``).
    NOPAGE = VM_FAULT_NOPAGE


@final
class VmFault(SafeObject, Generic[T]):
    """A page fault in one of the driver's VMAs (``struct vm_fault``), valid during ``->fault``.

    Invariant: the faulting task holds the mmap read lock (a VMA without ``->map_pages`` is
    never faulted under the per-VMA lock), so ``vma`` is a readable, owned VMA.
    """

    __slots__ = ("_raw", "vma")

    def __init__(self, _key: _Token, raw: _RawFault, vma: _virt.VmAreaOwnedRef[T]) -> None:
        check_token(_key, "VmFault")
        self._raw = raw
        #: The faulting VMA, with typed access to the driver's private data.
        self.vma = vma

    @property
    def address(self) -> int:
        """The page-aligned faulting address."""
        return self._raw.address

    @property
    def pgoff(self) -> int:
        """The file page offset of ``address`` (``vmf->pgoff``)."""
        return self._raw.pgoff

    @property
    def write(self) -> bool:
        """Whether the access is a write."""
        return self._raw.write


class VmOperations(Generic[T]):
    """A driver's ``vm_operations_struct``; ``T`` is the type of the private data attached
    with :meth:`VmAreaNew.set_vm_ops`. Override the hooks you need; the kernel calls them on
    VMAs carrying these ops — including pieces made by split, copies made by mremap and fork.

    ``may_split`` and ``mremap`` veto by raising KernelError; ``fault`` returns the page to map,
    locked (:class:`~safemm.page.PageLock`: the kernel takes over its lock and reference), or
    a :class:`VmFaultReason`.
    """

    def __init__(self, private_type: type[T], name: str = "vm_ops") -> None:
        self.private_type = private_type
        self.name = name
        self._raw: VmOperationsStruct | None = None
        #: The kernel ``_raw`` was built for.
        self._kernel: weakref.ref[Kernel] | None = None

    def open(self, vma: _virt.VmAreaOwnedRef[T]) -> None:
        """``->open``: a new VMA (split piece, mremap copy, fork copy) carries these ops."""

    def close(self, vma: _virt.VmAreaOwnedRef[T]) -> None:
        """``->close``: one VMA piece is going away (called exactly once per piece)."""

    def fault(self, vmf: VmFault[T]) -> PageLock | FolioGuard | VmFaultReason:
        """``->fault``: supply the page for ``vmf.pgoff``, locked (``VM_FAULT_LOCKED``).

        A driver whose pages live in its own page cache returns
        ``mapping.filemap_lock_folio(vmf.pgoff)`` (a :class:`~safemm.folio.FolioGuard`), as
        ``filemap_fault`` does.

        Return ``page.trylock()`` taken while the driver's lock still says the page is at
        ``vmf.pgoff`` (or ``VmFaultReason.NOPAGE`` to make the access fault again when the
        page is locked by someone else). The kernel holds the page pinned and locked until
        its PTE is installed, so a reclaim path that must lock the page (``Page.trylock``)
        before unmapping and freeing it cannot free it under the fault (``filemap_fault``
        and truncate close this race the same way).
        """
        return VmFaultReason.SIGBUS

    def may_split(self, vma: _virt.VmAreaOwnedRef[T], addr: int) -> None:
        """``->may_split``: raise KernelError to forbid splitting at ``addr``."""

    def mremap(self, vma: _virt.VmAreaOwnedRef[T]) -> None:
        """``->mremap``: the VMA was moved to ``vma.start``; raise KernelError to veto."""

    @final
    def _typed(self, obj: object) -> T | None:
        return obj if isinstance(obj, self.private_type) else None

    @final
    def check_vma(
        self, vma: _virt.VmAreaRef, owner: T | None = None
    ) -> _virt.VmAreaOwnedRef[T] | None:
        """The VMA as this driver's own, or None: it must carry these vm_ops (and, when given,
        ``owner`` as its private data). Rust binder's ``check_vma`` (commit 8ef2c15aeae0): a
        different VMA at the same address fails this check."""
        v = vma._live()
        try:
            raw = self._raw
        except AttributeError:
            raise _forgot_init(self, "VmOperations") from None
        if raw is None or v.vm_ops is not raw:
            return None
        if owner is not None and v.vm_private_data is not owner:
            return None
        if self._typed(v.vm_private_data) is None:
            return None
        return _virt.make_owned(self, v, vma._scope)

    @final
    def _raw_ops(self, kernel: Kernel, private_data: object) -> VmOperationsStruct:
        """The raw table for ``set_vm_ops`` (built once), after checking the driver's use."""
        if "_kernel" not in self.__dict__:
            raise _forgot_init(self, "VmOperations")
        if not isinstance(private_data, self.private_type):
            raise TypeError(
                f"set_vm_ops({self.name}, ...): the private data must be a "
                f"{self.private_type.__name__} (the type given to {type(self).__name__}), "
                f"got {type(private_data).__name__}; check_vma() and the hooks would never "
                "find it"
            )
        if self._raw is not None:
            if self._kernel is not None and self._kernel() is not kernel:
                raise RuntimeError(
                    f"this {type(self).__name__} instance already serves another Kernel: "
                    "its hooks would run in that kernel. Make one instance per driver "
                    "instance (create it in the driver's __init__)"
                )
            return self._raw
        _check_hooks(self, VmOperations, _VM_HOOKS)
        # local: _filemap imports this module
        from ._filemap import Folio as FolioCls
        from ._filemap import FolioGuard as FolioGuardCls

        self._kernel = weakref.ref(kernel)
        cls = type(self)
        name = self.name

        def wrap(hook: str, v: Vma, **kw: bool) -> tuple[HookCall, str]:
            return HookCall(kernel, f"{name}->{hook}", f"{name}->{hook} returned", **kw), hook

        def open_(v: Vma) -> None:
            # A split piece or mremap copy gets ->open before it is linked into the tree.
            call, _ = wrap("open", v, detached_ok=True)
            with call as scope:
                self.open(_virt.make_owned(self, v, scope))

        def close(v: Vma) -> None:
            call, _ = wrap("close", v, detached_ok=True)
            with call as scope:
                self.close(_virt.make_owned(self, v, scope))

        def may_split(v: Vma, addr: int) -> None:
            call, _ = wrap("may_split", v)
            with call as scope:
                self.may_split(_virt.make_owned(self, v, scope), addr)

        def mremap(v: Vma) -> None:
            call, _ = wrap("mremap", v)
            with call as scope:
                self.mremap(_virt.make_owned(self, v, scope))

        def fault(raw: _RawFault) -> int:
            call, _ = wrap("fault", raw.vma)
            with call as scope:
                res = self.fault(VmFault(_TOKEN, raw, _virt.make_owned(self, raw.vma, scope)))
            got: object = res  # checked at run time too: drivers may be untyped
            if isinstance(got, FolioGuardCls):
                raw.page = got._consume()
                return VM_FAULT_LOCKED
            if isinstance(got, PageLock):
                # VM_FAULT_LOCKED: the lock and the reference pass to the kernel, which
                # unlocks the page once finish_fault has installed the PTE.
                raw.page = got._consume()
                return VM_FAULT_LOCKED
            if isinstance(got, Page):
                raise TypeError(
                    f"{name}->fault returned an unlocked Page: return page.trylock() (taken "
                    "under the lock that says the page is still there), or reclaim can free "
                    "it before the kernel maps it"
                )
            if isinstance(got, FolioCls):
                raise TypeError(
                    f"{name}->fault returned an unlocked Folio: return "
                    "mapping.filemap_lock_folio(vmf.pgoff) (locked, re-checked against "
                    "truncation and reclaim)"
                )
            if not isinstance(got, VmFaultReason):
                raise TypeError(
                    f"{name}->fault returned {type(got).__name__}: return the page to map at "
                    "vmf.pgoff, locked (page.trylock()), or a VmFaultReason "
                    "(VmFaultReason.SIGBUS for an offset beyond the object)"
                )
            return int(got.value)

        self._raw = VmOperationsStruct(
            name=name,
            open=open_ if cls.open is not VmOperations.open else None,
            close=close if cls.close is not VmOperations.close else None,
            may_split=may_split if cls.may_split is not VmOperations.may_split else None,
            mremap=mremap if cls.mremap is not VmOperations.mremap else None,
            fault=fault if cls.fault is not VmOperations.fault else None,
            owner=self,
        )
        return self._raw
