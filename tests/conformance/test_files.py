"""The suite's memfd on the running kernel and on the model: shared and private mappings,
``pread``/``pwrite``, SIGBUS past the end, shrinking with ``ftruncate``.

The expected outcomes are the running kernel's (Linux 6.18), asserted so that a kernel that
behaves otherwise is reported; then the model must agree at every step.
"""

from __future__ import annotations

from safemm.conformance.compare import compare
from safemm.conformance.kernel_side import KernelSide
from safemm.conformance.model_side import ModelSide
from safemm.conformance.ops import (
    MADV_DONTNEED,
    MADV_WIPEONFORK,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Ftruncate,
    Madvise,
    Mlock,
    MmapFile,
    Op,
    Pread,
    Pwrite,
    Read,
    Write,
)

RW = PROT_READ | PROT_WRITE

OPS: list[Op] = [
    Pwrite(5, 7),
    Ftruncate(3 * PAGE_SIZE),
    MmapFile(2, 3, RW, True, 0),
    MmapFile(6, 3, RW, False, 0),
    Read(2, 5),  # the byte written with pwrite, through the shared mapping
    Write(3, 0, 9),  # a shared write reaches the file...
    Pread(PAGE_SIZE),
    Read(7, 0),  # ...and the private mapping, which has not copied that page
    Write(8, 0, 4),  # a private write is a copy
    Pread(2 * PAGE_SIZE),
    Madvise(6, 3, MADV_DONTNEED),  # drops the private copy: the file shows through again
    Read(8, 0),
    Write(8, 0, 4),
    Ftruncate(PAGE_SIZE + 3),  # zaps everything past the new end, private copies too
    Read(3, 0),
    Read(8, 0),
    Read(3, 100),
    Pread(PAGE_SIZE + 2),
    Pread(PAGE_SIZE + 3),
    Ftruncate(-1),
    Pread(-1),
    Madvise(6, 3, MADV_WIPEONFORK),
    Mlock(2, 3),
]
OUTCOMES = [
    "ok 0x1",
    "ok 0x0",
    "ok 0x2000",
    "ok 0x6000",
    "ok 0x7",
    "ok 0x0",
    "ok 0x9",
    "ok 0x9",
    "ok 0x0",
    "ok 0x0",
    "ok 0x0",
    "ok 0x0",
    "ok 0x0",
    "ok 0x0",
    "ok 0x9",
    "SIGBUS",
    "ok 0x0",
    "ok 0x0",
    "ok 0x100",
    "-EINVAL",
    "-EINVAL",
    "-EINVAL",
    "-ENOMEM",
]


def test_memfd_sequence(kernel_side: KernelSide, model_side: ModelSide) -> None:
    result = kernel_side.run(OPS)
    assert [str(step.outcome) for step in result.steps] == OUTCOMES, kernel_side.info.describe()
    assert str(result.steps[-1].layout) == (
        "[-2,2) ---p | [2,5) rw-s memfd@0 | [5,6) ---p | [6,9) rw-p memfd@0 | [9,18) ---p"
    )
    mismatch = compare(OPS, kernel=kernel_side, model=model_side)
    assert mismatch is None, f"\n{kernel_side.info.describe()}\n{mismatch}"
