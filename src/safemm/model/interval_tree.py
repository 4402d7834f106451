"""The interval tree of a file's shared mappings (``address_space->i_mmap``).

Mirrors mm/interval_tree.c (``vma_interval_tree_insert``, ``vma_interval_tree_remove``,
``vma_interval_tree_iter_first``/``iter_next`` and the ``vma_interval_tree_foreach`` loop that
``unmap_mapping_range`` and the rmap walks use), which instantiates
include/linux/interval_tree_generic.h: a search tree ordered by an interval's first page offset
whose nodes cache the largest last page offset in their subtree (``shared.rb_subtree_last``),
so that a stabbing query skips every subtree that ends before the query starts.

Simplifications relative to the kernel: the tree is a treap (:mod:`._treap`) rather than an
augmented red-black tree, and so balanced in expectation only; it holds arbitrary items by
identity, with the interval passed explicitly, instead of reading ``vm_pgoff`` and
``vma_pages`` from an embedded ``rb_node``; there is no ``vma_interval_tree_insert_after`` and
no anon_vma flavour (mm/interval_tree.c ``anon_vma_interval_tree_*`` would be another instance).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Generic, TypeVar

from typing_extensions import override

from . import _treap

__all__ = ["IntervalTree"]

T = TypeVar("T")

#: Keys are ``(first << _SEQ_BITS) + seq``: ordered by ``first``, then by insertion rank.
_SEQ_BITS = 64


class _IntervalNode(_treap.Node, Generic[T]):
    """One item with its closed interval ``[first, last]`` and its subtree's largest ``last``.

    Invariant (besides :class:`._treap.Node`'s): ``key >> _SEQ_BITS == first``, ``first <=
    last``, and ``max_last`` is the largest ``last`` in the subtree.
    """

    __slots__ = ("first", "item", "last", "max_last")

    def __init__(self, key: int, prio: int, first: int, last: int, item: T) -> None:
        """Create a detached leaf.

        Args:
            key: The search key, ``(first << _SEQ_BITS) + seq``.
            prio: The treap priority.
            first: The interval's first point.
            last: The interval's last point (inclusive).
            item: The stored item.
        """
        super().__init__(key, prio)
        self.first = first
        self.last = last
        self.item = item
        self.max_last = last

    @override
    def pull(self) -> bool:
        m = self.last
        c = self.left
        if c is not None and c.max_last > m:
            m = c.max_last
        c = self.right
        if c is not None and c.max_last > m:
            m = c.max_last
        if m == self.max_last:
            return False
        self.max_last = m
        return True


class IntervalTree(Generic[T]):
    """Items, each with a closed integer interval ``[first, last]``, found by overlap.

    The ``i_mmap`` tree of an ``address_space``, keyed by page offsets. Items are compared by
    identity; an item is in the tree at most once. Updates are O(log n) expected; an overlap
    query costs O(log n) plus O(log n) per reported item in the worst case (as for the
    kernel's interval tree), and it never visits a subtree that holds no overlapping interval
    unless that subtree lies on the search path.

    Invariant: the nodes form a treap ordered by ``(first, insertion rank)`` whose ``max_last``
    fields are correct, and ``_nodes`` maps the ``id`` of every stored item to its node
    (checked by :meth:`check_invariants`). The insertion rank of an item is fixed when it is
    inserted; :meth:`update` keeps it.

    Iterators are cursors: if the tree changes between two steps, the iteration continues
    with the first overlapping item that orders after the last item it yielded.

    Attributes:
        nodes_visited: The number of tree nodes the last (or the running) overlap query has
            examined, for proving that queries prune.
    """

    __slots__ = ("_nodes", "_rng", "_root", "_seq", "_version", "nodes_visited")

    def __init__(self, *, seed: int = 0) -> None:
        """Create an empty tree.

        Args:
            seed: The seed of the tree's private priority generator.
        """
        self._root: _IntervalNode[T] | None = None
        self._nodes: dict[int, _IntervalNode[T]] = {}
        self._seq = 0
        self._rng = random.Random(seed)
        self._version = 0
        self.nodes_visited = 0

    def __len__(self) -> int:
        """Return the number of stored items."""
        return len(self._nodes)

    def __contains__(self, item: object) -> bool:
        """Return whether ``item`` (by identity) is stored."""
        return id(item) in self._nodes

    def interval_of(self, item: T) -> tuple[int, int]:
        """Return the ``(first, last)`` interval stored with ``item``.

        Args:
            item: A stored item.

        Returns:
            The closed interval.

        Raises:
            KeyError: ``item`` is not stored.
        """
        node = self._nodes.get(id(item))
        if node is None:
            raise KeyError(item)
        return node.first, node.last

    def insert(self, item: T, first: int, last: int) -> None:
        """Add ``item`` with the interval ``[first, last]`` (``vma_interval_tree_insert``).

        Among items with the same ``first``, ``item`` orders after those already inserted.

        Args:
            item: The item; not already stored.
            first: The first point of the interval.
            last: The last point of the interval (inclusive).

        Raises:
            ValueError: ``first > last``, or ``item`` is already stored.
        """
        if first > last:
            raise ValueError(f"empty interval [{first}, {last}]")
        ident = id(item)
        if ident in self._nodes:
            raise ValueError(f"{item!r} is already in the interval tree")
        seq = self._seq
        self._seq = seq + 1
        node = _IntervalNode(
            (first << _SEQ_BITS) + seq, self._rng.getrandbits(32), first, last, item
        )
        self._root = _treap.insert(self._root, node)
        self._nodes[ident] = node
        self._version += 1

    def remove(self, item: T) -> None:
        """Remove ``item`` (``vma_interval_tree_remove``).

        Args:
            item: A stored item.

        Raises:
            KeyError: ``item`` is not stored.
        """
        node = self._nodes.pop(id(item), None)
        if node is None:
            raise KeyError(item)
        self._root, _ = _treap.erase(self._root, node.key)
        self._version += 1

    def update(self, item: T, first: int, last: int) -> None:
        """Give the stored ``item`` the interval ``[first, last]``, keeping its insertion rank.

        The kernel removes and re-inserts a VMA whose range changes (``vma_prepare`` /
        ``vma_complete``); this is the same, except that ties on ``first`` keep ordering by
        the original insertion.

        Args:
            item: A stored item.
            first: The new first point.
            last: The new last point (inclusive).

        Raises:
            KeyError: ``item`` is not stored.
            ValueError: ``first > last``; the tree is then unchanged.
        """
        node = self._nodes.get(id(item))
        if node is None:
            raise KeyError(item)
        if first > last:
            raise ValueError(f"empty interval [{first}, {last}]")
        if first == node.first:
            path = _treap.path_to(self._root, node.key)
            node.last = last
            _treap.refresh(path)
        else:
            self._root, _ = _treap.erase(self._root, node.key)
            seq = node.key - (node.first << _SEQ_BITS)
            node.key = (first << _SEQ_BITS) + seq
            node.first = first
            node.last = last
            node.max_last = last
            self._root = _treap.insert(self._root, node)
        self._version += 1

    def iter_overlapping(self, first: int, last: int) -> Iterator[T]:
        """Yield every item whose interval meets ``[first, last]``, in ascending ``first``.

        Mirrors ``vma_interval_tree_foreach``. Subtrees whose largest ``last`` is below
        ``first`` are skipped, as are nodes (with their right subtrees) that start after
        ``last``; :attr:`nodes_visited` counts the nodes examined.

        Args:
            first: The first point of the query interval.
            last: The last point of the query interval (inclusive).

        Yields:
            The overlapping items, ordered by ``first`` and then by insertion rank; none if
            ``first > last`` (the kernel's conditions would report the intervals containing
            both points; no caller asks that).
        """
        visited = 0
        if first > last:
            self.nodes_visited = 0
            return
        stack: list[_IntervalNode[T]] = []
        cur = self._root
        while cur is not None:
            visited += 1
            if cur.max_last < first:
                break
            if cur.first <= last:
                stack.append(cur)
            cur = cur.left
        version = self._version
        while stack:
            n = stack.pop()
            cur = n.right
            while cur is not None:
                visited += 1
                if cur.max_last < first:
                    break
                if cur.first <= last:
                    stack.append(cur)
                cur = cur.left
            if n.last >= first:
                self.nodes_visited = visited
                yield n.item
                if self._version != version:
                    version = self._version
                    after = n.key
                    stack = []
                    cur = self._root
                    while cur is not None:
                        visited += 1
                        if cur.max_last < first:
                            break
                        if cur.key > after:
                            if cur.first <= last:
                                stack.append(cur)
                            cur = cur.left
                        else:
                            cur = cur.right
        self.nodes_visited = visited

    def __iter__(self) -> Iterator[T]:
        """Yield every item in ascending ``first``, then insertion rank."""
        stack: list[_IntervalNode[T]] = []
        cur = self._root
        while cur is not None:
            stack.append(cur)
            cur = cur.left
        version = self._version
        while stack:
            n = stack.pop()
            cur = n.right
            while cur is not None:
                stack.append(cur)
                cur = cur.left
            yield n.item
            if self._version != version:
                version = self._version
                after = n.key
                stack = []
                cur = self._root
                while cur is not None:
                    if cur.key > after:
                        stack.append(cur)
                        cur = cur.left
                    else:
                        cur = cur.right

    def height(self) -> int:
        """Return the depth of the underlying treap (O(n); for tests and benchmarks)."""
        return _treap.height(self._root)

    def check_invariants(self) -> None:
        """Verify the class invariant in O(n), recomputing ``max_last`` without :meth:`pull`.

        Raises:
            AssertionError: The tree is corrupt.
        """
        order: list[_IntervalNode[T]] = []
        stack: list[_IntervalNode[T]] = [] if self._root is None else [self._root]
        while stack:
            n = stack.pop()
            order.append(n)
            if n.key >> _SEQ_BITS != n.first or n.first > n.last:
                raise AssertionError(f"bad key or interval for {n.item!r}")
            if self._nodes.get(id(n.item)) is not n:
                raise AssertionError(f"{n.item!r} missing from the identity map")
            for c in (n.left, n.right):
                if c is not None:
                    if c.prio > n.prio:
                        raise AssertionError(f"heap order broken below {n.item!r}")
                    stack.append(c)
        subtree_last: dict[int, int] = {}
        for n in reversed(order):
            want = n.last
            for c in (n.left, n.right):
                if c is not None:
                    want = max(want, subtree_last.pop(id(c)))
            if n.max_last != want:
                raise AssertionError(f"stale max_last at {n.item!r}")
            subtree_last[id(n)] = want
        if len(order) != len(self._nodes):
            raise AssertionError(f"{len(order)} nodes but {len(self._nodes)} items")
        keys = [n.key for n in self._inorder()]
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise AssertionError("search order broken")

    def _inorder(self) -> Iterator[_IntervalNode[T]]:
        stack: list[_IntervalNode[T]] = []
        cur = self._root
        while stack or cur is not None:
            while cur is not None:
                stack.append(cur)
                cur = cur.left
            n = stack.pop()
            yield n
            cur = n.right
