# mypy: disallow-any-decorated=False
# (mypy.ini's [mypy-tests.*] setting, which does not reach this module: without __init__.py
# files mypy names it after the file alone. Hypothesis's rule decorators return
# Callable[..., None].)
"""Tests for :mod:`safemm.model.maple_tree`: unit cases, a brute-force-checked state machine,
and proofs that lookups and gap searches stay logarithmic at ``max_map_count`` entries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from safemm.model.maple_tree import PAGE_SIZE, PMD_SIZE, MapleTree

P = PAGE_SIZE
MAX_MAP_COUNT = 65530


# -- brute-force references ------------------------------------------------------------------


def ref_gaps(ranges: dict[int, tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """Return the gaps ``[gl, gh)`` between the ranges (``start -> (end, item)``) in [lo, hi)."""
    gaps = []
    prev = lo
    for s in sorted(ranges):
        gaps.append((prev, s))
        prev = ranges[s][0]
    gaps.append((prev, hi))
    return gaps


def ref_unmapped(
    ranges: dict[int, tuple[int, int]],
    lo: int,
    hi: int,
    length: int,
    low: int,
    high: int,
    align: int,
    *,
    topdown: bool,
) -> int | None:
    """Return the best aligned start, scanning every gap."""
    low = max(low, lo)
    high = min(high, hi)
    found = []
    for gl, gh in ref_gaps(ranges, lo, hi):
        a_lo = max(gl, low)
        a_hi = min(gh, high) - length
        if topdown:
            a = a_hi // align * align
            if a >= a_lo:
                found.append(a)
        else:
            a = -(-a_lo // align) * align
            if a <= a_hi:
                found.append(a)
    if not found:
        return None
    return max(found) if topdown else min(found)


def scan_unmapped(
    ranges: list[tuple[int, int]],
    lo: int,
    hi: int,
    length: int,
    low: int,
    high: int,
    align: int,
    *,
    topdown: bool,
) -> int | None:
    """Return the best aligned start by trying every candidate address (small spaces only)."""
    low = max(low, lo)
    high = min(high, hi)
    candidates = range(high - length, low - 1, -1) if topdown else range(low, high - length + 1)
    for a in candidates:
        if a % align == 0 and not any(s < a + length and a < e for s, e in ranges):
            return a
    return None


def make_tree(ranges: list[tuple[int, int]], lo: int, hi: int) -> MapleTree[int]:
    """Return a tree holding ``ranges``, with each range's index as its item."""
    t = MapleTree[int](lo, hi)
    for i, (s, e) in enumerate(ranges):
        t.store(s, e, i)
    return t


# -- unit tests ------------------------------------------------------------------------------


def test_store_load_find() -> None:
    t = MapleTree[str](0, 1 << 30)
    t.store(4 * P, 6 * P, "a")
    t.store(10 * P, 11 * P, "b")
    assert len(t) == 2
    assert t.load(4 * P) == "a"
    assert t.load(6 * P - 1) == "a"
    assert t.load(6 * P) is None
    assert t.load(3 * P) is None
    assert t.find(0) == "a"
    assert t.find(6 * P) == "b"
    assert t.find(11 * P) is None
    assert t.range_of(10 * P) == (10 * P, 11 * P)
    assert list(t) == [(4 * P, 6 * P, "a"), (10 * P, 11 * P, "b")]
    t.check_invariants()


def test_store_rejects_overlap_empty_and_out_of_bounds() -> None:
    t = MapleTree[str](P, 100 * P)
    t.store(4 * P, 6 * P, "a")
    for start, end in [(5 * P, 7 * P), (3 * P, 5 * P), (4 * P, 6 * P), (2 * P, 9 * P)]:
        with pytest.raises(ValueError, match="overlaps"):
            t.store(start, end, "x")
    for start, end in [(0, 2 * P), (99 * P, 101 * P), (8 * P, 8 * P), (9 * P, 8 * P)]:
        with pytest.raises(ValueError, match="empty or outside"):
            t.store(start, end, "x")
    t.store(6 * P, 7 * P, "adjacent")
    t.store(P, 4 * P, "low edge")
    t.store(99 * P, 100 * P, "high edge")
    assert [s for s, _, _ in t] == [P, 4 * P, 6 * P, 99 * P]
    t.check_invariants()


def test_bad_construction() -> None:
    with pytest.raises(ValueError):
        MapleTree[int](5, 5)


def test_erase() -> None:
    t = make_tree([(0, P), (2 * P, 3 * P)], 0, 10 * P)
    assert t.erase(0) == 0
    with pytest.raises(KeyError):
        t.erase(0)
    with pytest.raises(KeyError):
        t.erase(2 * P + 1)
    assert list(t) == [(2 * P, 3 * P, 1)]
    assert t.erase(2 * P) == 1
    assert len(t) == 0
    assert list(t) == []
    t.check_invariants()


def test_neighbours_and_intersection() -> None:
    t = make_tree([(2 * P, 4 * P), (6 * P, 8 * P)], 0, 16 * P)
    assert t.prev(2 * P) is None
    assert t.prev(4 * P) == (2 * P, 4 * P, 0)
    assert t.prev(7 * P) == (2 * P, 4 * P, 0)
    assert t.prev(8 * P) == (6 * P, 8 * P, 1)
    assert t.next_after(0) == (2 * P, 4 * P, 0)
    assert t.next_after(2 * P + 1) == (6 * P, 8 * P, 1)
    assert t.next_after(6 * P + 1) is None
    assert t.find_intersection(0, 2 * P) is None
    assert t.find_intersection(0, 2 * P + 1) == 0
    assert t.find_intersection(4 * P, 6 * P) is None
    assert t.find_intersection(3 * P, 7 * P) == 0
    assert t.find_intersection(5 * P, 16 * P) == 1
    assert t.find_intersection(3 * P, 3 * P) is None
    assert list(t.iter_range(3 * P, 7 * P)) == [(2 * P, 4 * P, 0), (6 * P, 8 * P, 1)]
    assert list(t.iter_range(4 * P, 6 * P)) == []
    assert list(t.iter_range(3 * P, 3 * P)) == []
    assert list(t.iter_range(8 * P, 100 * P)) == []
    with pytest.raises(KeyError):
        t.range_of(3 * P)


def test_set_range_split_expand_shrink_move() -> None:
    t = make_tree([(2 * P, 4 * P), (6 * P, 8 * P), (10 * P, 12 * P)], 0, 32 * P)
    t.set_range(6 * P, 6 * P, 7 * P)  # shrink the end, as __split_vma does ...
    t.store(7 * P, 8 * P, 3)  # ... before storing the other half
    t.set_range(2 * P, P, 5 * P)  # expand both ways
    t.set_range(10 * P, 20 * P, 24 * P)  # move up, in place
    t.set_range(P, 25 * P, 26 * P)  # move past two other ranges
    t.set_range(20 * P, 0, P)  # move down past everything
    assert list(t) == [(0, P, 2), (6 * P, 7 * P, 1), (7 * P, 8 * P, 3), (25 * P, 26 * P, 0)]
    t.check_invariants()


def test_set_range_rejects_overlap_and_leaves_tree_unchanged() -> None:
    t = make_tree([(2 * P, 4 * P), (6 * P, 8 * P)], 0, 16 * P)
    before = list(t)
    for start, end in [
        (2 * P, 7 * P),
        (5 * P, 9 * P),
        (7 * P, 8 * P),
        (0, 32 * P),
        (3 * P, 3 * P),
    ]:
        with pytest.raises(ValueError):
            t.set_range(2 * P, start, end)
    with pytest.raises(KeyError):
        t.set_range(3 * P, 10 * P, 11 * P)
    assert list(t) == before
    t.set_range(2 * P, 4 * P, 6 * P)  # may overlap its own old range
    assert list(t) == [(4 * P, 6 * P, 0), (6 * P, 8 * P, 1)]
    t.check_invariants()


def test_replace() -> None:
    t = make_tree([(0, P)], 0, 4 * P)
    assert t.replace(0, 7) == 0
    assert t.load(0) == 7
    with pytest.raises(KeyError):
        t.replace(P, 1)


def test_iteration_continues_after_writes() -> None:
    t = make_tree([(i * 2 * P, (i * 2 + 1) * P) for i in range(10)], 0, 64 * P)
    seen = []
    for s, e, item in t.iter_range(0, 64 * P):
        seen.append(item)
        if item in (0, 2, 4, 6, 8):
            t.erase(s)  # removing the current range, as munmap does
        if item == 3:
            t.store(e, e + P, 100)  # a new range right behind the cursor is visited
            t.store(0, P, 101)  # one behind the cursor is not
    assert seen == [0, 1, 2, 3, 100, 4, 5, 6, 7, 8, 9]
    assert [item for _, _, item in t] == [101, 1, 3, 100, 5, 7, 9]
    t.check_invariants()


def test_unmapped_area_empty_tree() -> None:
    t = MapleTree[int](P, 100 * P)
    assert t.unmapped_area_topdown(P, 0, 1 << 40) == 99 * P
    assert t.unmapped_area(P, 0, 1 << 40) == P
    assert t.unmapped_area_topdown(99 * P, 0, 1 << 40) == P
    assert t.unmapped_area_topdown(100 * P, 0, 1 << 40) is None
    assert t.unmapped_area_topdown(P, 10 * P, 20 * P) == 19 * P
    assert t.unmapped_area(P, 10 * P + 1, 20 * P) == 11 * P
    assert t.unmapped_area(P, 10 * P, 11 * P - 1) is None
    with pytest.raises(ValueError):
        t.unmapped_area_topdown(0, 0, 1 << 40)
    with pytest.raises(ValueError):
        t.unmapped_area(P, 0, 1 << 40, align=0)


def test_unmapped_area_limits_and_gaps() -> None:
    t = make_tree([(10 * P, 20 * P), (22 * P, 30 * P), (35 * P, 40 * P)], 0, 50 * P)
    assert t.unmapped_area_topdown(10 * P, 0, 50 * P) == 40 * P
    assert t.unmapped_area_topdown(11 * P, 0, 50 * P) is None
    assert t.unmapped_area_topdown(5 * P, 0, 45 * P) == 40 * P
    assert t.unmapped_area_topdown(5 * P, 0, 44 * P) == 30 * P
    assert t.unmapped_area_topdown(2 * P, 0, 35 * P) == 33 * P
    assert t.unmapped_area_topdown(3 * P, 0, 35 * P) == 32 * P
    assert t.unmapped_area_topdown(6 * P, 0, 35 * P) == 4 * P
    assert t.unmapped_area(2 * P, 0, 50 * P) == 0
    assert t.unmapped_area(2 * P, 11 * P, 50 * P) == 20 * P
    assert t.unmapped_area(3 * P, 11 * P, 50 * P) == 30 * P
    assert t.unmapped_area(2 * P, 31 * P, 34 * P) == 31 * P
    assert t.unmapped_area(3 * P, 31 * P, 34 * P) == 31 * P
    assert t.unmapped_area(4 * P, 31 * P, 34 * P) is None


def test_unmapped_area_finds_aligned_gap_the_padded_search_misses() -> None:
    # [8 MiB, 10 MiB) is free and exactly PMD-aligned; so is a larger, lower gap. The kernel's
    # search for length + align - PAGE_SIZE skips the exact-fit gap; the model must not.
    mib = 1 << 20
    t = make_tree([(0, 8 * mib), (10 * mib, 12 * mib)], 0, 12 * mib)
    assert t.unmapped_area_topdown(2 * mib, 0, 12 * mib, align=PMD_SIZE) == 8 * mib
    assert t.unmapped_area(2 * mib, 0, 12 * mib, align=PMD_SIZE) == 8 * mib
    # Shifted by one page it no longer fits aligned.
    t2 = make_tree([(0, 8 * mib + P), (10 * mib + P, 12 * mib)], 0, 12 * mib)
    assert t2.unmapped_area_topdown(2 * mib, 0, 12 * mib, align=PMD_SIZE) is None
    assert t2.unmapped_area_topdown(2 * mib, 0, 12 * mib) == 8 * mib + P


def test_same_seed_same_shape() -> None:
    ranges = [((i * 7919) % 1000 * 2 * P, ((i * 7919) % 1000 * 2 + 1) * P) for i in range(1000)]
    a = make_tree(ranges, 0, 4000 * P)
    b = make_tree(ranges, 0, 4000 * P)
    assert a.height() == b.height()
    assert a.unmapped_area(2 * P, 0, 4000 * P) == b.unmapped_area(2 * P, 0, 4000 * P)
    assert a.nodes_visited == b.nodes_visited


# -- generic (non-page) exactness against an address-by-address scan --------------------------


@st.composite
def small_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Disjoint ranges of small integers within [0, 120)."""
    cuts = sorted(draw(st.sets(st.integers(0, 120), max_size=24)))
    flags = draw(st.lists(st.booleans(), min_size=len(cuts), max_size=len(cuts)))
    pairs = zip(cuts[::2], cuts[1::2], strict=False)
    return [(s, e) for (s, e), keep in zip(pairs, flags, strict=False) if keep]


@given(
    ranges=small_ranges(),
    length=st.integers(1, 40),
    align=st.integers(1, 13),
    low=st.integers(-5, 125),
    high=st.integers(-5, 125),
)
def test_unmapped_area_matches_scan(
    ranges: list[tuple[int, int]], length: int, align: int, low: int, high: int
) -> None:
    t = make_tree(ranges, 0, 120)
    t.check_invariants()
    for topdown in (True, False):
        want = scan_unmapped(ranges, 0, 120, length, low, high, align, topdown=topdown)
        assert (
            ref_unmapped(
                {s: (e, 0) for s, e in ranges}, 0, 120, length, low, high, align, topdown=topdown
            )
            == want
        )
        search = t.unmapped_area_topdown if topdown else t.unmapped_area
        assert search(length, low, high, align) == want


def test_random_small_trees_match_scan() -> None:
    rng = random.Random(5)
    for _ in range(300):
        cuts = sorted(rng.sample(range(200), 2 * rng.randrange(0, 25)))
        ranges = list(zip(cuts[::2], cuts[1::2], strict=True))
        t = make_tree(ranges, 0, 200)
        t.check_invariants()
        for _ in range(5):
            length, align = rng.randrange(1, 12), rng.randrange(1, 9)
            low, high = rng.randrange(-2, 202), rng.randrange(-2, 202)
            for topdown in (True, False):
                want = scan_unmapped(ranges, 0, 200, length, low, high, align, topdown=topdown)
                search = t.unmapped_area_topdown if topdown else t.unmapped_area
                assert search(length, low, high, align) == want


# -- state machine against a dict of ranges ----------------------------------------------------

LO = 4 * P
HI = 12 * PMD_SIZE + 3 * P
ALIGNS = [1, P, 2 * P, 3 * P, 16 * P, PMD_SIZE // 2, PMD_SIZE, 2 * PMD_SIZE, 3 * PMD_SIZE]

page_addrs = st.integers(LO // P - 2, HI // P + 2).map(lambda n: n * P)
any_addrs = st.one_of(page_addrs, st.integers(LO - 2 * P, HI + 2 * P))
npages = st.one_of(st.integers(1, 8), st.integers(256, 1100))
lengths = st.one_of(npages.map(lambda n: n * P), st.integers(1, 3 * PMD_SIZE))


class MapleMachine(RuleBasedStateMachine):
    """Drives a MapleTree and a dict ``start -> (end, item)`` with the same operations."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = MapleTree[int](LO, HI)
        self.ref: dict[int, tuple[int, int]] = {}
        self.next_item = 0

    def overlaps(self, start: int, end: int, ignore: int | None = None) -> bool:
        return any(s < end and start < e for s, (e, _) in self.ref.items() if s != ignore)

    def valid(self, start: int, end: int, ignore: int | None = None) -> bool:
        return LO <= start < end <= HI and not self.overlaps(start, end, ignore)

    @initialize(n=st.integers(0, 30), seed=st.integers(0, 2**32))
    def populate(self, n: int, seed: int) -> None:
        self.tree = MapleTree[int](LO, HI, seed=seed)
        # Small ranges with varied gaps, so that the searches have something to skip.
        addr = LO
        for i in range(n):
            addr += ((i * 37) % 5) * P + (PMD_SIZE // 3 // P * P if i % 7 == 0 else 0)
            end = addr + (1 + i % 3) * P
            if end > HI:
                break
            self.do_store(addr, end)
            addr = end

    def do_store(self, start: int, end: int) -> None:
        item = self.next_item
        self.next_item += 1
        self.tree.store(start, end, item)
        self.ref[start] = (end, item)

    @rule(start=page_addrs, n=npages)
    def store(self, start: int, n: int) -> None:
        end = start + n * P
        if self.valid(start, end):
            self.do_store(start, end)
        else:
            with pytest.raises(ValueError):
                self.tree.store(start, end, -1)

    @precondition(lambda self: bool(self.ref))
    @rule(data=st.data())
    def erase(self, data: st.DataObject) -> None:
        start = data.draw(st.sampled_from(sorted(self.ref)))
        assert self.tree.erase(start) == self.ref.pop(start)[1]

    @rule(start=any_addrs)
    def erase_missing(self, start: int) -> None:
        if start not in self.ref:
            with pytest.raises(KeyError):
                self.tree.erase(start)

    @precondition(lambda self: bool(self.ref))
    @rule(data=st.data(), new_start=page_addrs, n=npages)
    def set_range(self, data: st.DataObject, new_start: int, n: int) -> None:
        old = data.draw(st.sampled_from(sorted(self.ref)))
        new_end = new_start + n * P
        if self.valid(new_start, new_end, ignore=old):
            self.tree.set_range(old, new_start, new_end)
            _, item = self.ref.pop(old)
            self.ref[new_start] = (new_end, item)
        else:
            with pytest.raises(ValueError):
                self.tree.set_range(old, new_start, new_end)

    @precondition(lambda self: bool(self.ref))
    @rule(data=st.data(), delta=st.integers(-3, 3))
    def nudge(self, data: st.DataObject, delta: int) -> None:
        """Shrink or grow one end of a range by a few pages, as vma_expand/vma_shrink do."""
        start = data.draw(st.sampled_from(sorted(self.ref)))
        end, item = self.ref[start]
        new_start, new_end = (start + delta * P, end) if delta % 2 else (start, end + delta * P)
        if self.valid(new_start, new_end, ignore=start):
            self.tree.set_range(start, new_start, new_end)
            del self.ref[start]
            self.ref[new_start] = (new_end, item)
        else:
            with pytest.raises(ValueError):
                self.tree.set_range(start, new_start, new_end)

    @rule(addr=any_addrs)
    def point_queries(self, addr: int) -> None:
        ordered = sorted((s, e, it) for s, (e, it) in self.ref.items())
        containing = [it for s, e, it in ordered if s <= addr < e]
        assert self.tree.load(addr) == (containing[0] if containing else None)
        after = [it for s, e, it in ordered if e > addr]
        assert self.tree.find(addr) == (after[0] if after else None)
        below = [r for r in ordered if r[1] <= addr]
        assert self.tree.prev(addr) == (below[-1] if below else None)
        above = [r for r in ordered if r[0] >= addr]
        assert self.tree.next_after(addr) == (above[0] if above else None)
        if addr in self.ref:
            assert self.tree.range_of(addr) == (addr, self.ref[addr][0])
        else:
            with pytest.raises(KeyError):
                self.tree.range_of(addr)

    @rule(start=any_addrs, end=any_addrs)
    def range_queries(self, start: int, end: int) -> None:
        ordered = sorted((s, e, it) for s, (e, it) in self.ref.items())
        meeting = [r for r in ordered if r[0] < end and start < r[1] and start < end]
        assert list(self.tree.iter_range(start, end)) == meeting
        assert self.tree.find_intersection(start, end) == (meeting[0][2] if meeting else None)

    def check_gap_search(self, length: int, low: int, high: int, align: int) -> None:
        for topdown in (True, False):
            want = ref_unmapped(self.ref, LO, HI, length, low, high, align, topdown=topdown)
            search = self.tree.unmapped_area_topdown if topdown else self.tree.unmapped_area
            assert search(length, low, high, align) == want

    @rule(length=lengths, low=any_addrs, high=any_addrs, align=st.sampled_from(ALIGNS))
    def gap_search(self, length: int, low: int, high: int, align: int) -> None:
        self.check_gap_search(length, low, high, align)

    @rule(length=lengths, align=st.sampled_from(ALIGNS))
    def gap_search_unlimited(self, length: int, align: int) -> None:
        self.check_gap_search(length, 0, 1 << 64, align)

    @invariant()
    def consistent(self) -> None:
        self.tree.check_invariants()
        assert len(self.tree) == len(self.ref)
        assert list(self.tree) == sorted((s, e, it) for s, (e, it) in self.ref.items())


TestMapleMachine = MapleMachine.TestCase


# -- scale -------------------------------------------------------------------------------------

#: Range #20480 starts 80 PMDs up; the 6 MiB (3 PMD) gap above it starts one page later.
BIG_GAP_RANGE = 20480
BIG_GAP_BASE = 80 * PMD_SIZE
NARROW_GAP_RANGE = 40000


@pytest.fixture(scope="module")
def full_tree() -> MapleTree[int]:
    """MAX_MAP_COUNT one-page ranges one page apart, filling [0, 2**47), except for a 6 MiB gap
    starting one page above a PMD boundary after #20480 and a 3-page gap after #40000."""
    t = MapleTree[int](0, 1 << 47)
    addr = 0
    for i in range(MAX_MAP_COUNT):
        t.store(addr, addr + P, i)
        addr += 2 * P
        if i == BIG_GAP_RANGE:
            assert addr == BIG_GAP_BASE + 2 * P
            addr += 3 * PMD_SIZE - P
        elif i == NARROW_GAP_RANGE:
            addr += 2 * P
    last = addr - 2 * P
    t.set_range(last, last, 1 << 47)  # no gap at the top
    return t


def test_full_tree_lookups(full_tree: MapleTree[int]) -> None:
    t = full_tree
    assert len(t) == MAX_MAP_COUNT
    assert t.height() < 100  # about 2.5 log2(n) for a treap; never near n
    assert t.range_of(0) == (0, P)
    nxt = t.next_after(P)
    assert nxt is not None
    assert nxt[2] == 1
    assert t.load(nxt[0] + 1) == 1
    assert t.load(P) is None
    t.check_invariants()


def test_full_tree_gap_search_is_logarithmic(full_tree: MapleTree[int]) -> None:
    t = full_tree
    top = 1 << 47
    bound = 200  # a linear search would visit about 65,530 nodes
    # The 3-page gap is the highest that holds 2 pages.
    a = t.unmapped_area_topdown(2 * P, 0, top)
    assert a is not None
    assert t.load(a - 2 * P) == NARROW_GAP_RANGE
    assert t.load(a + 2 * P) == NARROW_GAP_RANGE + 1
    assert t.nodes_visited < bound
    # Only the 6 MiB gap [80 PMD + P, 83 PMD + P) holds a PMD-aligned 2 MiB run: two of them.
    assert t.unmapped_area_topdown(PMD_SIZE, 0, top, align=PMD_SIZE) == BIG_GAP_BASE + 2 * PMD_SIZE
    assert t.nodes_visited < bound
    assert t.unmapped_area(PMD_SIZE, 0, top, align=PMD_SIZE) == BIG_GAP_BASE + PMD_SIZE
    assert t.nodes_visited < bound
    # Unaligned, the big gap is the lowest that holds 3 pages; above it, the narrow gap.
    assert t.unmapped_area(3 * P, 0, top) == BIG_GAP_BASE + P
    assert t.nodes_visited < bound
    assert t.unmapped_area(3 * P, BIG_GAP_BASE + 3 * PMD_SIZE + P, top) == a - P
    assert t.nodes_visited < bound
    # Nothing fits: the root's summary says so at once.
    assert t.unmapped_area_topdown(4 * PMD_SIZE, 0, top) is None
    assert t.nodes_visited == 1
    # One-page gaps everywhere; with a limit in the middle the search stays near two paths.
    mid = t.next_after(2**40)
    assert mid is None
    mid = t.next_after(a + 40000 * P)
    assert mid is not None
    assert t.unmapped_area_topdown(P, 0, mid[0] - P) == mid[0] - 3 * P
    assert t.nodes_visited < bound
