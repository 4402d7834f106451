"""Page tables: the per-mm map from virtual page to frame.

Mirrors the x86-64 page-table entries as the generic mm code sees them (include/linux/pgtable.h,
arch/x86/include/asm/pgtable.h): a PTE is none, or present with a pfn and the write, dirty,
young, special and PROT_NONE bits; a PMD is none, a table of PTEs, or a huge leaf (hugetlb).

Simplifications: two levels (PMD tables of PTEs) instead of five; a PTE table is freed as soon
as it becomes empty instead of in ``free_pgtables``; page tables take no page frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sortedcontainers import SortedDict
from typing_extensions import override

from .mman import PAGE_SHIFT

if TYPE_CHECKING:
    from .page_alloc import HugePage, Page

__all__ = ["HugePmd", "PageTables", "Pte"]

#: PTEs per PTE table: one table covers 2 MiB.
PTRS_PER_PTE = 512
PMD_SHIFT = 9  # in pages


class Pte:
    """A present PTE.

    Invariant: ``page`` is the struct page for ``pfn`` when the PTE holds a reference (a
    "normal" mapping), and None for a special PTE (``pte_special``: zero page or raw pfn), in
    which case ``special`` is True.
    """

    __slots__ = ("dirty", "page", "pfn", "protnone", "special", "write", "young")

    def __init__(
        self,
        pfn: int,
        page: Page | None,
        *,
        write: bool,
        special: bool,
        dirty: bool = False,
        protnone: bool = False,
    ) -> None:
        self.pfn = pfn
        self.page = page
        self.write = write
        self.dirty = dirty
        self.young = True
        self.special = special
        self.protnone = protnone

    @override
    def __repr__(self) -> str:
        bits = "".join(
            c
            for c, on in (
                ("w", self.write),
                ("d", self.dirty),
                ("s", self.special),
                ("n", self.protnone),
            )
            if on
        )
        return f"<Pte pfn={self.pfn:#x} {bits}>"


class HugePmd:
    """A huge PMD leaf mapping a 2 MiB hugetlb page."""

    __slots__ = ("page", "write")

    def __init__(self, page: HugePage, write: bool) -> None:
        self.page = page
        self.write = write


class PageTables:
    """An mm's page tables, keyed by virtual page number (``addr >> PAGE_SHIFT``).

    Invariant: every table in ``pmds`` is non-empty; ``huge`` holds the hugetlb PMD leaves.
    A PMD index in both means a 4K table was installed over a huge page (H3c).
    """

    __slots__ = ("huge", "nr_ptes", "pmds")

    def __init__(self) -> None:
        #: PMD index → its PTE table; sorted, so a range walk visits only populated tables.
        self.pmds: SortedDict[int, dict[int, Pte]] = SortedDict()
        self.huge: dict[int, HugePmd] = {}
        self.nr_ptes = 0

    def lookup(self, vpn: int) -> Pte | None:
        """The PTE for virtual page ``vpn``, or None (``pte_none``)."""
        tbl = self.pmds.get(vpn >> PMD_SHIFT)
        return None if tbl is None else tbl.get(vpn)

    def set(self, vpn: int, pte: Pte) -> None:
        """``set_pte_at`` (allocating the PTE table if needed)."""
        idx = vpn >> PMD_SHIFT
        tbl = self.pmds.get(idx)
        if tbl is None:
            tbl = self.pmds[idx] = {}
        if vpn not in tbl:
            self.nr_ptes += 1
        tbl[vpn] = pte

    def clear(self, vpn: int) -> Pte | None:
        """``ptep_get_and_clear``: remove and return the PTE."""
        idx = vpn >> PMD_SHIFT
        tbl = self.pmds.get(idx)
        if tbl is None:
            return None
        pte = tbl.pop(vpn, None)
        if pte is not None:
            self.nr_ptes -= 1
            if not tbl:
                del self.pmds[idx]
        return pte

    def range(self, start_vpn: int, end_vpn: int) -> list[tuple[int, Pte]]:
        """All present PTEs in ``[start_vpn, end_vpn)``, ascending.

        Cost grows with the populated tables in the range (O(log n + k)), not with its size,
        like the kernel's walk, which skips empty PMDs.
        """
        if start_vpn >= end_vpn or not self.pmds:
            return []
        first, last = start_vpn >> PMD_SHIFT, (end_vpn - 1) >> PMD_SHIFT
        pmds = self.pmds
        out: list[tuple[int, Pte]] = []
        for i in list(pmds.irange(first, last)):
            tbl = pmds[i]
            if first < i < last:
                out.extend(sorted(tbl.items()))
                continue
            lo, hi = max(start_vpn, i << PMD_SHIFT), min(end_vpn, (i + 1) << PMD_SHIFT)
            if hi - lo < len(tbl):
                # A few pages of a fuller table (a one-page zap): probe them directly.
                out.extend((v, tbl[v]) for v in range(lo, hi) if v in tbl)
            else:
                out.extend(sorted((v, p) for v, p in tbl.items() if lo <= v < hi))
        return out

    def huge_range(self, start_vpn: int, end_vpn: int) -> list[tuple[int, HugePmd]]:
        """Huge PMD leaves whose 2 MiB range starts in ``[start_vpn, end_vpn)``."""
        first, last = start_vpn >> PMD_SHIFT, (end_vpn - 1) >> PMD_SHIFT
        return sorted((i, h) for i, h in self.huge.items() if first <= i <= last)


def vpn(addr: int) -> int:
    """Virtual page number of ``addr``."""
    return addr >> PAGE_SHIFT
