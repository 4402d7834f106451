"""The file LRU lists: mm/swap.c (``folio_add_lru``, ``folio_mark_accessed``,
``folio_activate``) and the list helpers of include/linux/mm_inline.h (``lruvec_add_folio``,
``lruvec_del_folio``).

Page-cache folios added with ``filemap_add_folio`` go on the inactive file list; reclaim
(:mod:`safemm.model.vmscan`) takes them from its cold end, moves referenced ones to the active
list and moves active ones back when the inactive list runs low.

Simplifications: one node, one memcg, so one ``lruvec``; no anon lists (the model has no swap,
so anonymous and shmem pages are never on an LRU the model scans); no per-CPU folio batches
(``folio_add_lru`` and ``folio_activate`` act at once); no multi-gen LRU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .kernel import Kernel
    from .page_alloc import Page

__all__ = ["Lruvec", "folio_activate", "folio_add_lru", "folio_mark_accessed"]


class Lruvec:
    """A ``struct lruvec`` with its two file lists, each ordered cold (oldest) first.

    Invariant: a page is on at most one list, on ``active`` exactly when ``page.active``,
    and on a list exactly when ``page.lru`` is set; pages on the lists are allocated. A dict
    keyed by pfn keeps insertion order, so taking the coldest page and removing any page are
    both O(1), as with the kernel's list_head.
    """

    __slots__ = ("active", "inactive")

    def __init__(self) -> None:
        self.inactive: dict[int, Page] = {}
        self.active: dict[int, Page] = {}

    def add_folio(self, page: Page) -> None:
        """``lruvec_add_folio``: put ``page`` at the hot end of the list ``page.active`` says."""
        (self.active if page.active else self.inactive)[page.pfn] = page
        page.lru = True

    def del_folio(self, page: Page) -> None:
        """``lruvec_del_folio``: take ``page`` off its list."""
        (self.active if page.active else self.inactive).pop(page.pfn, None)
        page.lru = False

    def coldest(self, active: bool, n: int) -> list[Page]:
        """Up to ``n`` pages from the cold end of a list (``lru_to_folio``), not removed."""
        src = self.active if active else self.inactive
        out: list[Page] = []
        it: Iterator[Page] = iter(src.values())
        for page in it:
            if len(out) >= n:
                break
            out.append(page)
        return out

    def __len__(self) -> int:
        return len(self.inactive) + len(self.active)


def folio_add_lru(kernel: Kernel, page: Page) -> None:
    """``folio_add_lru``: a new page-cache folio goes on the inactive file list
    (``VM_BUG_ON_FOLIO(folio_test_lru(folio))``: never twice)."""
    if page.lru:
        raise AssertionError(f"folio_add_lru: {page!r} is already on an LRU list")
    page.active = False
    kernel.lruvec.add_folio(page)


def folio_activate(kernel: Kernel, page: Page) -> None:
    """``folio_activate``: move an inactive folio on the LRU to the active list."""
    if page.lru and not page.active:
        kernel.lruvec.del_folio(page)
        page.active = True
        kernel.lruvec.add_folio(page)
        kernel.counters.pgactivate += 1


def folio_mark_accessed(kernel: Kernel, page: Page) -> None:
    """``folio_mark_accessed``: the use-twice rule for accesses reclaim cannot see in a PTE.

    inactive,unreferenced -> inactive,referenced; inactive,referenced -> active,unreferenced;
    active,unreferenced -> active,referenced.
    """
    if not page.referenced:
        page.referenced = True
    elif not page.active:
        folio_activate(kernel, page)
        page.referenced = False
