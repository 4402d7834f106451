# mypy: disallow-any-decorated=False
# (mypy.ini's [mypy-tests.*] setting, which does not reach this module: without __init__.py
# files mypy names it after the file alone. Hypothesis's rule decorators return
# Callable[..., None].)
"""Tests for :mod:`safemm.model.interval_tree`: unit cases, a brute-force-checked state machine,
and proofs that overlap queries prune."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from typing_extensions import override

from safemm.model.interval_tree import IntervalTree


class Item:
    """A stand-in for a VMA: compared by identity, so equal names are different items."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @override
    def __repr__(self) -> str:
        return f"Item({self.name!r})"


def names(items: Iterable[Item]) -> list[str]:
    """Return the names of some Items."""
    return [it.name for it in items]


# -- unit tests ------------------------------------------------------------------------------


def test_insert_query_remove() -> None:
    t = IntervalTree[Item]()
    a, b, c, d = Item("a"), Item("b"), Item("c"), Item("d")
    t.insert(a, 0, 9)
    t.insert(b, 5, 5)
    t.insert(c, 10, 20)
    t.insert(d, 0, 0)
    assert len(t) == 4
    assert a in t
    assert Item("a") not in t
    assert names(list(t)) == ["a", "d", "b", "c"]  # by first, ties by insertion
    assert names(list(t.iter_overlapping(5, 10))) == ["a", "b", "c"]
    assert names(list(t.iter_overlapping(0, 0))) == ["a", "d"]
    assert names(list(t.iter_overlapping(21, 30))) == []
    assert names(list(t.iter_overlapping(-5, -1))) == []
    assert names(list(t.iter_overlapping(6, 4))) == []  # an empty query meets nothing
    assert t.interval_of(c) == (10, 20)
    t.remove(a)
    assert a not in t
    assert names(list(t.iter_overlapping(0, 100))) == ["d", "b", "c"]
    with pytest.raises(KeyError):
        t.remove(a)
    with pytest.raises(KeyError):
        t.interval_of(a)
    t.check_invariants()


def test_insert_rejects_duplicates_and_empty_intervals() -> None:
    t = IntervalTree[Item]()
    a = Item("a")
    t.insert(a, 1, 2)
    with pytest.raises(ValueError, match="already"):
        t.insert(a, 3, 4)
    with pytest.raises(ValueError, match="empty"):
        t.insert(Item("b"), 3, 2)
    with pytest.raises(ValueError, match="empty"):
        t.update(a, 3, 2)
    with pytest.raises(KeyError):
        t.update(Item("c"), 0, 1)
    assert t.interval_of(a) == (1, 2)
    assert len(t) == 1
    t.check_invariants()


def test_update_keeps_insertion_rank() -> None:
    t = IntervalTree[Item]()
    a, b, c = Item("a"), Item("b"), Item("c")
    t.insert(a, 5, 6)
    t.insert(b, 1, 1)
    t.insert(c, 1, 3)
    assert names(list(t)) == ["b", "c", "a"]
    t.update(a, 1, 2)  # a was inserted first, so it now leads the ties on first == 1
    assert names(list(t)) == ["a", "b", "c"]
    t.update(b, 1, 50)  # same first: updated in place
    assert names(list(t.iter_overlapping(40, 60))) == ["b"]
    t.update(c, 0, 0)
    assert names(list(t)) == ["c", "a", "b"]
    t.check_invariants()


def test_iteration_continues_after_writes() -> None:
    t = IntervalTree[Item]()
    items = [Item(str(i)) for i in range(10)]
    for i, it in enumerate(items):
        t.insert(it, i, i + 1)
    late = Item("late")
    seen = []
    for it in t.iter_overlapping(2, 7):
        seen.append(it.name)
        if it.name == "3":
            t.remove(items[4])  # not yet visited: skipped
            t.insert(late, 6, 6)  # orders after "6" (later insertion): visited
            t.insert(Item("early"), 0, 2)  # orders before the cursor: not visited
        if it.name == "5":
            t.remove(items[5])  # the current one: harmless
    assert seen == ["1", "2", "3", "5", "6", "late", "7"]
    seen = []
    for it in t:
        seen.append(it.name)
        if it.name == "0":
            t.remove(items[1])
    assert seen == ["0", "early", "2", "3", "6", "late", "7", "8", "9"]
    t.check_invariants()


def test_same_seed_same_shape() -> None:
    def build() -> IntervalTree[Item]:
        t = IntervalTree[Item](seed=7)
        for i in range(500):
            t.insert(Item(str(i)), (i * 7919) % 500, (i * 7919) % 500 + i % 9)
        return t

    a, b = build(), build()
    assert a.height() == b.height()
    list(a.iter_overlapping(100, 120))
    list(b.iter_overlapping(100, 120))
    assert a.nodes_visited == b.nodes_visited


# -- pruning ---------------------------------------------------------------------------------


def test_query_prunes_non_overlapping_subtrees() -> None:
    # 1000 disjoint intervals [10 i, 10 i + 5], inserted in random order; 10 of them overlap.
    t = IntervalTree[Item](seed=1)
    order = list(range(1000))
    random.Random(2).shuffle(order)
    for i in order:
        t.insert(Item(str(i)), 10 * i, 10 * i + 5)
    found = list(t.iter_overlapping(5000, 5095))
    assert names(found) == [str(i) for i in range(500, 510)]
    assert t.nodes_visited < 200
    # A query between intervals visits about one path.
    assert list(t.iter_overlapping(5006, 5009)) == []
    assert t.nodes_visited < 60
    # Sorted insertion (the worst case for an unbalanced tree) makes no difference.
    s = IntervalTree[Item]()
    for i in range(1000):
        s.insert(Item(str(i)), 10 * i, 10 * i + 5)
    assert len(list(s.iter_overlapping(5000, 5095))) == 10
    assert s.nodes_visited < 200


def test_query_prunes_among_long_intervals() -> None:
    # A file mapped 990 times in small windows, plus 10 whole-file mappings: a query at the
    # end of the file must not visit the small windows.
    t = IntervalTree[Item](seed=3)
    rng = random.Random(4)
    whole = []
    for i in range(1000):
        if i % 100 == 0:
            it = Item(f"whole{i}")
            whole.append(it)
            t.insert(it, 0, 100_000)
        else:
            first = rng.randrange(0, 50_000)
            t.insert(Item(str(i)), first, first + rng.randrange(0, 16))
    found = list(t.iter_overlapping(90_000, 90_010))
    assert {id(x) for x in found} == {id(x) for x in whole}
    assert t.nodes_visited < 200


def test_scale_stays_shallow() -> None:
    t = IntervalTree[Item]()
    for i in range(70_000):
        t.insert(Item(str(i)), i, i)
    assert t.height() < 100
    assert names(list(t.iter_overlapping(35_000, 35_002))) == ["35000", "35001", "35002"]
    assert t.nodes_visited < 200


# -- state machine against a list ------------------------------------------------------------

points = st.integers(-3, 60)
spans = st.one_of(st.integers(0, 4), st.integers(0, 70))


class IntervalMachine(RuleBasedStateMachine):
    """Drives an IntervalTree and a list ``(rank, item, first, last)`` with the same operations."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = IntervalTree[Item]()
        self.ref: list[tuple[int, Item, int, int]] = []
        self.rank = 0

    @initialize(seed=st.integers(0, 2**32))
    def reseed(self, seed: int) -> None:
        self.tree = IntervalTree[Item](seed=seed)

    def expected(self, first: int, last: int) -> list[Item]:
        ordered = sorted(self.ref, key=lambda r: (r[2], r[0]))
        return [r[1] for r in ordered if r[2] <= last and first <= r[3]]

    @rule(first=points, span=spans)
    def insert(self, first: int, span: int) -> None:
        item = Item(str(self.rank))
        self.tree.insert(item, first, first + span)
        self.ref.append((self.rank, item, first, first + span))
        self.rank += 1

    @precondition(lambda self: bool(self.ref))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.ref) - 1))
        _, item, _, _ = self.ref.pop(i)
        self.tree.remove(item)
        with pytest.raises(KeyError):
            self.tree.remove(item)

    @precondition(lambda self: bool(self.ref))
    @rule(data=st.data(), first=points, span=spans, same_first=st.booleans())
    def update(self, data: st.DataObject, first: int, span: int, same_first: bool) -> None:
        i = data.draw(st.integers(0, len(self.ref) - 1))
        rank, item, old_first, _ = self.ref[i]
        if same_first:
            first = old_first
        self.tree.update(item, first, first + span)
        self.ref[i] = (rank, item, first, first + span)

    @precondition(lambda self: bool(self.ref))
    @rule(data=st.data())
    def reinsert_rejected(self, data: st.DataObject) -> None:
        _, item, first, last = data.draw(st.sampled_from(self.ref))
        with pytest.raises(ValueError):
            self.tree.insert(item, first, last)

    @rule(first=points, span=spans)
    def query(self, first: int, span: int) -> None:
        want = self.expected(first, first + span)
        got = list(self.tree.iter_overlapping(first, first + span))
        assert [id(x) for x in got] == [id(x) for x in want]
        assert self.tree.nodes_visited <= len(self.ref)

    @rule(point=points)
    def stab(self, point: int) -> None:
        want = self.expected(point, point)
        assert [id(x) for x in self.tree.iter_overlapping(point, point)] == [id(x) for x in want]

    @invariant()
    def consistent(self) -> None:
        self.tree.check_invariants()
        assert len(self.tree) == len(self.ref)
        ordered = sorted(self.ref, key=lambda r: (r[2], r[0]))
        assert [id(x) for x in self.tree] == [id(r[1]) for r in ordered]
        for _, item, first, last in self.ref:
            assert item in self.tree
            assert self.tree.interval_of(item) == (first, last)


TestIntervalMachine = IntervalMachine.TestCase
