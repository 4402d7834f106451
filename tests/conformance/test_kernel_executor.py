"""The real-kernel executor on known sequences: the results Linux must give.

These expectations hold on every kernel the suite supports (>= 4.17); the
version-specific behaviour (e.g. 6.17's multi-VMA mremap moves) is left to the
differential comparison, which takes the running kernel as the reference.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from safemm.conformance.kernel_side import (
    CFLAGS,
    KernelExecutor,
    KernelSide,
    UnsafeOperation,
)
from safemm.conformance.layout import LayoutReader
from safemm.conformance.ops import (
    FAR,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    U64_MAX,
    WRAP,
    Mmap,
    MmapCall,
    Mprotect,
    Mremap,
    Munmap,
    MunmapCall,
    Op,
    RawMmap,
    RawMprotect,
    RawMremap,
    RawMunmap,
    Read,
    Write,
)

RW = PROT_READ | PROT_WRITE
PRIVATE = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
SHARED = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED
INITIAL = "[-2,18) ---p"


def outcomes(side: KernelSide, ops: list[Op]) -> list[str]:
    return [str(step.outcome) for step in side.run(ops).steps]


def layouts(side: KernelSide, ops: list[Op]) -> list[str]:
    return [str(step.layout) for step in side.run(ops).steps]


def test_initial_layout_is_one_prot_none_vma(kernel_side: KernelSide) -> None:
    result = kernel_side.run([])
    assert str(result.initial) == INITIAL
    assert result.steps == ()


def test_munmap_in_the_middle_splits(kernel_side: KernelSide) -> None:
    ops: list[Op] = [Mmap(0, 4, RW, PRIVATE), Munmap(1, 1)]
    assert outcomes(kernel_side, ops) == ["ok 0x0", "ok 0x0"]
    assert layouts(kernel_side, ops) == [
        "[-2,0) ---p | [0,4) rw-p | [4,18) ---p",
        "[-2,0) ---p | [0,1) rw-p | [2,4) rw-p | [4,18) ---p",
    ]


def test_mprotect_splits_then_merges_back(kernel_side: KernelSide) -> None:
    ops: list[Op] = [Mmap(0, 4, RW, PRIVATE), Mprotect(2, 1, PROT_READ), Mprotect(2, 1, RW)]
    assert outcomes(kernel_side, ops) == ["ok 0x0"] * 3
    assert layouts(kernel_side, ops)[1:] == [
        "[-2,0) ---p | [0,2) rw-p | [2,3) r--p | [3,4) rw-p | [4,18) ---p",
        "[-2,0) ---p | [0,4) rw-p | [4,18) ---p",
    ]


def test_mremap_grows_in_place_only_into_a_hole(kernel_side: KernelSide) -> None:
    ops: list[Op] = [Mmap(0, 2, RW, PRIVATE), Mremap(0, 2, 3), Munmap(2, 1), Mremap(0, 2, 3)]
    assert outcomes(kernel_side, ops) == ["ok 0x0", "-ENOMEM", "ok 0x0", "ok 0x0"]
    assert layouts(kernel_side, ops)[-1] == "[-2,0) ---p | [0,3) rw-p | [3,18) ---p"


def test_malformed_arguments(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        RawMunmap(0x1001, PAGE_SIZE),  # unaligned
        RawMunmap(0, 0),  # zero length
        RawMprotect(0, 0, PROT_READ),  # zero length is a no-op for mprotect
        RawMmap(0, 0, RW, PRIVATE),
        RawMmap(FAR, PAGE_SIZE, RW, PRIVATE),  # past TASK_SIZE
        RawMunmap(FAR, PAGE_SIZE),
        RawMprotect(0, WRAP, PROT_READ),  # end wraps around
        RawMmap(0, U64_MAX, RW, PRIVATE),  # PAGE_ALIGN overflows
        RawMremap(FAR, PAGE_SIZE, PAGE_SIZE),  # no VMA there
        RawMremap(0, PAGE_SIZE, PAGE_SIZE, 0x8),  # unknown flag
        RawMremap(0, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, PAGE_SIZE),  # FIXED without MAYMOVE
        RawMmap(0, PAGE_SIZE, RW, MAP_ANONYMOUS | MAP_FIXED),  # no mapping type
        RawMmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED),  # not anonymous, fd -1
        RawMmap(0, PAGE_SIZE, RW, PRIVATE, offset=1),  # unaligned offset
    ]
    assert outcomes(kernel_side, ops) == [
        "-EINVAL",
        "-EINVAL",
        "ok 0x0",
        "-EINVAL",
        "-ENOMEM",
        "-EINVAL",
        "-ENOMEM",
        "-ENOMEM",
        "-EFAULT",
        "-EINVAL",
        "-EINVAL",
        "-EINVAL",
        "-EBADF",
        "-EINVAL",
    ]
    assert all(layout == INITIAL for layout in layouts(kernel_side, ops))


def test_loads_and_stores_fault_where_maps_says(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        Read(0),  # PROT_NONE reservation
        Mmap(0, 1, RW, PRIVATE),
        Read(0, 5),  # fresh anonymous memory reads zero
        Write(0, 5, 0xAB),
        Read(0, 5),
        Read(-1),  # guard page
        Munmap(1, 1),
        Write(1, 0, 1),  # hole
        Mprotect(0, 1, PROT_READ),
        Write(0, 0, 1),  # read-only
        Read(0, 5),
        Mmap(2, 1, PROT_WRITE, PRIVATE),
        Read(2),  # -w- : readable on x86, not comparable
        Write(2, 0, 1),
    ]
    assert outcomes(kernel_side, ops) == [
        "SIGSEGV",
        "ok 0x0",
        "ok 0x0",
        "ok 0x0",
        "ok 0xab",
        "SIGSEGV",
        "ok 0x0",
        "SIGSEGV",
        "ok 0x0",
        "SIGSEGV",
        "ok 0xab",
        "ok 0x2000",
        "skipped (load from a -w-p page is architecture-dependent)",
        "ok 0x0",
    ]


def test_shared_anonymous_growth_past_the_object_is_sigbus(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        Mmap(0, 2, RW, SHARED),
        Munmap(2, 1),
        Mremap(0, 2, 3),
        Write(1, 0, 1),
        Read(2),  # beyond the shmem object's size
    ]
    assert outcomes(kernel_side, ops) == ["ok 0x0", "ok 0x0", "ok 0x0", "ok 0x0", "SIGBUS"]
    assert layouts(kernel_side, ops)[-1] == "[-2,0) ---p | [0,3) rw-s shmem#0@0 | [3,18) ---p"


def test_fixed_noreplace_refuses_to_replace(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        Mmap(0, 1, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE),
        Munmap(0, 1),
        Mmap(0, 1, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE),
    ]
    assert outcomes(kernel_side, ops) == ["-EEXIST", "ok 0x0", "ok 0x0"]


def test_mremap_move_carries_the_data(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        Mmap(0, 2, RW, PRIVATE),
        Write(1, 7, 0x5A),
        Mremap(0, 2, 2, MOVE, 8),
        Read(9, 7),
        Read(1, 7),  # the source is gone
        Mremap(8, 2, 2, MOVE, 9),  # overlapping source and target
    ]
    assert outcomes(kernel_side, ops) == [
        "ok 0x0",
        "ok 0x0",
        "ok 0x8000",
        "ok 0x5a",
        "SIGSEGV",
        "-EINVAL",
    ]
    assert layouts(kernel_side, ops)[2] == "[-2,0) ---p | [2,8) ---p | [8,10) rw-p | [10,18) ---p"


def test_shared_objects_keep_identity_and_page_offset(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        Mmap(0, 4, RW, SHARED),
        Munmap(0, 1),
        Mmap(6, 1, PROT_READ, SHARED),
        Mremap(1, 3, 3, MOVE, 10),
    ]
    assert layouts(kernel_side, ops) == [
        "[-2,0) ---p | [0,4) rw-s shmem#0@0 | [4,18) ---p",
        "[-2,0) ---p | [1,4) rw-s shmem#0@1 | [4,18) ---p",
        "[-2,0) ---p | [1,4) rw-s shmem#0@1 | [4,6) ---p | [6,7) r--s shmem#1@0 | [7,18) ---p",
        "[-2,0) ---p | [4,6) ---p | [6,7) r--s shmem#1@0 | [7,10) ---p | [10,13) rw-s shmem#0@1 "
        "| [13,18) ---p",
    ]


def test_exec_only_pages_show_in_maps(kernel_side: KernelSide) -> None:
    ops: list[Op] = [Mmap(0, 1, PROT_EXEC, PRIVATE), Mprotect(0, 1, PROT_NONE)]
    assert layouts(kernel_side, ops) == [
        "[-2,0) ---p | [0,1) --xp | [1,18) ---p",
        INITIAL,  # PROT_NONE again, never written: merges back
    ]


def test_unsafe_calls_are_refused_without_running(kernel_executor: KernelExecutor) -> None:
    kernel_executor.reset()
    base = kernel_executor.region_base
    with pytest.raises(UnsafeOperation, match="not confined"):
        kernel_executor.perform(MunmapCall(base, 1 << 40))
    with pytest.raises(UnsafeOperation, match="MAP_FIXED"):
        kernel_executor.perform(
            MmapCall(base, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        )
    with pytest.raises(UnsafeOperation, match="kernel's choice"):
        kernel_executor.perform(RawMremap(0, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE).call(base))
    with pytest.raises(UnsafeOperation, match="outside the window"):
        kernel_executor.perform(Read(40).call(base))
    # still serving, window untouched
    outcome, lines = kernel_executor.perform(Munmap(0, 0).call(base))
    assert str(outcome) == "-EINVAL"
    assert str(LayoutReader(base).read(lines)) == INITIAL


def test_reset_and_reuse_give_identical_results(
    kernel_side: KernelSide, executor_binary: Path
) -> None:
    ops: list[Op] = [
        Mmap(0, 4, RW, SHARED),
        Write(2, 0, 9),
        Mprotect(1, 2, PROT_READ),
        Mremap(0, 4, 4, MOVE, 8),
        Read(10),
        Munmap(9, 1),
    ]
    first = kernel_side.run(ops)
    assert kernel_side.run(ops) == first
    with KernelSide(KernelExecutor(executor_binary)) as fresh:
        assert fresh.executor.region_base != 0
        assert fresh.run(ops) == first


def test_executor_compiles_warning_free(tmp_path: Path, executor_binary: Path) -> None:
    gcc = shutil.which("gcc")
    assert gcc is not None
    source = Path(__file__).resolve().parents[2] / "src" / "safemm" / "conformance" / "executor.c"
    if not source.exists():
        import importlib.resources

        source = tmp_path / "executor.c"
        source.write_bytes(
            importlib.resources.files("safemm.conformance").joinpath("executor.c").read_bytes()
        )
    result = subprocess.run(
        [gcc, *CFLAGS, "-Werror", "-o", str(tmp_path / "executor"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
