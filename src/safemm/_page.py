"""Pages owned by driver code (see :mod:`safemm.page`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from typing_extensions import override

from ._scope import _TOKEN, SafeObject, _Token, check_token, running_kernel
from .model.atomic import may_sleep
from .model.errors import KernelError, StaleReferenceError
from .model.mman import PAGE_SIZE
from .model.page_alloc import GFP_KERNEL, Gfp, PageKind

if TYPE_CHECKING:
    from .model.kernel import Kernel
    from .model.page_alloc import Page as _RawPage

__all__ = ["Page"]


@final
class Page(SafeObject):
    """One order-0 page the driver owns (``kernel::page::Page``).

    Invariant: until :meth:`free`, this handle owns one reference on a live page frame. A
    mapping of the page (``vm_insert_page``) holds a reference of its own, so freeing the
    handle while the page is mapped is safe: the frame lives until it is unmapped.
    """

    __slots__ = ("__weakref__", "_freed", "_kernel", "_page")

    def __init__(self, _key: _Token, kernel: Kernel, page: _RawPage) -> None:
        check_token(_key, "Page")
        self._kernel = kernel
        self._page = page
        self._freed = False

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

    def _live(self) -> _RawPage:
        if self._freed:
            raise StaleReferenceError(f"{self!r} used after Page.free()")
        return self._page

    @property
    def pfn(self) -> int:
        """The page frame number (for messages and tests)."""
        return self._live().pfn

    def read(self, offset: int, length: int) -> bytes:
        """``read_raw``: ``length`` bytes at ``offset`` (EINVAL outside the page)."""
        self._check_range(offset, length)
        return self._live().read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        """``write_raw``: store ``data`` at ``offset`` (EINVAL outside the page)."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        self._check_range(offset, len(data))
        self._live().write(offset, bytes(data))

    def fill_zero(self) -> None:
        """``fill_zero_raw``: zero the whole page."""
        self._live().zero()

    def free(self) -> None:
        """Drop this handle's reference (``__free_pages`` if it was the last)."""
        page = self._live()
        self._freed = True
        self._kernel.pages.put_page(page, "rust/kernel/page.rs:Page::drop")

    @staticmethod
    def _check_range(offset: object, length: object) -> None:
        for name, v in (("offset", offset), ("length", length)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        assert isinstance(offset, int)
        assert isinstance(length, int)
        if offset < 0 or length < 0 or offset + length > PAGE_SIZE:
            import errno

            raise KernelError(errno.EINVAL, f"range {offset}+{length} is outside the page")

    def __del__(self) -> None:
        if not hasattr(self, "_freed"):  # the constructor refused (no token)
            return
        if not self._freed:
            self._kernel.leak(
                f"Page pfn {self._page.pfn:#x}",
                f"a Page (pfn {self._page.pfn:#x}) was dropped without free()",
            )

    @override
    def __repr__(self) -> str:
        return f"<Page pfn={self._page.pfn:#x}{' freed' if self._freed else ''}>"
