"""The per-mm VMA tree: non-overlapping address ranges with O(log n) lookup and gap search.

Mirrors the kernel's maple tree (lib/maple_tree.c) as mm uses it through the VMA iterator
(mm/vma.h ``vma_iter_*``, include/linux/mm.h ``vma_lookup``/``find_vma``/``for_each_vma_range``)
and the unmapped-area search in mm/mmap.c (``unmapped_area``, ``unmapped_area_topdown``, which
call ``vma_iter_area_lowest``/``vma_iter_area_highest``, i.e. ``mas_empty_area[_rev]``).

Like the maple tree, each tree node caches the largest gap below it, so a search for a free
range of a given length skips every subtree whose largest gap is too small and runs in
O(log n) (the node also caches the largest PMD-aligned run, so PMD-aligned searches do too).
The tree stores opaque items with explicit ranges and never looks inside an item.

Simplifications relative to the kernel:

* The tree is a binary treap (:mod:`._treap`) rather than a 16-way RCU-safe B-tree; it is
  balanced in expectation, and there is no node preallocation (``vma_iter_prealloc``) because
  nothing here can fail for lack of memory.
* Entries are keyed by their start address and gaps are implicit, rather than the maple tree's
  ranges of NULL entries.
* The gap search is exact (see :meth:`MapleTree.unmapped_area_topdown`): the kernel pads the
  requested length by ``align_mask`` so that any gap its search finds is sure to fit, and can
  therefore miss a smaller gap that happens to be well aligned; this model returns the best
  address a brute-force scan would. There is no ``align_offset`` and no ``start_gap``; stack
  guard gaps are the caller's business (it narrows the limits and retries, as the kernel does).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Generic, TypeVar

from typing_extensions import override

from . import _treap

__all__ = ["PAGE_SIZE", "PMD_SIZE", "MapleTree"]

#: The base page size; the default alignment of a gap search (equals ``mman.PAGE_SIZE``).
PAGE_SIZE = 4096
#: The PMD (transparent/hugetlb huge page) size, the one large alignment whose usable gap the
#: tree tracks exactly (equals ``mman.HPAGE_SIZE``).
PMD_SIZE = 2 * 1024 * 1024

_PMD_ROUND = PMD_SIZE - 1
_PMD_TRUNC = ~(PMD_SIZE - 1)

T = TypeVar("T")


class _RangeNode(_treap.Node, Generic[T]):
    """One stored range ``[key, end)`` with its item and the gap summary of its subtree.

    Invariant (besides :class:`._treap.Node`'s): ``lo`` is the smallest start and ``hi`` the
    largest end in the subtree; ``gap`` is the length of the longest gap between two
    consecutive ranges of the subtree (0 if none); ``agap`` is the largest ``e - s`` over those
    gaps ``[g, e)`` where ``s`` is ``g`` rounded up to a multiple of PMD_SIZE (the longest
    PMD-aligned run that fits; 0 if none is positive).
    """

    __slots__ = ("agap", "end", "gap", "hi", "item", "lo")

    def __init__(self, start: int, end: int, item: T, prio: int) -> None:
        """Create a detached leaf for ``[start, end)``.

        Args:
            start: First address of the range.
            end: Address just past the range.
            item: The stored item.
            prio: The treap priority.
        """
        super().__init__(start, prio)
        self.end = end
        self.item = item
        self.lo = start
        self.hi = end
        self.gap = 0
        self.agap = 0

    @override
    def pull(self) -> bool:
        left = self.left
        right = self.right
        if left is None:
            lo = self.key
            gap = 0
            agap = 0
        else:
            lo = left.lo
            gap = left.gap
            agap = left.agap
            g = left.hi
            d = self.key - g
            if d > gap:
                gap = d
            d = self.key - ((g + _PMD_ROUND) & _PMD_TRUNC)
            if d > agap:
                agap = d
        if right is None:
            hi = self.end
        else:
            hi = right.hi
            if right.gap > gap:
                gap = right.gap
            if right.agap > agap:
                agap = right.agap
            g = self.end
            d = right.lo - g
            if d > gap:
                gap = d
            d = right.lo - ((g + _PMD_ROUND) & _PMD_TRUNC)
            if d > agap:
                agap = d
        if lo == self.lo and hi == self.hi and gap == self.gap and agap == self.agap:
            return False
        self.lo = lo
        self.hi = hi
        self.gap = gap
        self.agap = agap
        return True


def _fit_top(gl: int, gh: int, length: int, low: int, high: int, align: int) -> int | None:
    """Return the highest aligned start of ``length`` in ``[gl, gh) & [low, high)``, or None."""
    if gl < low:
        gl = low
    if gh > high:
        gh = high
    a = gh - length
    a -= a % align
    return a if a >= gl else None


def _fit_bottom(gl: int, gh: int, length: int, low: int, high: int, align: int) -> int | None:
    """Return the lowest aligned start of ``length`` in ``[gl, gh) & [low, high)``, or None."""
    if gl < low:
        gl = low
    if gh > high:
        gh = high
    a = gl + (-gl) % align
    return a if a + length <= gh else None


class MapleTree(Generic[T]):
    """Non-overlapping half-open ranges ``[start, end)`` within ``[lo, hi)``, each with an item.

    The per-mm VMA tree (``mm->mm_mt``). Lookups and updates are O(log n) expected; iteration
    is O(log n + k) for k ranges; the gap searches are O(log n) expected (see
    :meth:`unmapped_area_topdown` for the exact bound).

    Invariant: the stored ranges are non-empty, lie within ``[lo, hi)`` and are pairwise
    disjoint; they are the in-order sequence of a treap keyed by start address whose nodes
    carry correct gap summaries (checked by :meth:`check_invariants`). Items should not be
    None, which the lookups return for "no range".

    Iterators are cursors, like a maple state: if the tree changes between two steps, the
    iteration continues with the first range that ends after the last range it yielded
    (``mas_find`` from ``mas.last + 1``), as the kernel's VMA iterator does after a write.

    Attributes:
        nodes_visited: The number of tree nodes the last gap search
            (:meth:`unmapped_area_topdown` or :meth:`unmapped_area`) examined.
    """

    __slots__ = ("_hi", "_len", "_lo", "_rng", "_root", "_version", "nodes_visited")

    def __init__(self, lo: int, hi: int, *, seed: int = 0) -> None:
        """Create an empty tree for the addresses ``[lo, hi)``.

        Args:
            lo: The lowest address a range may use.
            hi: The address just past the highest address a range may use.
            seed: The seed of the tree's private priority generator.

        Raises:
            ValueError: ``lo >= hi``.
        """
        if lo >= hi:
            raise ValueError(f"empty address space [{lo:#x}, {hi:#x})")
        self._lo = lo
        self._hi = hi
        self._root: _RangeNode[T] | None = None
        self._len = 0
        self._rng = random.Random(seed)
        self._version = 0
        self.nodes_visited = 0

    @property
    def lo(self) -> int:
        """The lowest address a range may use."""
        return self._lo

    @property
    def hi(self) -> int:
        """The address just past the highest address a range may use."""
        return self._hi

    def __len__(self) -> int:
        """Return the number of stored ranges."""
        return self._len

    def __iter__(self) -> Iterator[tuple[int, int, T]]:
        """Yield every ``(start, end, item)`` in ascending address order."""
        return self.iter_range(self._lo, self._hi)

    # -- lookups -------------------------------------------------------------------------------

    def _first_ending_after(self, addr: int) -> _RangeNode[T] | None:
        cur = self._root
        best = None
        while cur is not None:
            if cur.end > addr:
                best = cur
                cur = cur.left
            else:
                cur = cur.right
        return best

    def _first_starting_from(self, addr: int) -> _RangeNode[T] | None:
        cur = self._root
        best = None
        while cur is not None:
            if cur.key >= addr:
                best = cur
                cur = cur.left
            else:
                cur = cur.right
        return best

    def load(self, addr: int) -> T | None:
        """Return the item whose range contains ``addr`` (``vma_lookup``), or None.

        Args:
            addr: Any address.

        Returns:
            The item, or None if ``addr`` is in a gap.
        """
        cur = self._root
        while cur is not None:
            if addr < cur.key:
                cur = cur.left
            elif addr < cur.end:
                return cur.item
            else:
                cur = cur.right
        return None

    def find(self, addr: int) -> T | None:
        """Return the item of the first range that ends above ``addr`` (``find_vma``), or None.

        Args:
            addr: Any address.

        Returns:
            The item of the range containing ``addr`` or else of the next range above it.
        """
        n = self._first_ending_after(addr)
        return None if n is None else n.item

    def range_of(self, item_start: int) -> tuple[int, int]:
        """Return ``(start, end)`` of the range that starts exactly at ``item_start``.

        Args:
            item_start: The start address of a stored range.

        Returns:
            The range's bounds.

        Raises:
            KeyError: No range starts at ``item_start``.
        """
        cur = self._root
        while cur is not None:
            k = cur.key
            if item_start == k:
                return k, cur.end
            cur = cur.left if item_start < k else cur.right
        raise KeyError(item_start)

    def find_intersection(self, start: int, end: int) -> T | None:
        """Return the item of the lowest range intersecting ``[start, end)``, or None.

        Mirrors ``find_vma_intersection``. An empty query range intersects nothing.

        Args:
            start: First address of the query range.
            end: Address just past the query range.

        Returns:
            The item, or None.
        """
        n = self._first_ending_after(start)
        if n is None or n.key >= end or start >= end:
            return None
        return n.item

    def prev(self, addr: int) -> tuple[int, int, T] | None:
        """Return the last range that ends at or below ``addr`` (``vma_prev`` from ``addr``).

        Args:
            addr: Any address.

        Returns:
            ``(start, end, item)``, or None if no range ends at or below ``addr``.
        """
        cur = self._root
        best = None
        while cur is not None:
            if cur.end <= addr:
                best = cur
                cur = cur.right
            else:
                cur = cur.left
        return None if best is None else (best.key, best.end, best.item)

    def next_after(self, addr: int) -> tuple[int, int, T] | None:
        """Return the first range that starts at or above ``addr`` (``vma_next`` from ``addr``).

        Args:
            addr: Any address.

        Returns:
            ``(start, end, item)``, or None if no range starts at or above ``addr``.
        """
        n = self._first_starting_from(addr)
        return None if n is None else (n.key, n.end, n.item)

    def _seek(self, addr: int) -> list[_RangeNode[T]]:
        """Return an in-order stack whose top is the first range ending above ``addr``."""
        stack: list[_RangeNode[T]] = []
        cur = self._root
        while cur is not None:
            if cur.end > addr:
                stack.append(cur)
                cur = cur.left
            else:
                cur = cur.right
        return stack

    def iter_range(self, start: int, end: int) -> Iterator[tuple[int, int, T]]:
        """Yield every range intersecting ``[start, end)`` in ascending order.

        Mirrors ``for_each_vma_range``. O(log n) to start and O(1) amortized per range while
        the tree is unchanged; after a change it re-walks from the last yielded end.

        Args:
            start: First address of the query range.
            end: Address just past the query range.

        Yields:
            ``(start, end, item)`` for each intersecting range (none if ``start >= end``).
        """
        if start >= end:
            return
        stack = self._seek(start)
        version = self._version
        while stack:
            n = stack.pop()
            s = n.key
            if s >= end:
                return
            e = n.end
            cur = n.right
            while cur is not None:
                stack.append(cur)
                cur = cur.left
            yield s, e, n.item
            if self._version != version:
                version = self._version
                stack = self._seek(e)

    # -- updates -------------------------------------------------------------------------------

    def _check_bounds(self, start: int, end: int) -> None:
        if not self._lo <= start < end <= self._hi:
            raise ValueError(
                f"range [{start:#x}, {end:#x}) is empty or outside [{self._lo:#x}, {self._hi:#x})"
            )

    def store(self, start: int, end: int, item: T) -> None:
        """Insert ``item`` over the free range ``[start, end)`` (``vma_iter_store`` of a new VMA).

        Args:
            start: First address of the range.
            end: Address just past the range.
            item: The item to store.

        Raises:
            ValueError: The range is empty, outside the tree's bounds or overlaps a stored range.
        """
        self._check_bounds(start, end)
        n = self._first_ending_after(start)
        if n is not None and n.key < end:
            raise ValueError(
                f"range [{start:#x}, {end:#x}) overlaps stored [{n.key:#x}, {n.end:#x})"
            )
        node = _RangeNode(start, end, item, self._rng.getrandbits(32))
        self._root = _treap.insert(self._root, node)
        self._len += 1
        self._version += 1

    def erase(self, start: int) -> T:
        """Remove the range that starts exactly at ``start`` (``vma_iter_clear``).

        Args:
            start: The start address of a stored range.

        Returns:
            The removed item.

        Raises:
            KeyError: No range starts at ``start``.
        """
        self._root, node = _treap.erase(self._root, start)
        self._len -= 1
        self._version += 1
        return node.item

    def replace(self, start: int, item: T) -> T:
        """Put ``item`` in place of the item of the range starting at ``start``.

        Args:
            start: The start address of a stored range.
            item: The new item.

        Returns:
            The previous item.

        Raises:
            KeyError: No range starts at ``start``.
        """
        node = _treap.path_to(self._root, start)[-1]
        old = node.item
        node.item = item
        return old

    def set_range(self, old_start: int, new_start: int, new_end: int) -> None:
        """Move the range starting at ``old_start`` to ``[new_start, new_end)``, keeping its item.

        Used to split, expand, shrink or move a VMA (``vma_expand``, ``vma_shrink``,
        ``__split_vma``, ``vma_iter_store`` of an adjusted VMA).

        Args:
            old_start: The start address of a stored range.
            new_start: The new first address.
            new_end: The new end address.

        Raises:
            KeyError: No range starts at ``old_start``.
            ValueError: The new range is empty, outside the bounds or overlaps another range;
                the tree is then unchanged.
        """
        path = _treap.path_to(self._root, old_start)
        node = path[-1]
        self._check_bounds(new_start, new_end)
        other = self._first_ending_after(new_start)
        if other is node:
            other = self._first_ending_after(node.end)
        if other is not None and other.key < new_end:
            raise ValueError(
                f"range [{new_start:#x}, {new_end:#x}) overlaps stored "
                f"[{other.key:#x}, {other.end:#x})"
            )
        # The new range overlaps nothing else, so the node keeps its place in the order unless
        # some other range lies between its old and its new start.
        if new_start < old_start:
            in_place = self._first_starting_from(new_start) is node
        elif new_start > old_start:
            nxt = self._first_starting_from(old_start + 1)
            in_place = nxt is None or nxt.key > new_start
        else:
            in_place = True
        if in_place:
            node.key = new_start
            node.end = new_end
            _treap.refresh(path)
        else:
            self._root, node = _treap.erase(self._root, old_start)
            node.key = new_start
            node.end = new_end
            self._root = _treap.insert(self._root, node)
        self._version += 1

    # -- gap search ----------------------------------------------------------------------------

    def _check_search(self, length: int, align: int) -> None:
        if length <= 0:
            raise ValueError(f"length {length} is not positive")
        if align <= 0:
            raise ValueError(f"alignment {align} is not positive")

    def unmapped_area_topdown(
        self, length: int, low_limit: int, high_limit: int, align: int = PAGE_SIZE
    ) -> int | None:
        """Return the highest free, aligned start for ``length`` bytes between the limits.

        Mirrors mm/mmap.c ``unmapped_area_topdown`` (``vm_unmapped_area`` with
        ``VM_UNMAPPED_AREA_TOPDOWN``): the result is the largest ``a`` with ``a % align == 0``,
        ``max(low_limit, lo) <= a`` and ``a + length <= min(high_limit, hi)`` such that
        ``[a, a + length)`` intersects no stored range.

        The search walks the tree from the top, skipping each subtree whose largest gap is
        shorter than ``length`` (and, when ``align`` is a multiple of PMD_SIZE, whose largest
        PMD-aligned run is shorter than ``length``), and checks every remaining gap exactly.
        The kernel instead searches for ``length + align - PAGE_SIZE`` so that any gap found is
        sure to fit; that can skip a higher gap that fits only because it happens to be aligned.
        Pruning with the unpadded length is a necessary condition, so no fitting gap is skipped,
        and the first gap that passes the exact check is the answer.

        Cost: O(log n) expected when every gap at least ``length`` long is usable, which holds
        for ``align`` 1 and PMD_SIZE, and for ``align`` dividing PAGE_SIZE when the stored
        ranges are page-aligned. For other alignments each gap above the answer that is long
        enough but cannot hold an aligned start (a gap shorter than
        ``length + align - PAGE_SIZE``) costs an extra O(log n).

        Args:
            length: The number of bytes wanted; positive.
            low_limit: The lowest acceptable start.
            high_limit: The highest acceptable end.
            align: The required alignment of the start; positive.

        Returns:
            The start address, or None if no such range exists (``-ENOMEM``).

        Raises:
            ValueError: ``length`` or ``align`` is not positive.
        """
        self._check_search(length, align)
        low = low_limit if low_limit > self._lo else self._lo
        high = high_limit if high_limit < self._hi else self._hi
        self.nodes_visited = 0
        if high - low < length:
            return None
        root = self._root
        if root is None:
            return _fit_top(self._lo, self._hi, length, low, high, align)
        a = _fit_top(root.hi, self._hi, length, low, high, align)
        if a is None:
            a = self._search_top(root, length, low, high, align, align % PMD_SIZE == 0)
            if a is None:
                a = _fit_top(self._lo, root.lo, length, low, high, align)
        return a

    def _search_top(
        self, n: _RangeNode[T], length: int, low: int, high: int, align: int, pmd: bool
    ) -> int | None:
        """Return the highest fit among the gaps between the ranges of ``n``'s subtree.

        Recursive; the depth is at most the treap's height, O(log n).
        """
        self.nodes_visited += 1
        if n.gap < length or (pmd and n.agap < length):
            return None
        lo = n.lo if n.lo > low else low
        hi = n.hi if n.hi < high else high
        if hi - lo < length:
            return None
        right = n.right
        if right is not None:
            a = self._search_top(right, length, low, high, align, pmd)
            if a is None:
                a = _fit_top(n.end, right.lo, length, low, high, align)
            if a is not None:
                return a
        left = n.left
        if left is not None:
            a = _fit_top(left.hi, n.key, length, low, high, align)
            if a is None:
                a = self._search_top(left, length, low, high, align, pmd)
            return a
        return None

    def unmapped_area(
        self, length: int, low_limit: int, high_limit: int, align: int = PAGE_SIZE
    ) -> int | None:
        """Return the lowest free, aligned start for ``length`` bytes between the limits.

        Mirrors mm/mmap.c ``unmapped_area`` (bottom-up ``vm_unmapped_area``); the same as
        :meth:`unmapped_area_topdown` but returning the smallest such ``a``, at the same cost.

        Args:
            length: The number of bytes wanted; positive.
            low_limit: The lowest acceptable start.
            high_limit: The highest acceptable end.
            align: The required alignment of the start; positive.

        Returns:
            The start address, or None if no such range exists (``-ENOMEM``).

        Raises:
            ValueError: ``length`` or ``align`` is not positive.
        """
        self._check_search(length, align)
        low = low_limit if low_limit > self._lo else self._lo
        high = high_limit if high_limit < self._hi else self._hi
        self.nodes_visited = 0
        if high - low < length:
            return None
        root = self._root
        if root is None:
            return _fit_bottom(self._lo, self._hi, length, low, high, align)
        a = _fit_bottom(self._lo, root.lo, length, low, high, align)
        if a is None:
            a = self._search_bottom(root, length, low, high, align, align % PMD_SIZE == 0)
            if a is None:
                a = _fit_bottom(root.hi, self._hi, length, low, high, align)
        return a

    def _search_bottom(
        self, n: _RangeNode[T], length: int, low: int, high: int, align: int, pmd: bool
    ) -> int | None:
        """Return the lowest fit among the gaps between the ranges of ``n``'s subtree.

        Recursive; the depth is at most the treap's height, O(log n).
        """
        self.nodes_visited += 1
        if n.gap < length or (pmd and n.agap < length):
            return None
        lo = n.lo if n.lo > low else low
        hi = n.hi if n.hi < high else high
        if hi - lo < length:
            return None
        left = n.left
        if left is not None:
            a = self._search_bottom(left, length, low, high, align, pmd)
            if a is None:
                a = _fit_bottom(left.hi, n.key, length, low, high, align)
            if a is not None:
                return a
        right = n.right
        if right is not None:
            a = _fit_bottom(n.end, right.lo, length, low, high, align)
            if a is None:
                a = self._search_bottom(right, length, low, high, align, pmd)
            return a
        return None

    # -- debugging -----------------------------------------------------------------------------

    def height(self) -> int:
        """Return the depth of the underlying treap (O(n); for tests and benchmarks)."""
        return _treap.height(self._root)

    def check_invariants(self) -> None:
        """Verify the class invariant in O(n), recomputing the summaries without :meth:`pull`.

        Raises:
            AssertionError: The tree is corrupt.
        """
        count = 0
        prev_end = self._lo
        for s, e, _ in self:
            count += 1
            if not prev_end <= s < e <= self._hi:
                raise AssertionError(f"range [{s:#x}, {e:#x}) out of order or bounds")
            prev_end = e
        if count != self._len:
            raise AssertionError(f"length {self._len} but {count} ranges")
        # Pre-order, so that reversed it visits children before their parents.
        order: list[_RangeNode[T]] = []
        stack: list[_RangeNode[T]] = [] if self._root is None else [self._root]
        while stack:
            n = stack.pop()
            order.append(n)
            for c in (n.left, n.right):
                if c is not None:
                    if c.prio > n.prio:
                        raise AssertionError(f"heap order broken below {n.key:#x}")
                    stack.append(c)
        # Per subtree: (lowest start, highest end, gaps between its consecutive ranges).
        summary: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}
        for n in reversed(order):
            lo, hi, gaps = n.key, n.end, []
            if n.left is not None:
                lo, left_hi, left_gaps = summary.pop(id(n.left))
                gaps += [*left_gaps, (left_hi, n.key)]
            if n.right is not None:
                right_lo, hi, right_gaps = summary.pop(id(n.right))
                gaps += [(n.end, right_lo), *right_gaps]
            summary[id(n)] = (lo, hi, gaps if len(gaps) <= 2 else _top_two(gaps))
            want_gap = max((e - g for g, e in gaps), default=0)
            want_agap = max((e - -(-g // PMD_SIZE) * PMD_SIZE for g, e in gaps), default=0)
            if (n.lo, n.hi, n.gap, n.agap) != (lo, hi, want_gap, max(want_agap, 0)):
                raise AssertionError(f"stale gap summary at {n.key:#x}")


def _top_two(gaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Keep the gaps that can still be a subtree maximum: the longest, and the longest run."""
    longest = max(gaps, key=lambda ge: ge[1] - ge[0])
    aligned = max(gaps, key=lambda ge: ge[1] - -(-ge[0] // PMD_SIZE) * PMD_SIZE)
    return [longest, aligned]
