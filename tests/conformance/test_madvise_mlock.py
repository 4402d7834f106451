"""madvise, mlock and munlock on the running kernel and on the model, case by case.

The expected outcomes and final layouts are the running kernel's (Linux 6.18), asserted so
that a kernel that behaves otherwise is reported; then the model must agree at every step.
"""

from __future__ import annotations

import pytest

from safemm.conformance.kernel_side import KernelSide
from safemm.conformance.model_side import ModelSide
from safemm.conformance.ops import (
    MADV_DOFORK,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_LOCKED,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Madvise,
    Mlock,
    Mmap,
    Mprotect,
    Munlock,
    Munmap,
    Op,
    RawMadvise,
    RawMlock,
    Read,
    Write,
)

from .support import check_kernel_case

RW = PROT_READ | PROT_WRITE
F = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
S = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED

CASES: dict[str, tuple[list[Op], list[str], str]] = {
    "dontneed-private-reads-zero": (
        [Mmap(4, 4, RW, F), Write(4, 0, 9), Madvise(4, 1, MADV_DONTNEED), Read(4, 0)],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x0"],
        "[-2,4) ---p | [4,8) rw-p | [8,18) ---p",
    ),
    "dontneed-shared-keeps": (
        [Mmap(4, 4, RW, S), Write(4, 0, 9), Madvise(4, 1, MADV_DONTNEED), Read(4, 0)],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x9"],
        "[-2,4) ---p | [4,8) rw-s shmem#0@0 | [8,18) ---p",
    ),
    "dontneed-hole-enomem-after-zap": (
        [
            Mmap(4, 4, RW, F),
            Write(6, 0, 9),
            Munmap(5, 1),
            Madvise(4, 4, MADV_DONTNEED),
            Read(6, 0),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "-ENOMEM", "ok 0x0"],
        "[-2,4) ---p | [4,5) rw-p | [6,8) rw-p | [8,18) ---p",
    ),
    "dontneed-locked-einval": (
        [Mmap(4, 4, RW, F | MAP_LOCKED), Madvise(4, 1, MADV_DONTNEED)],
        ["ok 0x4000", "-EINVAL"],
        "[-2,4) ---p | [4,8) rw-p | [8,18) ---p",
    ),
    "dontfork-split-dofork-merge": (
        [Mmap(4, 4, RW, F), Madvise(5, 2, MADV_DONTFORK), Madvise(4, 4, MADV_DOFORK)],
        ["ok 0x4000", "ok 0x0", "ok 0x0"],
        "[-2,4) ---p | [4,8) rw-p | [8,18) ---p",
    ),
    "wipeonfork-stops-at-shared": (
        [Mmap(4, 2, RW, F), Mmap(6, 2, RW, S), Madvise(4, 4, MADV_WIPEONFORK)],
        ["ok 0x4000", "ok 0x6000", "-EINVAL"],
        "[-2,4) ---p | [4,6) rw-p | [6,8) rw-s shmem#0@0 | [8,18) ---p",
    ),
    "mlock-prot-none-locks-then-enomem": (
        [Mlock(2, 2)],
        ["-ENOMEM"],
        "[-2,2) ---p | [2,4) ---p | [4,18) ---p",
    ),
    "mlock-hole": (
        [Mmap(4, 4, RW, F), Munmap(6, 1), Mlock(4, 4), Munlock(4, 4)],
        ["ok 0x4000", "ok 0x0", "-ENOMEM", "-ENOMEM"],
        "[-2,4) ---p | [4,6) rw-p | [7,8) rw-p | [8,18) ---p",
    ),
    "mlock-populates-so-account-stays": (
        [
            Mmap(4, 4, RW, F),
            Mlock(4, 4),
            Munlock(4, 4),
            Mprotect(4, 4, PROT_READ),
            Mmap(8, 2, PROT_READ, F),
        ],
        ["ok 0x4000", "ok 0x0", "ok 0x0", "ok 0x0", "ok 0x8000"],
        "[-2,4) ---p | [4,8) r--p | [8,10) r--p | [10,18) ---p",
    ),
    "map-locked-prot-none-stays-apart": (
        [Mmap(4, 2, PROT_NONE, F | MAP_LOCKED), Mmap(6, 2, PROT_NONE, F)],
        ["ok 0x4000", "ok 0x6000"],
        "[-2,4) ---p | [4,6) ---p | [6,18) ---p",
    ),
    "mlock-rounds-to-pages": (
        [Mmap(4, 4, RW, F), RawMlock(5 * PAGE_SIZE - 1, 2)],
        ["ok 0x4000", "ok 0x0"],
        "[-2,4) ---p | [4,6) rw-p | [6,8) rw-p | [8,18) ---p",
    ),
    "madvise-unknown-advice": (
        [RawMadvise(0, PAGE_SIZE, 999)],
        ["-EINVAL"],
        "[-2,18) ---p",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_madvise_mlock_case(kernel_side: KernelSide, model_side: ModelSide, name: str) -> None:
    check_kernel_case(kernel_side, model_side, *CASES[name])
