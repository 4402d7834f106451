"""The anon_vma / VM_ACCOUNT merge rules behind a disagreement another generator found, on the
running kernel and on the model.

Each sequence runs inside the window (which starts as one PROT_NONE reservation) on both
sides; the expected final layout is the running kernel's (Linux 6.18), asserted so that a
kernel that behaves otherwise is reported rather than silently compared. See
tests/model/test_merge_account.py for the rules behind each layout.
"""

from __future__ import annotations

import pytest

from safemm.conformance.compare import compare
from safemm.conformance.kernel_side import KernelSide
from safemm.conformance.model_side import ModelSide
from safemm.conformance.ops import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Mmap,
    Mprotect,
    Munmap,
    Op,
    Write,
)

RW = PROT_READ | PROT_WRITE
RX = PROT_READ | PROT_EXEC
F = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED

CASES: dict[str, tuple[list[Op], str]] = {
    "issue-exact": (
        [Mmap(12, 4, RW, F), Mprotect(9, 4, RX)],
        "[-2,9) ---p | [9,13) r-xp | [13,16) rw-p | [16,18) ---p",
    ),
    "issue-written-first-page": (
        [Mmap(12, 4, RW, F), Write(12, 0, 7), Mprotect(9, 4, RX)],
        "[-2,9) ---p | [9,12) r-xp | [12,13) r-xp | [13,16) rw-p | [16,18) ---p",
    ),
    "issue-written-other-page": (
        [Mmap(12, 4, RW, F), Write(13, 0, 7), Mprotect(9, 4, RX)],
        "[-2,9) ---p | [9,12) r-xp | [12,13) r-xp | [13,16) rw-p | [16,18) ---p",
    ),
    "issue-written-neighbour": (
        [Mmap(16, 2, RW, F), Write(16, 0, 7), Mmap(12, 4, RW, F), Mprotect(9, 4, RX)],
        "[-2,9) ---p | [9,12) r-xp | [12,13) r-xp | [13,18) rw-p",
    ),
    "once-writable-unwritten": (
        [Mprotect(0, 4, RW), Mprotect(0, 4, PROT_READ), Mmap(4, 4, PROT_READ, F)],
        "[-2,0) ---p | [0,8) r--p | [8,18) ---p",
    ),
    "once-writable-written": (
        [
            Mprotect(0, 4, RW),
            Write(0, 0, 1),
            Mprotect(0, 4, PROT_READ),
            Mmap(4, 4, PROT_READ, F),
        ],
        "[-2,0) ---p | [0,4) r--p | [4,8) r--p | [8,18) ---p",
    ),
    "once-written-prot-none": (
        [Mprotect(4, 4, RW), Write(4, 0, 1), Mprotect(4, 4, PROT_NONE)],
        "[-2,4) ---p | [4,8) ---p | [8,18) ---p",
    ),
    "once-written-then-all-read": (
        [
            Mprotect(4, 4, RW),
            Write(4, 0, 1),
            Mprotect(4, 4, PROT_NONE),
            Mprotect(0, 16, PROT_READ),
        ],
        "[-2,0) ---p | [0,4) r--p | [4,8) r--p | [8,16) r--p | [16,18) ---p",
    ),
    "hole-after-merge": (
        [Mprotect(4, 4, RW), Write(4, 0, 1), Munmap(5, 1), Mprotect(0, 16, RW)],
        "[-2,0) ---p | [0,5) rw-p | [6,8) rw-p | [8,18) ---p",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_issue_10_case(kernel_side: KernelSide, model_side: ModelSide, name: str) -> None:
    ops, expected = CASES[name]
    result = kernel_side.run(ops)
    assert str(result.steps[-1].layout) == expected, f"{kernel_side.info.describe()}"
    mismatch = compare(ops, kernel=kernel_side, model=model_side)
    assert mismatch is None, f"\n{kernel_side.info.describe()}\n{mismatch}"
