"""Folios in a driver's page cache, and the hooks core reclaim calls on them (see
:mod:`safemm.folio` and :mod:`safemm.fs`).

The states:

- :class:`Folio`: one reference on a folio (``folio_get``/``folio_put``); its bytes, its
  LRU hint (``mark_accessed``) and the ways to lock it. Nothing that needs the folio lock.
- :class:`LockedFolio`: a folio whose lock (``PG_locked``) is held — what ``folio->index``
  and ``folio->mapping`` are stable under. Two leaves:
  :class:`FolioGuard`, a lock this code took (``unlock()``, ``filemap_remove_folio()``, or
  hand it to the kernel from ``->fault``), and :class:`CachedFolio`, the folio the kernel
  lends to ``release_folio`` with its own lock held (no ``unlock``: reclaim owns it).
- :class:`AddressSpaceOwned`: the address space of an anonymous inode the driver created
  with its :class:`AddressSpaceOperations`; only it offers page-cache insertion
  (``filemap_add_folio``). Another file's :class:`~safemm.fs.AddressSpace` does not.
"""

from __future__ import annotations

import errno
import weakref
from typing import TYPE_CHECKING, Generic, TypeVar, final

from typing_extensions import override

from ._fs import AddressSpace, _check_hooks, _forgot_init, _nonneg
from ._page import HeldPageLock, PageRef
from ._scope import (
    _TOKEN,
    HookCall,
    HookScope,
    Releasable,
    SafeObject,
    _Token,
    check_token,
    install_missing,
    running_kernel,
    stale,
)
from .model import filemap as _filemap
from .model import fs as _rawfs
from .model import swap as _swap
from .model import truncate as _truncate
from .model.atomic import may_sleep
from .model.errors import KernelError, StaleReferenceError
from .model.page_alloc import GFP_KERNEL, Gfp, PageKind

if TYPE_CHECKING:
    from .model.fs import AddressSpace as _RawMapping
    from .model.kernel import Kernel
    from .model.page_alloc import Page as _RawPage

__all__ = [
    "AddressSpaceOperations",
    "AddressSpaceOwned",
    "CachedFolio",
    "Folio",
    "FolioGuard",
    "LockedFolio",
]

T = TypeVar("T")

_LOCK_HINT = (
    "it needs the folio lock: take it with folio.lock() or mapping.filemap_lock_folio(index) "
    "and call it on the FolioGuard"
)


def _gfp_arg(gfp: object) -> Gfp:
    if not isinstance(gfp, Gfp):
        raise TypeError(f"gfp must be a Gfp, got {type(gfp).__name__}")
    return gfp


@final
class Folio(PageRef):
    """One reference on an order-0 folio (``struct folio``), held until :meth:`put`.

    Invariant: until :meth:`put`, this handle owns one reference on a live folio. It may be
    in a page cache or not; what needs the folio lock (its index, its removal) is on
    :class:`FolioGuard`, from :meth:`lock` or :meth:`trylock`.
    """

    __slots__ = ()

    _release_call = "put()"
    _released = "put"

    @staticmethod
    @may_sleep("allocate with GFP_NOWAIT, or before the atomic section", gfp="gfp")
    def alloc(gfp: Gfp = GFP_KERNEL) -> Folio:
        """``filemap_alloc_folio(gfp, 0)``: a new folio, not yet in any page cache (ENOMEM
        when memory is exhausted; with ``GFP_KERNEL`` it may run reclaim first)."""
        k = running_kernel("Folio.alloc")
        raw = k.pages.alloc_page(int(_gfp_arg(gfp)), PageKind.KERNEL)
        return Folio(_TOKEN, k, raw)

    def mark_accessed(self) -> None:
        """``folio_mark_accessed``: tell reclaim the folio was used (the second use moves it
        to the active list). A flag and, at most, a list move: cheap, never sleeps."""
        _swap.folio_mark_accessed(self._kernel, self._live())

    @may_sleep("use trylock() in atomic context")
    def lock(self) -> FolioGuard:
        """``folio_lock``: take the folio lock, sleeping while another task holds it."""
        page = self._live()
        _filemap.folio_lock(self._kernel, page)
        return FolioGuard(_TOKEN, self._kernel, page, owns_ref=False)

    def trylock(self) -> FolioGuard | None:
        """``folio_trylock``: the folio lock if it is free now, else None; never sleeps."""
        page = self._live()
        if not _filemap.folio_trylock(self._kernel, page):
            return None
        return FolioGuard(_TOKEN, self._kernel, page, owns_ref=False)

    def put(self) -> None:
        """``folio_put``: drop this handle's reference (the last one frees the folio)."""
        self._drop("include/linux/mm.h:folio_put")


class LockedFolio(SafeObject):
    """A folio whose lock is held: ``folio->index`` and ``folio->mapping`` cannot change.

    Invariant: while the handle is live, ``PG_locked`` is held — by this code
    (:class:`FolioGuard`) or by the kernel for the duration of a hook (:class:`CachedFolio`).
    """

    __slots__ = ()

    _kernel: Kernel
    _page: _RawPage

    def _locked(self) -> _RawPage:
        """The folio, after checking the lock this handle stands for is still held."""
        raise NotImplementedError

    @property
    def index(self) -> int:
        """``folio->index``: the file page offset of the folio in its page cache."""
        return self._locked().index

    def in_mapping(self, mapping: AddressSpaceOwned[T]) -> bool:
        """``folio->mapping == mapping``: still in that page cache (False once truncated or
        reclaimed)."""
        return self._locked().mapping is mapping._mapping


@final
class FolioGuard(LockedFolio, HeldPageLock, Releasable):
    """A folio lock this code holds (``folio_lock`` ... ``folio_unlock``).

    Invariant: until :meth:`unlock` (or until ``->fault`` hands it to the kernel), the folio
    lock is held and the folio is referenced — by this guard itself when it came from a
    page-cache lookup, else by the :class:`Folio` it was taken from.
    """

    __slots__ = ("_owns_ref",)

    _noun = "folio"

    def __init__(self, _key: _Token, kernel: Kernel, page: _RawPage, *, owns_ref: bool) -> None:
        super().__init__(_key, kernel, page)
        self._owns_ref = owns_ref

    @override
    def _locked(self) -> _RawPage:
        if self._done:
            raise StaleReferenceError(f"{self!r} used after its folio lock was released")
        return self._page

    def folio(self) -> Folio:
        """``folio_get``: a new reference on the folio, as a :class:`Folio` (to keep it
        pinned after :meth:`unlock`)."""
        page = self._locked()
        self._kernel.pages.get_page(page)
        return Folio(_TOKEN, self._kernel, page)

    def filemap_remove_folio(self) -> None:
        """``filemap_remove_folio``: delete the folio from its page cache (the cache's
        reference goes). It must be unmapped first: a mapped folio is "Bad page cache"
        (``pagecache-free``). EINVAL when it is in no page cache."""
        page = self._locked()
        if page.mapping is None:
            raise KernelError(errno.EINVAL, f"{self!r} is in no page cache")
        _filemap.filemap_remove_folio(page)

    def unlock(self) -> None:
        """``folio_unlock`` (and ``folio_put`` when the guard holds its own reference)."""
        page = self._take("unlock()")
        _filemap.folio_unlock(self._kernel, page)
        if self._owns_ref:
            self._kernel.pages.put_page(page, "include/linux/mm.h:folio_put")

    def _consume(self) -> _RawPage:
        """``->fault`` returned the guard: the kernel takes over the lock and one reference
        (``VM_FAULT_LOCKED``) and unlocks once the PTE is in."""
        page = self._take("it was returned from ->fault")
        if not self._owns_ref:
            self._kernel.pages.get_page(page)
        return page

    @override
    def _end_block(self) -> None:
        if not self._done:
            self.unlock()


@final
class CachedFolio(LockedFolio, Generic[T]):
    """The folio reclaim asks ``release_folio`` about: locked by the kernel, in the page
    cache of a mapping created with these operations, valid during that call only.

    Invariant: during the hook the kernel holds the folio lock and the folio is in the page
    cache of a mapping whose private data is ``private_data``; there is no ``unlock`` (the
    lock is reclaim's).
    """

    __slots__ = ("_kernel", "_page", "_private", "_scope")

    def __init__(
        self, _key: _Token, kernel: Kernel, page: _RawPage, scope: HookScope, private: T
    ) -> None:
        check_token(_key, "CachedFolio")
        self._kernel = kernel
        self._page = page
        self._scope = scope
        self._private = private

    @override
    def _locked(self) -> _RawPage:
        if not self._scope.alive:
            stale(repr(self), self._scope)
        return self._page

    @property
    def private_data(self) -> T:
        """The mapping's private data (``mapping->i_private_data``), given to
        :meth:`AddressSpaceOperations.new_mapping`."""
        self._locked()
        return self._private

    def is_folio(self, folio: Folio) -> bool:
        """Whether ``folio`` is a reference on this same folio (the driver's own pin)."""
        return not folio._freed and folio._page is self._locked()

    @override
    def __repr__(self) -> str:
        return f"<CachedFolio pfn={self._page.pfn:#x} index={self._page.index}>"


install_missing(
    LockedFolio,
    {
        "unlock": "the kernel holds this folio's lock for the hook; return from the hook instead",
        "filemap_remove_folio": "reclaim removes the folio itself once release_folio says yes",
        "folio": "the driver's own Folio is the reference to keep; compare it with is_folio()",
    },
)
install_missing(
    Folio,
    {
        "index": _LOCK_HINT,
        "filemap_remove_folio": _LOCK_HINT,
        "unlock": "a Folio is a reference, not a lock: unlock the FolioGuard lock() returned",
    },
)


@final
class AddressSpaceOwned(SafeObject, Generic[T]):
    """The ``address_space`` of an anonymous inode this driver created with its
    :class:`AddressSpaceOperations`: its page cache is the driver's to fill and empty, and
    reclaim asks the driver's ``release_folio`` before freeing any of its folios.

    Invariant: wraps a live mapping whose ``a_ops`` are the driver's, with
    ``AS_RELEASE_ALWAYS`` set and ``i_private_data`` of type ``T``.
    """

    __slots__ = ("_kernel", "_mapping", "_private")

    def __init__(self, _key: _Token, kernel: Kernel, mapping: _RawMapping, private: T) -> None:
        check_token(_key, "AddressSpaceOwned")
        self._kernel = kernel
        self._mapping = mapping
        self._private = private

    @property
    def address_space(self) -> AddressSpace:
        """The plain :class:`~safemm.fs.AddressSpace` (for ``File.set_mapping`` and
        ``unmap_mapping_range``)."""
        return AddressSpace(_TOKEN, self._mapping)

    @property
    def private_data(self) -> T:
        """``mapping->i_private_data``."""
        return self._private

    @property
    def nrpages(self) -> int:
        """``mapping->nrpages``: folios in the page cache now."""
        return len(self._mapping.pages)

    @may_sleep("allocate and insert before the atomic section, or pass GFP_NOWAIT", gfp="gfp")
    def filemap_add_folio(self, folio: Folio, index: int, gfp: Gfp = GFP_KERNEL) -> FolioGuard:
        """``filemap_add_folio``: insert a new folio at file page ``index``; it comes back
        locked (unlock it when it is ready), referenced by the cache and on the inactive LRU.

        Raises:
            KernelError: EEXIST when ``index`` is already cached (look it up with
                :meth:`filemap_get_folio`); EINVAL for a negative index or a folio already
                in a page cache.
        """
        page = folio._live()
        _filemap.filemap_add_folio(
            self._mapping, page, _nonneg("index", index), int(_gfp_arg(gfp))
        )
        return FolioGuard(_TOKEN, self._kernel, page, owns_ref=False)

    def filemap_get_folio(self, index: int) -> Folio | None:
        """``filemap_get_folio``: the folio cached at ``index`` with a new reference, or
        None. Never sleeps."""
        page = _filemap.filemap_get_folio(self._mapping, _nonneg("index", index))
        return None if page is None else Folio(_TOKEN, self._kernel, page)

    @may_sleep("use filemap_get_folio() and Folio.trylock() in atomic context")
    def filemap_lock_folio(self, index: int) -> FolioGuard | None:
        """``filemap_lock_folio``: the folio cached at ``index``, referenced and locked
        (sleeping for the lock), or None; a folio reclaimed or truncated while this waited
        for its lock is not returned. What ``->fault`` returns (``VM_FAULT_LOCKED``)."""
        page = _filemap.filemap_lock_folio(self._mapping, _nonneg("index", index))
        return None if page is None else FolioGuard(_TOKEN, self._kernel, page, owns_ref=True)

    @may_sleep("truncate from ->release or an ioctl, never under a spinlock")
    def truncate_inode_pages(self, start: int = 0) -> int:
        """``truncate_inode_pages``: remove every folio from byte ``start`` (page aligned)
        on, unmapping it from every process first. Returns how many were removed."""
        return _truncate.truncate_inode_pages(self._mapping, _nonneg("start", start))

    @override
    def __repr__(self) -> str:
        return f"<AddressSpaceOwned {self._mapping!r}>"


class AddressSpaceOperations(Generic[T]):
    """A driver's ``address_space_operations``; ``T`` is the type of the private data of
    each mapping made with :meth:`new_mapping`. Override the hooks you need.

    ``release_folio(folio, gfp)`` is core reclaim asking whether a folio of one of these
    mappings may be freed now; it is called with the folio locked, after reclaim has already
    unmapped it from every process. Return False to keep it (it goes to the active list and
    is asked again later); return True only after dropping every reference the driver holds
    on it (reclaim frees the folio only if the page cache holds the last one).
    """

    def __init__(self, private_type: type[T], name: str = "a_ops") -> None:
        self.private_type = private_type
        self.name = name
        self._raw: _rawfs.AddressSpaceOperationsStruct | None = None
        self._kernel: weakref.ref[Kernel] | None = None

    def release_folio(self, folio: CachedFolio[T], gfp: Gfp) -> bool:
        """``->release_folio``: may ``folio`` be freed now? ``gfp`` says whether this call
        may block (``Gfp.DIRECT_RECLAIM``): without it, answer without sleeping."""
        return True

    @final
    def new_mapping(self, private: T) -> AddressSpaceOwned[T]:
        """``alloc_anon_inode`` with these operations and ``mapping_set_release_always``: an
        address space for the driver's page cache (one per open file, set on the file with
        ``file.set_mapping(mapping.address_space)`` in ``->open``)."""
        k = running_kernel("AddressSpaceOperations.new_mapping")
        if not isinstance(private, self.private_type):
            raise TypeError(
                f"new_mapping: the private data must be a {self.private_type.__name__}, got "
                f"{type(private).__name__}"
            )
        mapping = _rawfs.alloc_anon_inode(k).i_mapping
        mapping.a_ops = self._raw_ops(k)
        mapping.release_always = True
        mapping.private_data = private
        return AddressSpaceOwned(_TOKEN, k, mapping, private)

    @final
    def _raw_ops(self, kernel: Kernel) -> _rawfs.AddressSpaceOperationsStruct:
        """The raw table the model calls (built once per kernel)."""
        if "_kernel" not in self.__dict__:
            raise _forgot_init(self, "AddressSpaceOperations")
        if self._raw is not None:
            if self._kernel is not None and self._kernel() is not kernel:
                raise RuntimeError(
                    f"this {type(self).__name__} instance already serves another Kernel: "
                    "make one instance per driver instance"
                )
            return self._raw
        _check_hooks(
            self, AddressSpaceOperations, {"release_folio": "release_folio(self, folio, gfp)"}
        )
        self._kernel = weakref.ref(kernel)
        name = self.name
        cls = type(self)

        def release_folio(page: _RawPage, gfp: int) -> bool:
            mapping = page.mapping
            private = None if mapping is None else mapping.private_data
            if not isinstance(private, self.private_type):
                return True  # not one of our mappings: nothing of ours to release
            with HookCall(
                kernel, f"{name}->release_folio", f"{name}->release_folio returned"
            ) as scope:
                res = self.release_folio(
                    CachedFolio(_TOKEN, kernel, page, scope, private), Gfp(gfp)
                )
            got: object = res  # checked at run time too: drivers may be untyped
            if not isinstance(got, bool):
                raise TypeError(
                    f"{name}->release_folio returned {type(got).__name__}: return True to let "
                    "reclaim free the folio, False to keep it"
                )
            return got

        self._raw = _rawfs.AddressSpaceOperationsStruct(
            name=name,
            release_folio=(
                release_folio
                if cls.release_folio is not AddressSpaceOperations.release_folio
                else None
            ),
            owner=self,
        )
        return self._raw
