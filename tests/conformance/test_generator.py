"""The sequence generator: reproducible, confined, and covering the vocabulary."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings

from safemm.conformance.generator import (
    MAX_STEPS,
    RandomChooser,
    generate_shape,
    random_sequences,
    sequences,
)
from safemm.conformance.ops import (
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    PROT_WRITE,
    Fork,
    InChild,
    Mmap,
    Mprotect,
    Mremap,
    Op,
    Read,
    Write,
    is_confined,
)


def test_same_seed_same_sequences() -> None:
    assert list(random_sequences(50, seed=4)) == list(random_sequences(50, seed=4))
    assert list(random_sequences(50, seed=4)) != list(random_sequences(50, seed=5))


def test_sequences_are_confined_and_short() -> None:
    for ops in random_sequences(1000, seed=8):
        assert 1 <= len(ops) <= MAX_STEPS
        for op in ops:
            assert is_confined(op), op


def test_mix_covers_the_vocabulary() -> None:
    kinds: Counter[str] = Counter()
    flags: Counter[int] = Counter()
    for ops in random_sequences(1000, seed=9):
        for op in ops:
            kinds[type(op).__name__] += 1
            if isinstance(op, Mremap):
                flags[op.flags] += 1
    assert set(kinds) == {
        "Fork",
        "InChild",
        "Mmap",
        "Munmap",
        "Mprotect",
        "Mremap",
        "Read",
        "Write",
        "Madvise",
        "Mlock",
        "Munlock",
        "MmapFile",
        "Ftruncate",
        "Pread",
        "Pwrite",
        "RawMmap",
        "RawMunmap",
        "RawMprotect",
        "RawMremap",
        "RawMadvise",
        "RawMlock",
        "RawMunlock",
    }
    total = sum(kinds.values())
    raw = sum(count for name, count in kinds.items() if name.startswith("Raw"))
    assert 0.03 < raw / total < 0.16  # biased towards valid calls
    assert flags[0] > 0
    assert flags[MREMAP_FIXED | 1] > 0
    assert flags[MREMAP_FIXED | MREMAP_DONTUNMAP | 1] > 0


def test_children_run_only_after_a_fork() -> None:
    """After a fork about one piece in three goes to the child; never before one."""
    children = after_fork = 0
    for ops in random_sequences(1000, seed=11):
        forked = False
        for op in ops:
            if isinstance(op, InChild):
                assert forked, ops
                children += 1
            elif forked:
                after_fork += 1
            forked = forked or isinstance(op, Fork)
    assert 0.15 < children / (children + after_fork) < 0.6


def test_hypothesis_strategy_draws_confined_sequences() -> None:
    def check(ops: list[Op]) -> None:
        assert len(ops) <= MAX_STEPS
        for op in ops:
            assert is_confined(op), op

    # applied as calls, not decorators: the decorated type has Any in it, which the
    # project's mypy settings reject on decorated functions
    settings(max_examples=200, derandomize=True, database=None)(given(sequences())(check))()


def _shape_name(shape: list[Op]) -> str:
    kinds = [type(op).__name__ for op in shape]
    if "Fork" in kinds:
        return "fork_cow"
    if kinds[:3] == ["Mmap", "Write", "Mmap"]:
        return "adopt"
    first = shape[0]
    if isinstance(first, Mprotect) and first.prot & PROT_WRITE:
        return "once_writable"
    return "carve" if isinstance(first, Mmap) else "?"


def test_shapes_make_the_layouts_real_programs_make() -> None:
    """Reservations carved up, once-writable ranges next to never-writable ones, and new
    mappings merged into written ones, each ending in a call across an edge."""
    chooser = RandomChooser(random.Random(3))
    seen: Counter[str] = Counter()
    written = 0
    for _ in range(600):
        shape = generate_shape(chooser)
        assert all(is_confined(op) for op in shape), shape
        seen[_shape_name(shape)] += 1
        written += any(isinstance(op, Write) for op in shape)
        if _shape_name(shape) == "fork_cow":
            # written before the fork; loads and stores in both processes after it
            fork = [type(op).__name__ for op in shape].index("Fork")
            assert any(isinstance(op, Write) for op in shape[:fork])
            after = shape[fork + 1 :]
            assert len(after) >= 2
            assert all(isinstance(op, Read | Write | InChild) for op in after)
            continue
        last = shape[-1]
        assert isinstance(last, Mprotect | Mmap)
        if isinstance(last, Mprotect):
            # straddles an edge of the piece the shape made: starts or ends inside it
            piece = shape[2] if _shape_name(shape) == "adopt" else shape[0]
            assert isinstance(piece, Mmap | Mprotect)
            inside = range(piece.page, piece.page + piece.npages)
            assert (last.page in inside) != (last.page + last.npages - 1 in inside)
    assert set(seen) == {"carve", "once_writable", "adopt", "fork_cow"}
    assert min(seen.values()) > 60
    assert 0 < written < 600
