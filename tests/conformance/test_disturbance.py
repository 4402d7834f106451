"""The executor never disturbs its own window, and never reaches outside it.

Over 200 seeded random sequences: no step raises ``Disturbance`` (nothing
foreign in the window or the moats), every page that an operation could not
have touched looks exactly the same after it (permissions, private/shared
backing, shmem object and page offset), the guard pages stay PROT_NONE until an
operation targets them, and a reset restores the initial layout. Separately,
the C helper's confinement rule agrees with the Python statement of it on a
grid of good and bad arguments.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from safemm.conformance.generator import random_sequences
from safemm.conformance.kernel_side import KernelExecutor, KernelSide, UnsafeOperation
from safemm.conformance.ops import (
    FAR,
    FAR2,
    GUARD_PAGES,
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_READ,
    REGION_PAGES,
    U64_MAX,
    WINDOW_END_PAGE,
    WINDOW_FIRST_PAGE,
    WRAP,
    Call,
    Fork,
    Ftruncate,
    InChild,
    Madvise,
    MadviseCall,
    Mlock,
    MlockCall,
    Mmap,
    MmapCall,
    MmapFile,
    Mprotect,
    MprotectCall,
    Mremap,
    MremapCall,
    Munlock,
    MunlockCall,
    Munmap,
    MunmapCall,
    Op,
    Pread,
    Pwrite,
    RawMadvise,
    RawMlock,
    RawMmap,
    RawMprotect,
    RawMremap,
    RawMunlock,
    RawMunmap,
    Read,
    ReadCall,
    Write,
    confinement_error,
)

WINDOW = range(WINDOW_FIRST_PAGE, WINDOW_END_PAGE)
GUARDS = [*range(WINDOW_FIRST_PAGE, 0), *range(REGION_PAGES, WINDOW_END_PAGE)]


def _span(addr: int, length: int) -> set[int]:
    """Window pages that [addr, addr + length) (region-relative bytes) could touch."""
    if addr >= FAR or length == 0:
        return set()
    first = addr // PAGE_SIZE
    end = WINDOW_END_PAGE if length >= FAR else -(-(addr + length) // PAGE_SIZE)
    return set(range(max(first, WINDOW_FIRST_PAGE), min(end, WINDOW_END_PAGE)))


def touched(op: Op) -> set[int]:
    """Every window page that ``op`` could change, whatever it returns."""
    match op:
        case Mmap(page, npages, _, _) | Munmap(page, npages) | Mprotect(page, npages, _):
            return set(range(page, page + npages))
        case Mremap(old, old_n, new_n, _, new):
            pages = set(range(old, old + max(old_n, new_n)))
            return pages if new is None else pages | set(range(new, new + new_n))
        case Read() | Write() | Fork() | InChild():
            return set()  # a fork and the child's calls never change the parent's layout
        case (
            RawMmap(addr, length, _, _, _, _)
            | RawMunmap(addr, length)
            | RawMprotect(addr, length, _)
        ):
            return _span(addr, length)
        case RawMremap(old, old_len, new_len, _, new):
            pages = _span(old, max(old_len, new_len))
            return pages if new is None else pages | _span(new, new_len)
        case Madvise(page, npages, _) | Mlock(page, npages) | Munlock(page, npages):
            return set(range(page, page + npages))
        case MmapFile(page, npages, _, _, _):
            return set(range(page, page + npages))
        case Ftruncate() | Pread() | Pwrite():
            return set()
        case RawMadvise(addr, length, _):
            return _span(addr, length)
        case RawMlock(addr, length) | RawMunlock(addr, length):
            # the start is rounded down to its page, the length up
            return _span(addr - addr % PAGE_SIZE, (length + addr % PAGE_SIZE) % (1 << 64))


def test_two_hundred_sequences_never_disturb_the_window(kernel_side: KernelSide) -> None:
    sequences = list(random_sequences(200, seed=20261126))
    steps = 0
    for ops in sequences:
        result = kernel_side.run(ops)  # raises Disturbance on anything foreign
        assert str(result.initial) == "[-2,18) ---p"
        before = result.initial
        targeted: set[int] = set()
        for op, step in zip(ops, result.steps, strict=True):
            steps += 1
            changed = touched(op)
            targeted |= changed
            for page in WINDOW:
                if page not in changed:
                    assert step.layout.page_view(page) == before.page_view(page), (ops, op, page)
            for page in GUARDS:
                if page not in targeted:
                    assert step.layout.page_view(page) == ("---p", "anon", 0), (ops, op, page)
            before = step.layout
    assert steps > 1500


def test_window_stays_where_it_was(
    kernel_executor: KernelExecutor, kernel_side: KernelSide
) -> None:
    base = kernel_executor.region_base
    assert base == kernel_executor.window_lo + GUARD_PAGES * PAGE_SIZE
    assert kernel_executor.moat_lo < kernel_executor.window_lo < kernel_executor.window_hi
    assert kernel_executor.window_hi < kernel_executor.moat_hi
    for ops in random_sequences(20, seed=3):
        kernel_side.run(ops)
    assert kernel_executor.region_base == base


def _grid(lo: int, hi: int) -> list[Call]:
    addresses = [
        lo - PAGE_SIZE,
        lo,
        lo + 1,
        lo + 5 * PAGE_SIZE,
        hi - PAGE_SIZE,
        hi,
        hi + PAGE_SIZE,
        lo + FAR,
        FAR2,
    ]
    lengths = [
        0,
        1,
        PAGE_SIZE,
        2 * PAGE_SIZE,
        hi - lo,
        hi - lo + PAGE_SIZE,
        1 << 40,
        FAR,
        WRAP,
        U64_MAX,
    ]
    flags = [
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
        MAP_PRIVATE | MAP_ANONYMOUS,
    ]
    remap_flags = [
        0,
        MREMAP_MAYMOVE,
        MREMAP_MAYMOVE | MREMAP_FIXED,
        MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
    ]
    calls: list[Call] = []
    for addr, length in itertools.product(addresses, lengths):
        calls += [MunmapCall(addr, length), MprotectCall(addr, length, PROT_READ)]
        calls += [MmapCall(addr, length, PROT_READ, flag, -1, 0) for flag in flags]
    for old, old_len, new_len, flag in itertools.product(
        addresses[:6], lengths[:6], lengths[:7], remap_flags
    ):
        calls.append(
            MremapCall(
                old, old_len, new_len, flag, lo + 4 * PAGE_SIZE if flag & MREMAP_FIXED else None
            )
        )
    for new_addr, new_len in itertools.product(addresses, lengths):
        calls.append(MremapCall(lo, PAGE_SIZE, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, new_addr))
    calls += [ReadCall(addr) for addr in addresses]
    for addr, length in itertools.product(addresses, lengths):
        calls += [MlockCall(addr, length), MunlockCall(addr, length)]
        calls += [MadviseCall(addr, length, advice) for advice in (MADV_DONTNEED, 999, 0)]
    return calls


def test_c_and_python_confinement_rules_agree(executor_binary: Path) -> None:
    """Run a grid of calls; the helper refuses exactly those Python calls unconfined.

    A private helper is used, so that whatever the grid does cannot affect other tests.
    """
    with KernelExecutor(executor_binary) as executor:
        lo, hi = executor.window_lo, executor.window_hi
        disagreements = []
        for call in _grid(lo, hi):
            executor.reset()
            expected = confinement_error(call, lo, hi)
            try:
                executor.perform(call)
                refused = None
            except UnsafeOperation as exc:
                refused = str(exc)
            if (expected is None) != (refused is None):
                disagreements.append((call, expected, refused))
        assert disagreements == []


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_sequences_are_never_refused(kernel_side: KernelSide, seed: int) -> None:
    for ops in random_sequences(100, seed=seed):
        kernel_side.run(ops)  # UnsafeOperation would propagate
