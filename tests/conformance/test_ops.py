"""The operation vocabulary: readable reprs, absolute calls, the confinement rule."""

from __future__ import annotations

import dataclasses

import pytest

from safemm.conformance import ops as ops_module
from safemm.conformance.generator import random_sequences
from safemm.conformance.ops import (
    FAR,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    REGION_PAGES,
    U64_MAX,
    WINDOW_END_PAGE,
    WINDOW_FIRST_PAGE,
    WRAP,
    Call,
    InChild,
    Mmap,
    MmapCall,
    Mprotect,
    MprotectCall,
    Mremap,
    MremapCall,
    Munmap,
    MunmapCall,
    Op,
    RawMmap,
    RawMremap,
    RawMunmap,
    Read,
    ReadCall,
    Write,
    WriteCall,
    confinement_error,
    format_sequence,
)

BASE = 0x7F00_0000_0000
LO = BASE + WINDOW_FIRST_PAGE * PAGE_SIZE
HI = BASE + WINDOW_END_PAGE * PAGE_SIZE
PRIVATE = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


def namespace() -> dict[str, object]:
    return {name: getattr(ops_module, name) for name in ops_module.__all__}


def test_repr_reads_like_code() -> None:
    op = Mmap(page=3, npages=2, prot=PROT_READ | PROT_WRITE, flags=PRIVATE)
    assert repr(op) == (
        "Mmap(page=3, npages=2, prot=PROT_READ | PROT_WRITE, "
        "flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)"
    )
    assert repr(Mprotect(-1, 1, PROT_NONE)) == "Mprotect(page=-1, npages=1, prot=PROT_NONE)"
    assert repr(Mremap(0, 2, 2, MREMAP_MAYMOVE | MREMAP_FIXED, 8)) == (
        "Mremap(old_page=0, old_npages=2, new_npages=2, "
        "flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_page=8)"
    )
    assert repr(RawMunmap(addr=0x1001, length=WRAP)) == "RawMunmap(addr=0x1001, length=WRAP)"
    assert repr(RawMmap(0, PAGE_SIZE, PROT_READ | 0x40, MAP_ANONYMOUS | MAP_FIXED)) == (
        "RawMmap(addr=0, length=0x1000, prot=PROT_READ | 0x40, flags=MAP_ANONYMOUS | MAP_FIXED)"
    )
    assert repr(Write(0, PAGE_SIZE - 1, 7)) == "Write(page=0, offset=4095, byte=0x07)"


def test_repr_round_trips_for_generated_sequences() -> None:
    names = namespace()
    for sequence in random_sequences(300, seed=11):
        for op in sequence:
            assert eval(repr(op), names) == op
        assert eval(format_sequence(sequence), names) == sequence


def test_calls_are_relative_to_the_base() -> None:
    assert Mmap(-2, 1, PROT_EXEC, PRIVATE).call(BASE) == MmapCall(
        BASE - 2 * PAGE_SIZE, PAGE_SIZE, PROT_EXEC, PRIVATE, -1, 0
    )
    assert Munmap(3, 2).call(BASE) == MunmapCall(BASE + 3 * PAGE_SIZE, 2 * PAGE_SIZE)
    assert Mremap(1, 1, 2).call(BASE) == MremapCall(
        BASE + PAGE_SIZE, PAGE_SIZE, 2 * PAGE_SIZE, 0, None
    )
    assert Read(2, 5).call(BASE) == ReadCall(BASE + 2 * PAGE_SIZE + 5)
    assert Write(0, 1, 9).call(BASE) == WriteCall(BASE + 1, 9)
    # raw arguments are unsigned longs: far offsets stay far, lengths wrap
    assert RawMunmap(FAR, WRAP).call(BASE) == MunmapCall(BASE + FAR, WRAP)
    assert RawMunmap(0, -1).call(BASE) == MunmapCall(BASE, U64_MAX)
    assert RawMremap(0, 0, PAGE_SIZE, 0, FAR).call(BASE).new_addr == BASE + FAR


SAFE: list[Call] = [
    MmapCall(BASE, PAGE_SIZE, PROT_READ, PRIVATE, -1, 0),
    MmapCall(LO, HI - LO, PROT_NONE, PRIVATE, -1, 0),
    MmapCall(BASE + 1, HI - BASE, PROT_READ, PRIVATE, -1, 0),  # unaligned address: EINVAL
    MmapCall(BASE, FAR, PROT_READ, PRIVATE, -1, 0),  # huge: ENOMEM
    MmapCall(BASE + FAR, PAGE_SIZE, PROT_READ, PRIVATE, -1, 0),  # far: ENOMEM
    MmapCall(BASE, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS | MAP_FIXED, -1, 0),  # no type: EINVAL
    MmapCall(BASE, PAGE_SIZE, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
    MunmapCall(HI - PAGE_SIZE, PAGE_SIZE),
    MunmapCall(BASE, 0),
    MunmapCall(BASE, U64_MAX),
    MprotectCall(BASE, FAR, PROT_READ),  # stops at the moat
    MprotectCall(BASE, WRAP, PROT_READ),
    MremapCall(BASE, PAGE_SIZE, 2 * PAGE_SIZE, 0, None),
    MremapCall(BASE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, HI - PAGE_SIZE),
    MremapCall(BASE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, LO),
    MremapCall(BASE, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, 0),  # FIXED without MAYMOVE: EINVAL
    MremapCall(BASE, PAGE_SIZE, PAGE_SIZE, 0x8, 0),  # unknown flag: EINVAL
    MremapCall(BASE, FAR, PAGE_SIZE, 0, None),  # shrink by a huge length: EINVAL
    MremapCall(BASE, PAGE_SIZE, PAGE_SIZE, 0, BASE + FAR),  # new_addr without FIXED
    ReadCall(LO),
    WriteCall(HI - 1, 1),
]

UNSAFE: list[Call] = [
    MmapCall(BASE, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),  # kernel picks
    MmapCall(BASE, (REGION_PAGES + 3) * PAGE_SIZE, PROT_READ, PRIVATE, -1, 0),  # past the window
    MmapCall(LO - PAGE_SIZE, PAGE_SIZE, PROT_READ, PRIVATE, -1, 0),  # in the moat
    MmapCall(BASE, 1 << 40, PROT_READ, PRIVATE, -1, 0),  # neither small nor huge
    MmapCall(BASE, PAGE_SIZE, PROT_READ, PRIVATE, 0, 0),  # a file
    MmapCall(BASE, PAGE_SIZE, PROT_READ, PRIVATE | 0x40000, -1, 0),  # MAP_HUGETLB
    MunmapCall(HI - PAGE_SIZE, 2 * PAGE_SIZE),
    MunmapCall(BASE, 1 << 40),
    MprotectCall(HI, PAGE_SIZE, PROT_READ),
    MremapCall(BASE, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE, None),  # kernel picks
    MremapCall(HI - PAGE_SIZE, PAGE_SIZE, 2 * PAGE_SIZE, 0, None),  # grows into the moat
    MremapCall(BASE, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, HI - PAGE_SIZE),
    ReadCall(HI),
    WriteCall(LO - 1, 1),
]


@pytest.mark.parametrize("call", SAFE, ids=repr)
def test_confined_calls(call: Call) -> None:
    assert confinement_error(call, LO, HI) is None


@pytest.mark.parametrize("call", UNSAFE, ids=repr)
def test_unconfined_calls(call: Call) -> None:
    assert confinement_error(call, LO, HI) is not None


def test_simplifications_stay_confined_and_terminate() -> None:
    def measure(op: Op) -> int:
        if isinstance(op, InChild):
            return measure(op.op) + 1
        return sum(abs(value) for value in vars_of(op) if isinstance(value, int))

    for sequence in random_sequences(200, seed=5):
        for op in sequence:
            for simpler in op.simpler():
                assert measure(simpler) < measure(op), (op, simpler)
                assert confinement_error(simpler.call(BASE), LO, HI) is None, (op, simpler)


def vars_of(op: Op) -> list[object]:
    return [getattr(op, field.name) for field in dataclasses.fields(op)]


def test_shared_flags_render() -> None:
    assert "MAP_SHARED | MAP_ANONYMOUS" in repr(
        Mmap(0, 1, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    )
