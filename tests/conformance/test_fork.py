"""fork on the running kernel and on the model, case by case.

Each case runs in the parent and in the child a fork makes (``InChild`` steps); the expected
outcomes and both final layouts are the running kernel's (Linux 6.18), asserted so that a
kernel that behaves otherwise is reported; then the model must agree at every step, in both
processes.
"""

from __future__ import annotations

import pytest

from safemm.conformance.kernel_side import KernelSide
from safemm.conformance.model_side import ModelSide
from safemm.conformance.ops import (
    MADV_DONTFORK,
    MADV_WIPEONFORK,
    MAP_LOCKED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_WRITE,
    Fork,
    Ftruncate,
    InChild,
    Madvise,
    Mmap,
    MmapFile,
    Mprotect,
    Mremap,
    Op,
    Pread,
    Read,
    Write,
)

from .support import MOVE, RW, F, S, check_kernel_case


def moved_back(child: bool) -> list[Op]:
    """Move a faulted page away, map an unfaulted page below its old place (its page offset
    lines up), move the faulted page back: in the parent or in the child."""
    ops: list[Op] = [Mremap(0, 1, 1, MOVE, 8), Mmap(-1, 1, RW, F), Mremap(8, 1, 1, MOVE, 0)]
    return [InChild(op) for op in ops] if child else ops


CASES: dict[str, tuple[list[Op], list[str], str, str | None]] = {
    "cow-private-both-ways": (
        [
            Mmap(4, 2, RW, F),
            Write(4, 0, 1),
            Fork(),
            InChild(Write(4, 0, 2)),
            Read(4, 0),
            InChild(Read(4, 0)),
            Write(5, 0, 3),
            InChild(Read(5, 0)),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x0", "ok 0x1", "ok 0x2", "ok 0x0", "ok 0x0"],
        "[-2,4) ---p | [4,6) rw-p | [6,18) ---p",
        "[-2,4) ---p | [4,6) rw-p | [6,18) ---p",
    ),
    "shared-stays-shared": (
        [
            Mmap(4, 2, RW, S),
            Write(4, 0, 1),
            Fork(),
            InChild(Write(4, 0, 2)),
            Read(4, 0),
            Write(5, 0, 3),
            InChild(Read(5, 0)),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x0", "ok 0x2", "ok 0x0", "ok 0x3"],
        "[-2,4) ---p | [4,6) rw-s shmem#0@0 | [6,18) ---p",
        "[-2,4) ---p | [4,6) rw-s shmem#0@0 | [6,18) ---p",
    ),
    "memfd-shared-and-private": (
        [
            Ftruncate(2 * PAGE_SIZE),
            MmapFile(4, 1, RW, True, 0),
            MmapFile(5, 1, RW, False, 0),
            Write(4, 0, 7),
            Fork(),
            InChild(Write(5, 0, 8)),
            Read(5, 0),
            InChild(Read(4, 0)),
            InChild(Pread(0)),
            InChild(Ftruncate(0)),
            Read(4, 0),
        ],
        [
            *("ok 0x0", "ok 0x4000", "ok 0x5000", "ok 0x0", "ok 0x0", "ok 0x0"),
            *("ok 0x7", "ok 0x7", "ok 0x7", "ok 0x0", "SIGBUS"),
        ],
        "[-2,4) ---p | [4,5) rw-s memfd@0 | [5,6) rw-p memfd@0 | [6,18) ---p",
        "[-2,4) ---p | [4,5) rw-s memfd@0 | [5,6) rw-p memfd@0 | [6,18) ---p",
    ),
    "dontfork-hole-in-child": (
        [
            Mmap(4, 3, RW, F),
            Madvise(5, 1, MADV_DONTFORK),
            Fork(),
            InChild(Read(5, 0)),
            InChild(Mmap(5, 1, RW, F)),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "SIGSEGV", "ok 0x5000"],
        "[-2,4) ---p | [4,5) rw-p | [5,6) rw-p | [6,7) rw-p | [7,18) ---p",
        "[-2,4) ---p | [4,7) rw-p | [7,18) ---p",
    ),
    "wipeonfork-child-reads-zero": (
        [
            Mmap(4, 2, RW, F),
            Write(4, 0, 9),
            Madvise(4, 1, MADV_WIPEONFORK),
            Fork(),
            InChild(Read(4, 0)),
            Read(4, 0),
            InChild(Write(4, 0, 1)),
            Read(4, 0),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x0", "ok 0x0", "ok 0x9", "ok 0x0", "ok 0x9"],
        "[-2,4) ---p | [4,5) rw-p | [5,6) rw-p | [6,18) ---p",
        "[-2,4) ---p | [4,5) rw-p | [5,6) rw-p | [6,18) ---p",
    ),
    "mlock-not-inherited": (
        [
            Mmap(4, 2, PROT_NONE, F | MAP_LOCKED),
            Fork(),
            InChild(Mmap(6, 2, PROT_NONE, F)),
            Mmap(6, 2, PROT_NONE, F),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x6000", "ok 0x6000"],
        "[-2,4) ---p | [4,6) ---p | [6,18) ---p",
        "[-2,4) ---p | [4,18) ---p",
    ),
    "child-faulted-vma-no-merge-mprotect": (
        [
            Mprotect(3, 1, PROT_WRITE),
            Write(3, 0, 1),
            Fork(),
            InChild(Mprotect(2, 2, PROT_WRITE | PROT_EXEC)),
        ],
        ["ok 0x0", "ok 0x0", "ok 0x0", "ok 0x0"],
        "[-2,3) ---p | [3,4) -w-p | [4,18) ---p",
        "[-2,2) ---p | [2,3) -wxp | [3,4) -wxp | [4,18) ---p",
    ),
    "child-faulted-vma-moved-back-no-merge": (
        [Mmap(0, 2, RW, F), Write(0, 0, 1), Fork(), *moved_back(True), *moved_back(False)],
        [
            *("ok 0x0", "ok 0x0", "ok 0x0", "ok 0x8000", "ok -0x1000", "ok 0x0"),
            *("ok 0x8000", "ok -0x1000", "ok 0x0"),
        ],
        "[-2,-1) ---p | [-1,2) rw-p | [2,8) ---p | [9,18) ---p",
        "[-2,-1) ---p | [-1,0) rw-p | [0,2) rw-p | [2,8) ---p | [9,18) ---p",
    ),
    "refork-ends-child": (
        [Mmap(4, 1, RW, F), Fork(), InChild(Write(4, 0, 5)), Fork(), InChild(Read(4, 0))],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x0", "ok 0x0"],
        "[-2,4) ---p | [4,5) rw-p | [5,18) ---p",
        "[-2,4) ---p | [4,5) rw-p | [5,18) ---p",
    ),
    "child-step-without-child-skipped": (
        [InChild(Mmap(4, 1, RW, F)), Mmap(4, 1, RW, F)],
        ["skipped (no child process)", "ok 0x4000"],
        "[-2,4) ---p | [4,5) rw-p | [5,18) ---p",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fork_case(kernel_side: KernelSide, model_side: ModelSide, name: str) -> None:
    check_kernel_case(kernel_side, model_side, *CASES[name])
