"""Physical memory: ``struct page`` and the page allocator.

Mirrors include/linux/mm_types.h (struct page: ``_refcount``, ``_mapcount``, ``mapping``,
page type) and mm/page_alloc.c (``__alloc_pages``: watermark check, direct reclaim through the
shrinkers, failure; ``__free_pages`` and ``bad_page``).

Simplifications: every allocation is order 0 (hugetlb pages come from a separate pool, see
:class:`HugePage`); there are no zones or watermarks (an allocation fails when no frame is
free after reclaim); there is no OOM killer — a ``GFP_KERNEL`` allocation that reclaim cannot
satisfy fails with ENOMEM instead of killing a task; page tables take no frames.
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING

from typing_extensions import override

from .errors import KernelError
from .mman import PAGE_SIZE
from .printk import SplatKind
from .runqueue import SwitchKind
from .sched import PF_MEMALLOC, might_sleep

if TYPE_CHECKING:
    from .fs import AddressSpace
    from .kernel import Kernel
    from .sched import Task

__all__ = ["GFP_ATOMIC", "GFP_KERNEL", "GFP_NOWAIT", "Gfp", "Page", "PageKind"]


class Gfp(enum.IntFlag):
    """Allocation flags: what an allocation may do to find memory (include/linux/gfp_types.h).

    Only the bits the model acts on are kept; their values are the model's own.
    """

    NONE = 0
    #: May enter direct reclaim, i.e. may sleep (``__GFP_DIRECT_RECLAIM``).
    DIRECT_RECLAIM = 0x1
    #: May wake kswapd (``__GFP_KSWAPD_RECLAIM``).
    KSWAPD_RECLAIM = 0x2
    #: May start I/O (``__GFP_IO``).
    IO = 0x4
    #: May call into filesystems, and so into shrinkers that take fs locks (``__GFP_FS``).
    FS = 0x8
    #: Zero the page (``__GFP_ZERO``).
    ZERO = 0x10
    #: May come from highmem (``__GFP_HIGHMEM``; no effect on 64-bit).
    HIGHMEM = 0x20
    #: Do not warn on failure (``__GFP_NOWARN``).
    NOWARN = 0x40
    #: May use emergency reserves (``__GFP_HIGH``).
    HIGH = 0x80


#: The usual allocation from process context: may sleep, reclaim, do I/O and enter filesystems.
GFP_KERNEL = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM | Gfp.IO | Gfp.FS
#: Never sleeps and takes no reserves: fails rather than reclaiming directly.
GFP_NOWAIT = Gfp.KSWAPD_RECLAIM
#: Never sleeps (atomic context) and may use the emergency reserves.
GFP_ATOMIC = Gfp.HIGH | Gfp.KSWAPD_RECLAIM
GFP_NOFS = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM | Gfp.IO
GFP_HIGHUSER = GFP_KERNEL | Gfp.HIGHMEM

_GFP_DIRECT_RECLAIM = int(Gfp.DIRECT_RECLAIM)
_GFP_FS = int(Gfp.FS)
_GFP_ZERO = int(Gfp.ZERO)


class PageKind(enum.Enum):
    """What a page frame is used for (page type, anon/file ``mapping``)."""

    #: In the buddy allocator (PageBuddy): free.
    FREE = "free"
    #: Allocated by ``alloc_page`` for a driver; not anonymous, not typed.
    KERNEL = "kernel"
    #: Anonymous memory (``folio_test_anon``).
    ANON = "anon"
    #: Page cache of a file or anonymous inode (shmem, a driver's inode).
    FILE = "file"
    #: The shared zero page.
    ZERO = "zero"
    #: Slab memory (``page_has_type``: PG_slab).
    SLAB = "slab"
    #: A page table (``page_has_type``: PGTY_table).
    PAGETABLE = "pagetable"


#: Kinds vm_insert_page refuses (validate_page_before_insert: anon or typed pages).
UNINSERTABLE = frozenset({PageKind.ANON, PageKind.SLAB, PageKind.PAGETABLE, PageKind.FREE})


class Page:
    """A ``struct page`` of one 4 KiB frame.

    Invariant: ``refcount >= mapcount >= 0`` while allocated (``kind`` is not FREE);
    ``refcount == mapcount == 0`` while free; ``lru`` only while allocated (the LRU holds no
    reference: the last ``put_page`` takes the page off its list, ``__page_cache_release``).
    ``special_maps`` counts special (pfn) PTEs that name this frame without holding a
    reference (tracked only to report H11). ``data`` is the frame's contents, created on
    first write (None reads as zeros).
    """

    __slots__ = (
        "active",
        "data",
        "dirty",
        "index",
        "kind",
        "locked_by",
        "lru",
        "mapcount",
        "mapping",
        "pfn",
        "refcount",
        "referenced",
        "special_maps",
    )

    def __init__(self, pfn: int, kind: PageKind) -> None:
        self.pfn = pfn
        self.kind = kind
        self.refcount = 0
        self.mapcount = 0
        self.mapping: AddressSpace | None = None
        self.index = 0
        self.data: bytearray | None = None
        self.special_maps = 0
        #: ``PG_locked``: the task holding the page lock (``trylock_page``), or None.
        self.locked_by: Task | None = None
        #: ``PG_lru``: on one of the LRU lists (``Kernel.lruvec``); ``PG_active``: which one.
        self.lru = False
        self.active = False
        #: ``PG_referenced`` (the second-chance bit of ``folio_check_references``).
        self.referenced = False
        #: ``PG_dirty``: set when a dirty PTE is unmapped (``try_to_unmap_one``).
        self.dirty = False

    def read(self, offset: int, length: int) -> bytes:
        """The bytes at ``[offset, offset+length)`` of the frame."""
        if self.data is None:
            return bytes(length)
        return bytes(self.data[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        """Store ``data`` at ``offset`` in the frame."""
        if self.data is None:
            self.data = bytearray(PAGE_SIZE)
        self.data[offset : offset + len(data)] = data

    def zero(self) -> None:
        """Fill the frame with zeros (``clear_page``)."""
        self.data = None

    def copy_from(self, other: Page) -> None:
        """Copy another frame's contents (``copy_user_highpage``)."""
        self.data = None if other.data is None else bytearray(other.data)

    @override
    def __repr__(self) -> str:
        return f"<Page pfn={self.pfn} {self.kind.value} ref={self.refcount} map={self.mapcount}>"


class HugePage:
    """A 2 MiB hugetlb page from the hugetlb pool (``struct folio`` of order 9).

    Invariant: ``refcount >= mapcount >= 0``; contents stored sparsely by 4 KiB subpage.
    """

    __slots__ = ("data", "index", "mapcount", "refcount")

    def __init__(self, index: int) -> None:
        self.index = index
        self.refcount = 0
        self.mapcount = 0
        self.data: dict[int, bytearray] = {}


#: pfn of the shared zero page.
ZERO_PFN = 0


class PageAllocator:
    """The machine's page frames and their allocator.

    Invariant: ``len(free) + allocated == nr_pages``; a frame is in ``free`` exactly when its
    page's kind is FREE. pfn 0 is the zero page; pfns ``1..nr_pages`` are RAM (``pfn_valid``);
    higher pfns are device memory without a struct page (``iomem``).

    The free list and the ``struct page`` objects are created on first use (a kernel is built
    once per test example or explored schedule, and most never touch more than a few of their
    16,384 frames). Conceptually ``free`` is ``[nr_pages, ..., 1]`` at boot, popped from the
    end and pushed back on free; the allocator keeps only the pushed-back part (``_recycled``)
    and the lowest pfn never handed out (``_unused``): the pfns ``_unused..nr_pages`` are the
    bottom of the list. :meth:`frames` holds the pages of pfns ``0..len(frames())-1``; a pfn
    above them has never been used, so it is free.
    """

    __slots__ = (
        "_pages",
        "_recycled",
        "_unused",
        "hugepages",
        "iomem",
        "kernel",
        "nr_pages",
        "zero_page",
    )

    def __init__(self, kernel: Kernel, nr_pages: int, nr_hugepages: int) -> None:
        if nr_pages < 1:
            raise ValueError(f"nr_pages must be >= 1, got {nr_pages}")
        if nr_hugepages < 0:
            raise ValueError(f"nr_hugepages must be >= 0, got {nr_hugepages}")
        self.kernel = kernel
        self.nr_pages = nr_pages
        self.zero_page = Page(ZERO_PFN, PageKind.ZERO)
        self.zero_page.refcount = 1
        self._pages: list[Page] = [self.zero_page]
        # Pop from the end; allocate low pfns first so runs are easy to read.
        self._recycled: list[int] = []
        self._unused = 1
        self.hugepages: list[HugePage] = [HugePage(i) for i in range(nr_hugepages)]
        #: Contents of device memory (pfns beyond RAM), for raw pfn mappings.
        self.iomem: dict[int, bytearray] = {}

    @property
    def nr_free(self) -> int:
        """Free frames."""
        return len(self._recycled) + self.nr_pages + 1 - self._unused

    @property
    def free(self) -> list[int]:
        """The free list (pfns, the next one to be allocated last)."""
        if self._unused <= self.nr_pages:
            self._recycled[:0] = range(self.nr_pages, self._unused - 1, -1)
            self._unused = self.nr_pages + 1
        return self._recycled

    def pfn_valid(self, pfn: int) -> bool:
        """Whether ``pfn`` has a ``struct page`` (``pfn_valid``)."""
        return 0 <= pfn <= self.nr_pages

    @property
    def pages(self) -> list[Page]:
        """Every frame's page, indexed by pfn (``mem_map``); creates the ones not yet used."""
        self._grow(self.nr_pages)
        return self._pages

    def free_parts(self) -> tuple[list[int], int]:
        """The free list without creating it: the pfns pushed back on it (``recycled``, the
        top of the list) and the lowest pfn never handed out (every RAM pfn from it up is
        free, at the bottom of the list)."""
        return self._recycled, self._unused

    def frames(self) -> list[Page]:
        """The pages created so far: pfns ``0..len(frames())-1`` (every higher RAM pfn is
        free and has never been used)."""
        return self._pages

    def _grow(self, pfn: int) -> Page:
        """Create the pages up to ``pfn`` (at least doubling, so growing is amortised)."""
        pages = self._pages
        n = len(pages)
        if pfn >= n:
            if pfn > self.nr_pages:
                raise IndexError(f"pfn {pfn} has no struct page")
            end = min(self.nr_pages + 1, max(pfn + 1, 2 * n, 64))
            pages.extend([Page(p, PageKind.FREE) for p in range(n, end)])
        return pages[pfn]

    def pfn_to_page(self, pfn: int) -> Page:
        """``pfn_to_page``."""
        pages = self._pages
        return pages[pfn] if pfn < len(pages) else self._grow(pfn)

    def alloc_page(self, gfp: int, kind: PageKind = PageKind.KERNEL) -> Page:
        """``alloc_pages(gfp, 0)``: one frame with refcount 1, or KernelError(ENOMEM).

        With ``__GFP_DIRECT_RECLAIM`` the call may sleep (``might_alloc``) and, when memory is
        short, runs the shrinkers in the caller's context (direct reclaim, holding the
        ``fs_reclaim`` lockdep map as the kernel does), then retries once.
        """
        kernel = self.kernel
        task = kernel.current
        may_reclaim = gfp & _GFP_DIRECT_RECLAIM and not task.flags & PF_MEMALLOC
        if gfp & _GFP_DIRECT_RECLAIM:
            might_sleep(kernel, "mm/page_alloc.c:__alloc_pages")
            if may_reclaim and gfp & _GFP_FS:
                # might_alloc(): fs_reclaim_acquire + release records "held -> fs_reclaim".
                kernel.fs_reclaim_acquire("mm/page_alloc.c:__alloc_pages")
                kernel.fs_reclaim_release("mm/page_alloc.c:__alloc_pages")
        if kernel.fault_inject.should_fail("alloc_page"):
            kernel.counters.alloc_failed += 1
            raise KernelError(errno.ENOMEM, "page allocation failed (fault injection)")
        recycled = self._recycled
        if not recycled and self._unused > self.nr_pages and may_reclaim:
            kernel.counters.direct_reclaim += 1
            kernel.direct_reclaim(gfp)
        if recycled:
            pfn = recycled.pop()
        elif self._unused <= self.nr_pages:
            pfn = self._unused
            self._unused = pfn + 1
        else:
            kernel.counters.alloc_failed += 1
            raise KernelError(
                errno.ENOMEM, f"out of memory: all {self.nr_pages} page frames are in use"
            )
        try:
            page = self._pages[pfn]
        except IndexError:
            page = self._grow(pfn)
        page.kind = kind
        page.refcount = 1
        page.mapcount = 0
        if gfp & _GFP_ZERO or kind is PageKind.ANON:
            page.data = None
        kernel.counters.pgalloc += 1
        return page

    def get_page(self, page: Page) -> None:
        """``get_page``: take a reference; the page must be live."""
        if page.kind is PageKind.ZERO:
            return
        if page.refcount <= 0:
            self.kernel.report(
                SplatKind.BUG,
                "page-refcount",
                f"get_page on a free page {page!r}",
                "include/linux/mm.h:get_page",
                title="kernel BUG at include/linux/mm.h:get_page!",
            )
        page.refcount += 1

    def trylock_page(
        self, page: Page, where: str = "include/linux/pagemap.h:trylock_page"
    ) -> bool:
        """``trylock_page``: set ``PG_locked`` if clear; never sleeps. The page must be live.

        The page lock is what closes the fault-against-truncate race (mm/filemap.c): a
        ``->fault`` that returns ``VM_FAULT_LOCKED`` keeps the page locked until
        ``finish_fault`` has installed the PTE, and truncate (or a driver's reclaim) locks the
        page before it unmaps and drops it.
        """
        k = self.kernel
        if page.refcount <= 0:
            k.report(
                SplatKind.BUG,
                "page-refcount",
                f"trylock_page on a free page {page!r}",
                where,
                title=f"kernel BUG at {where}!",
            )
        s = k._sched
        if page.locked_by is not None:
            if s is not None:
                s.point(SwitchKind.TRYLOCK_FAIL, f"trylock_page pfn {page.pfn:#x}")
            return False
        page.locked_by = k.current
        if s is not None:
            s.point(SwitchKind.LOCK, f"trylock_page pfn {page.pfn:#x}")
        return True

    def unlock_page(self, page: Page, where: str = "mm/filemap.c:folio_unlock") -> None:
        """``folio_unlock``: clear ``PG_locked`` and wake the tasks sleeping in ``folio_lock``
        (``folio_wake_bit``). ``VM_BUG_ON_FOLIO(!folio_test_locked(folio))``: unlocking a
        folio that is not locked (twice, or never locked) is a BUG."""
        k = self.kernel
        if page.locked_by is None:
            k.report(
                SplatKind.BUG,
                "folio-locked",
                f"folio_unlock of {page!r}, which is not locked "
                "(VM_BUG_ON_FOLIO(!folio_test_locked(folio)))",
                where,
                title=f"kernel BUG at {where}!",
            )
        page.locked_by = None
        s = k._sched
        if s is not None:
            s.wake_up_var(page)
            s.point(SwitchKind.UNLOCK, f"unlock_page pfn {page.pfn:#x}")

    def put_page(self, page: Page, where: str = "include/linux/mm.h:put_page") -> None:
        """``put_page``: drop a reference; the last one frees the frame (``__free_pages``)."""
        if page.kind is PageKind.ZERO:
            return
        if page.refcount <= 0:
            self.kernel.report(
                SplatKind.BUG,
                "page-refcount",
                f"put_page on {page!r}: refcount would go negative",
                where,
                title="kernel BUG at include/linux/mm.h:put_page!",
            )
        page.refcount -= 1
        if page.refcount == 0:
            self._free(page, where)

    def _free(self, page: Page, where: str) -> None:
        kernel = self.kernel
        if page.mapcount:
            # mm/page_alloc.c bad_page(): "Bad page state"; the kernel taints and carries on.
            kernel.report(
                SplatKind.WARNING,
                "page-refcount",
                f"page {page!r} freed while still mapped {page.mapcount} time(s)",
                where,
                title=f"BUG: Bad page state in process {kernel.current.comm}  pfn:{page.pfn:x}",
            )
            page.mapcount = 0
        if page.locked_by is not None:
            # free_page_is_bad(): PG_locked is in PAGE_FLAGS_CHECK_AT_FREE.
            kernel.report(
                SplatKind.WARNING,
                "page-refcount",
                f"page {page!r} freed while locked by {page.locked_by.comm}",
                where,
                title=f"BUG: Bad page state in process {kernel.current.comm}  pfn:{page.pfn:x}",
            )
            page.locked_by = None
        if page.mapping is not None and page.kind is PageKind.FILE:
            # free_page_is_bad(): "non-NULL mapping" — the page cache still points at it.
            kernel.report(
                SplatKind.WARNING,
                "pagecache-free",
                f"page-cache {page!r} (index {page.index} of {page.mapping!r}) freed while "
                "still in the page cache",
                where,
                title=f"BUG: Bad page state in process {kernel.current.comm}  pfn:{page.pfn:x}",
            )
            page.mapping.pages.pop(page.index, None)
        if page.lru:
            # __page_cache_release(): the last reference takes the folio off its LRU list.
            kernel.lruvec.del_folio(page)
        if page.special_maps and kernel.strict:
            kernel.report(
                SplatKind.STRICT,
                "pfn-outlives-page",
                f"page pfn {page.pfn:#x} is freed while {page.special_maps} special PTE(s) "
                "still map it; user space keeps access to memory that will be reused",
                where,
            )
        page.kind = PageKind.FREE
        page.mapping = None
        page.referenced = page.dirty = False
        self._recycled.append(page.pfn)
        kernel.counters.pgfree += 1

    def alloc_hugepage(self) -> HugePage:
        """A page from the hugetlb pool (``alloc_hugetlb_folio``), or ENOMEM."""
        for hp in self.hugepages:
            if hp.refcount == 0:
                hp.refcount = 1
                hp.data.clear()
                return hp
        raise KernelError(errno.ENOMEM, "hugetlb pool exhausted")

    def put_hugepage(self, hp: HugePage) -> None:
        """Drop a hugetlb page reference."""
        hp.refcount -= 1
