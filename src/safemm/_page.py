"""Pages owned by driver code (see :mod:`safemm.page`)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, final

from typing_extensions import override

from ._scope import _TOKEN, Releasable, SafeObject, _Token, check_token, running_kernel
from .model.atomic import may_sleep
from .model.errors import KernelError, StaleReferenceError
from .model.mman import PAGE_SIZE
from .model.page_alloc import GFP_KERNEL, Gfp, PageKind

if TYPE_CHECKING:
    from .model.kernel import Kernel
    from .model.page_alloc import Page as _RawPage

__all__ = ["HeldPageLock", "Page", "PageLock", "PageRef"]


class PageRef(SafeObject):
    """What a handle owning one reference on a page frame shares (:class:`Page`,
    :class:`~safemm.folio.Folio`): its bytes, and a leak report if it is dropped unreleased.

    Invariant: until released, the handle owns one reference on a live page frame.
    """

    __slots__ = ("__weakref__", "_freed", "_kernel", "_page")

    #: The method that drops the reference, and what the handle is then, for messages.
    _release_call = "free()"
    _released = "freed"

    def __init__(self, _key: _Token, kernel: Kernel, page: _RawPage) -> None:
        check_token(_key, type(self).__name__)
        self._kernel = kernel
        self._page = page
        self._freed = False

    def _live(self) -> _RawPage:
        if self._freed:
            raise StaleReferenceError(
                f"{self!r} used after {type(self).__name__}.{self._release_call}"
            )
        return self._page

    def _drop(self, where: str) -> None:
        """Drop the reference (``put_page``): the handle is stale from now on."""
        page = self._live()
        self._freed = True
        self._kernel.pages.put_page(page, where)

    @property
    def pfn(self) -> int:
        """The page frame number (for messages and tests)."""
        return self._live().pfn

    def read(self, offset: int, length: int) -> bytes:
        """``read_raw``: ``length`` bytes at ``offset`` (EINVAL outside the page)."""
        _check_range(offset, length)
        return self._live().read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        """``write_raw``: store ``data`` at ``offset`` (EINVAL outside the page)."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        _check_range(offset, len(data))
        self._live().write(offset, bytes(data))

    def __del__(self) -> None:
        if not hasattr(self, "_freed"):  # the constructor refused (no token)
            return
        if not self._freed:
            name = type(self).__name__
            self._kernel.leak(
                f"{name} pfn {self._page.pfn:#x}",
                f"a {name} (pfn {self._page.pfn:#x}) was dropped without {self._release_call}",
            )

    @override
    def __repr__(self) -> str:
        gone = f" {self._released}" if self._freed else ""
        return f"<{type(self).__name__} pfn={self._page.pfn:#x}{gone}>"


def _check_range(offset: object, length: object) -> None:
    for name, v in (("offset", offset), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    assert isinstance(offset, int)
    assert isinstance(length, int)
    if offset < 0 or length < 0 or offset + length > PAGE_SIZE:
        raise KernelError(errno.EINVAL, f"range {offset}+{length} is outside the page")


@final
class Page(PageRef):
    """One order-0 page the driver owns (``kernel::page::Page``).

    Invariant: until :meth:`free`, this handle owns one reference on a live page frame. A
    mapping of the page (``vm_insert_page``) holds a reference of its own, so freeing the
    handle while the page is mapped is safe: the frame lives until it is unmapped.
    """

    __slots__ = ()

    @staticmethod
    @may_sleep("allocate with GFP_ATOMIC or GFP_NOWAIT, or before the atomic section", gfp="gfp")
    def alloc_page(gfp: Gfp = GFP_KERNEL) -> Page:
        """``alloc_page(gfp)``: a new page (KernelError ENOMEM when memory is exhausted).

        With ``GFP_KERNEL`` this may sleep and may run reclaim (shrinkers) in the caller.
        """
        k = running_kernel("Page.alloc_page")
        if not isinstance(gfp, Gfp):
            raise TypeError(f"gfp must be a Gfp, got {type(gfp).__name__}")
        return Page(_TOKEN, k, k.pages.alloc_page(int(gfp), PageKind.KERNEL))

    def fill_zero(self) -> None:
        """``fill_zero_raw``: zero the whole page."""
        self._live().zero()

    def trylock(self) -> PageLock | None:
        """``trylock_page`` plus ``get_page``: lock the page (``PG_locked``) and pin it, or
        None when it is locked already. Never sleeps, so it may be called under a spinlock.

        What ``->fault`` returns (``VM_FAULT_LOCKED``): take it while the driver's own lock
        still says the page belongs where the fault is; the kernel keeps the page pinned and
        locked until its PTE is installed. Reclaim that unmaps and frees a page must hold
        its lock too (``truncate_inode_folio`` runs with the folio locked), so it cannot
        free a page that a fault is between looking up and mapping.
        """
        k = self._kernel
        page = self._live()
        if not k.pages.trylock_page(page):
            return None
        k.pages.get_page(page)
        return PageLock(_TOKEN, k, page)

    def free(self) -> None:
        """Drop this handle's reference (``__free_pages`` if it was the last)."""
        self._drop("rust/kernel/page.rs:Page::drop")


class HeldPageLock(SafeObject):
    """What a guard holding a page's lock (``PG_locked``) shares (:class:`PageLock`,
    :class:`~safemm.folio.FolioGuard`): it is released once, and a leak report if it is
    dropped still held.

    Invariant: until released, the guard holds the lock of a live page frame.
    """

    __slots__ = ("__weakref__", "_done", "_kernel", "_page")

    #: What is locked, for messages.
    _noun = "page"

    def __init__(self, _key: _Token, kernel: Kernel, page: _RawPage) -> None:
        check_token(_key, type(self).__name__)
        self._kernel = kernel
        self._page = page
        self._done = False

    def _take(self, what: str) -> _RawPage:
        if self._done:
            raise StaleReferenceError(f"{self!r} used after {what}")
        self._done = True
        return self._page

    def __del__(self) -> None:
        if not hasattr(self, "_done"):  # the constructor refused (no token)
            return
        if not self._done:
            name = type(self).__name__
            self._kernel.leak(
                f"{name} pfn {self._page.pfn:#x}",
                f"{self._noun} pfn {self._page.pfn:#x} was locked and the guard dropped "
                "without unlock()",
            )

    @override
    def __repr__(self) -> str:
        done = " released" if self._done else ""
        return f"<{type(self).__name__} pfn={self._page.pfn:#x}{done}>"


@final
class PageLock(HeldPageLock, Releasable):
    """A locked, pinned page (``PG_locked`` held, one reference): from :meth:`Page.trylock`.

    Invariant: until :meth:`unlock` (or until the kernel takes it over from ``->fault``),
    this guard holds the page lock and one reference on the page frame.
    """

    __slots__ = ()

    def _consume(self) -> _RawPage:
        """The kernel takes the lock and the reference over (``->fault`` returned it)."""
        return self._take("it was returned from ->fault")

    @property
    def locked(self) -> bool:
        """Whether this guard still holds the page lock."""
        return not self._done

    def is_page(self, page: Page) -> bool:
        """Whether this is the lock of ``page`` (the fault path's ``page->mapping`` re-check:
        is it still the page the driver's state names?)."""
        return not page._freed and page._page is self._page and not self._done

    def unlock(self) -> None:
        """``unlock_page`` then ``put_page``."""
        page = self._take("unlock()")
        self._kernel.pages.unlock_page(page)
        self._kernel.pages.put_page(page, "rust/kernel/page.rs:PageLock::drop")

    @override
    def _end_block(self) -> None:
        if not self._done:
            self.unlock()
