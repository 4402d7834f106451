"""The receiver's buffer area of the binder demo drivers (the data of ``struct binder_alloc``
in drivers/android/binder_alloc.c): the first-fit range allocator, the buffers it hands out,
the page slots behind them, and the per-open-file :class:`Area` that holds them all.

Locking is the caller's: each type's invariant names the lock that protects it. Only the
safe layer is used here.
"""

from __future__ import annotations

from collections import deque

from typing_extensions import override

from safemm.folio import Folio
from safemm.fs import AddressSpace, AddressSpaceOwned
from safemm.mm import OwnedMm
from safemm.page import GFP_KERNEL, Gfp, Page
from safemm.sync import Mutex, SpinLock

__all__ = [
    "GFP_BUFFER",
    "Area",
    "Buffer",
    "PageSlot",
    "RangeAllocator",
]

#: Pages for buffers: zeroed, so a receiver never sees another process's old data.
GFP_BUFFER = GFP_KERNEL | Gfp.ZERO


class RangeAllocator:
    """First-fit allocation of page ranges inside an area (``binder_alloc`` keeps a free
    tree; a sorted list of extents is enough here).

    Invariant: ``extents`` is sorted, holds disjoint non-adjacent ``[start, start + n)``
    ranges inside ``[0, npages)`` with ``n > 0``.
    """

    __slots__ = ("extents", "npages")

    def __init__(self, npages: int) -> None:
        self.npages = npages
        self.extents: list[tuple[int, int]] = [(0, npages)] if npages else []

    def alloc(self, n: int) -> int | None:
        """The first free range of ``n`` pages, now allocated; None if none is large enough."""
        for i, (start, size) in enumerate(self.extents):
            if size >= n:
                if size == n:
                    del self.extents[i]
                else:
                    self.extents[i] = (start + n, size - n)
                return start
        return None

    def free(self, start: int, n: int) -> None:
        """Give ``[start, start + n)`` back, merging it with its free neighbours."""
        ext = self.extents
        i = 0
        while i < len(ext) and ext[i][0] < start:
            i += 1
        if i > 0 and ext[i - 1][0] + ext[i - 1][1] > start:
            raise ValueError(f"double free of pages {start}+{n}")
        if i < len(ext) and start + n > ext[i][0]:
            raise ValueError(f"double free of pages {start}+{n}")
        if i > 0 and ext[i - 1][0] + ext[i - 1][1] == start:
            i -= 1
            start, n = ext[i][0], ext[i][1] + n
            del ext[i]
        if i < len(ext) and start + n == ext[i][0]:
            n += ext[i][1]
            del ext[i]
        ext.insert(i, (start, n))

    @property
    def free_pages(self) -> int:
        """Pages not allocated."""
        return sum(n for _, n in self.extents)


class Buffer:
    """One transaction's buffer: pages ``[first, first + npages)`` of the receiver's area.

    Invariant: while queued or delivered, its pages are off the list_lru and every slot in
    its range holds a page.
    """

    __slots__ = ("first", "length", "npages")

    def __init__(self, first: int, npages: int, length: int) -> None:
        self.first = first
        self.npages = npages
        self.length = length


class PageSlot:
    """Page ``index`` of an area: the driver's reference on the page behind it (if any), and
    whether that page was inserted at ``area.base + index * PAGE_SIZE``. The lru-reclaim
    strategy keeps a page-cache folio instead (``folio``, its pin) and the flag that says
    whether a buffer uses it (``in_use``).

    Invariant: ``page``, ``inserted``, ``folio``, ``in_use`` and membership of the driver's
    list_lru change only under ``area.lock``; a slot is on the list_lru exactly when its page
    belongs to no buffer (it is reclaimable); ``in_use`` only with a ``folio``.
    """

    __slots__ = ("area", "folio", "in_use", "index", "inserted", "page")

    def __init__(self, area: Area, index: int) -> None:
        self.area = area
        self.index = index
        self.page: Page | None = None
        self.inserted = False
        self.folio: Folio | None = None
        self.in_use = False

    def require_page(self) -> Page:
        """The slot's page; the caller knows there is one (its buffer owns the slot)."""
        page = self.page
        if page is None:
            raise RuntimeError(f"slot {self.index} of area {self.area.id} has no page")
        return page

    def require_folio(self) -> Folio:
        """The slot's folio; the caller knows there is one (its buffer owns the slot)."""
        folio = self.folio
        if folio is None:
            raise RuntimeError(f"slot {self.index} of area {self.area.id} has no folio")
        return folio

    @override
    def __repr__(self) -> str:
        return f"<slot {self.area.id}:{self.index}>"


class Area:
    """The per-open-file state (``struct binder_alloc``): the receiver's buffer area.

    Invariant: ``mutex`` protects the allocator (set up once, in ``->mmap``, before
    ``mmapped`` publishes it), ``queue``, ``delivered`` and ``released``;
    ``lock`` (a spinlock, taken inside the mmap lock by the VMA hooks) protects ``base``,
    ``npages``, ``mmapped`` (the file was mapped once: a second mmap is EBUSY),
    ``vma_count`` (the VMAs, in any mm, that map the file now) and every slot. ``mm`` is an
    ``mm_count`` reference on the opener's mm (strategies that record it), dropped in
    ``->release``; ``mapping`` is the file's own address space (fault-and-unmap and
    lru-reclaim), and ``cache`` the same mapping as the owner of its page cache
    (lru-reclaim).
    """

    def __init__(self, area_id: int) -> None:
        self.id = area_id
        self.mutex = Mutex("safebinder_area.mutex")
        self.lock = SpinLock("safebinder_area.lock")
        self.mm: OwnedMm | None = None
        #: The opener's pid (a number, not a reference): only moves made by the opener's
        #: process move the area (a fork child moving its copy must not).
        self.owner_pid = 0
        self.mapping: AddressSpace | None = None
        self.cache: AddressSpaceOwned[Area] | None = None
        self.mmapped = False
        self.base = 0
        self.npages = 0
        self.vma_count = 0
        self.slots: list[PageSlot] = []
        self.alloc = RangeAllocator(0)
        self.queue: deque[Buffer] = deque()
        self.delivered: dict[int, Buffer] = {}
        self.released = False

    @override
    def __repr__(self) -> str:
        return f"<area {self.id}>"
