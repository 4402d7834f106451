# mypy: disallow-any-decorated=False
"""The drivers' first-fit page-range allocator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemm.demo.drivers.alloc import RangeAllocator


def test_first_fit_and_merge() -> None:
    """Allocation takes the lowest range that fits; frees merge with both neighbours."""
    a = RangeAllocator(10)
    assert [a.alloc(3), a.alloc(3), a.alloc(3)] == [0, 3, 6]
    assert a.alloc(2) is None
    a.free(3, 3)
    assert a.alloc(4) is None
    a.free(0, 3)
    a.free(6, 3)
    assert a.extents == [(0, 10)]
    assert a.alloc(10) == 0


def test_double_free_is_refused() -> None:
    """Freeing a free range is a driver bug, reported at once."""
    a = RangeAllocator(8)
    start = a.alloc(4)
    assert start == 0
    a.free(0, 4)
    with pytest.raises(ValueError, match="double free"):
        a.free(2, 2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 6)), max_size=40))
def test_never_overlaps(ops: list[tuple[bool, int]]) -> None:
    """Allocated ranges never overlap, and free space is conserved."""
    a = RangeAllocator(32)
    live: list[tuple[int, int]] = []
    for alloc, n in ops:
        if alloc or not live:
            start = a.alloc(n)
            if start is not None:
                assert all(start + n <= s or s + m <= start for s, m in live)
                live.append((start, n))
        else:
            s, m = live.pop(n % len(live))
            a.free(s, m)
        assert a.free_pages + sum(m for _, m in live) == 32
