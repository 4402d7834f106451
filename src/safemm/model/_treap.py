"""The augmented treap shared by :mod:`.maple_tree` and :mod:`.interval_tree`.

The kernel keeps a process's VMAs in a maple tree (lib/maple_tree.c) and a file's shared
mappings in an augmented red-black tree (lib/rbtree.c, include/linux/rbtree_augmented.h, used
by include/linux/interval_tree_generic.h). Both are balanced search trees whose nodes cache a
summary of their subtree (the maple tree's per-slot gap maxima, the rbtree's
``rb_subtree_last``) so that a search can skip a whole subtree with one comparison. This module
provides that one mechanism, a treap (a binary search tree that is a max-heap on random
priorities, so its expected depth is O(log n)) whose nodes recompute their subtree summary in
:meth:`Node.pull` whenever a child changes.

Simplifications relative to the kernel: a treap is balanced in expectation, not in the worst
case (the kernel's trees guarantee their height); nodes are binary rather than the maple tree's
16-way B-tree nodes; there is no RCU-safe publication and no node preallocation.

Every operation here is iterative and touches O(depth) nodes, so the Python stack never grows
with the number of entries. Priorities come from a caller-owned :class:`random.Random`, so a
tree's shape is a deterministic function of its seed and its operation history.
"""

from __future__ import annotations

from typing import Self, TypeVar

__all__ = ["Node", "erase", "height", "insert", "merge", "path_to", "refresh", "split"]


class Node:
    """A treap node: an integer search key, a heap priority and two children.

    Invariant: every key in ``left`` is smaller than ``key``, every key in ``right`` is larger,
    ``prio`` is at least the priority of each child, and the subclass's aggregate fields equal
    what :meth:`pull` computes from the children.
    """

    __slots__ = ("key", "left", "prio", "right")

    key: int
    prio: int
    left: Self | None
    right: Self | None

    def __init__(self, key: int, prio: int) -> None:
        """Create a detached leaf.

        Args:
            key: The search key, unique within a tree.
            prio: The heap priority (larger priorities sit nearer the root).
        """
        self.key = key
        self.prio = prio
        self.left = None
        self.right = None

    def pull(self) -> bool:
        """Recompute this node's subtree aggregates from its own fields and its children.

        Called bottom-up on the nodes whose subtree changed; the children are already up to
        date. An aggregate may depend only on the node's own fields and its children's
        aggregates, so that when a node's aggregates come out unchanged its ancestors' do too
        and the walk up can stop (as ``RB_DECLARE_CALLBACKS``' propagate callback does).

        Returns:
            Whether any aggregate changed. The base node has none.
        """
        return False


N = TypeVar("N", bound=Node)


def split(t: N | None, key: int) -> tuple[N | None, N | None]:
    """Split a treap into the nodes with keys below ``key`` and the rest.

    Args:
        t: The root of the treap to split; its nodes are reused.
        key: The split point.

    Returns:
        The roots of the treap of keys ``< key`` and of the treap of keys ``>= key``.
    """
    lroot: N | None = None
    rroot: N | None = None
    ltail: N | None = None
    rtail: N | None = None
    lspine: list[N] = []
    rspine: list[N] = []
    while t is not None:
        if t.key < key:
            if ltail is None:
                lroot = t
            else:
                ltail.right = t
            ltail = t
            lspine.append(t)
            t = t.right
        else:
            if rtail is None:
                rroot = t
            else:
                rtail.left = t
            rtail = t
            rspine.append(t)
            t = t.left
    if ltail is not None:
        ltail.right = None
    if rtail is not None:
        rtail.left = None
    for n in reversed(lspine):
        n.pull()
    for n in reversed(rspine):
        n.pull()
    return lroot, rroot


def merge(a: N | None, b: N | None) -> N | None:
    """Join two treaps where every key of ``a`` is below every key of ``b``.

    Args:
        a: The root of the lower treap.
        b: The root of the upper treap.

    Returns:
        The root of the joined treap.
    """
    if a is None:
        return b
    if b is None:
        return a
    spine: list[N] = []
    root: N | None = None
    # The node whose child pointer is still to be filled, and on which side.
    tail: N | None = None
    tail_right = False
    while a is not None and b is not None:
        if a.prio >= b.prio:
            nxt = a
            a = a.right
            go_right = True
        else:
            nxt = b
            b = b.left
            go_right = False
        if tail is None:
            root = nxt
        elif tail_right:
            tail.right = nxt
        else:
            tail.left = nxt
        tail = nxt
        tail_right = go_right
        spine.append(nxt)
    rest = a if a is not None else b
    if tail is not None:
        if tail_right:
            tail.right = rest
        else:
            tail.left = rest
    for n in reversed(spine):
        n.pull()
    return root


def insert(root: N | None, node: N) -> N:
    """Insert a detached leaf whose key is not yet in the treap.

    Args:
        root: The treap's root.
        node: The new node; its children must be None.

    Returns:
        The new root.
    """
    key = node.key
    prio = node.prio
    path: list[N] = []
    cur = root
    while cur is not None and cur.prio >= prio:
        path.append(cur)
        cur = cur.left if key < cur.key else cur.right
    node.left, node.right = split(cur, key)
    node.pull()
    if not path:
        return node
    parent = path[-1]
    if key < parent.key:
        parent.left = node
    else:
        parent.right = node
    for n in reversed(path):
        if not n.pull():
            break
    return path[0]


def path_to(root: N | None, key: int) -> list[N]:
    """Return the nodes from the root down to the node with ``key``.

    Args:
        root: The treap's root.
        key: The key to find.

    Returns:
        The path, root first and the node with ``key`` last.

    Raises:
        KeyError: No node has ``key``.
    """
    path: list[N] = []
    cur = root
    while cur is not None:
        path.append(cur)
        k = cur.key
        if key == k:
            return path
        cur = cur.left if key < k else cur.right
    raise KeyError(key)


def refresh(path: list[N]) -> None:
    """Re-pull the nodes on a root-to-node path, deepest first, while their aggregates change.

    Call after changing the fields of ``path[-1]`` in a way that keeps the search order.

    Args:
        path: A path as returned by :func:`path_to`.
    """
    for n in reversed(path):
        if not n.pull():
            break


def erase(root: N | None, key: int) -> tuple[N | None, N]:
    """Remove the node with ``key``.

    Args:
        root: The treap's root.
        key: The key to remove.

    Returns:
        The new root and the removed node (detached: its children are None).

    Raises:
        KeyError: No node has ``key``.
    """
    path = path_to(root, key)
    node = path.pop()
    sub = merge(node.left, node.right)
    node.left = None
    node.right = None
    if not path:
        return sub, node
    parent = path[-1]
    if parent.left is node:
        parent.left = sub
    else:
        parent.right = sub
    for n in reversed(path):
        if not n.pull():
            break
    return path[0], node


def height(root: Node | None) -> int:
    """Return the number of nodes on the longest root-to-leaf path (0 for an empty treap).

    Args:
        root: The treap's root.

    Returns:
        The height, computed iteratively in O(n).
    """
    best = 0
    stack: list[tuple[Node, int]] = [] if root is None else [(root, 1)]
    while stack:
        n, d = stack.pop()
        if d > best:
            best = d
        if n.left is not None:
            stack.append((n.left, d + 1))
        if n.right is not None:
            stack.append((n.right, d + 1))
    return best
