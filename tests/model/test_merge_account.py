"""Issue 10: which neighbours merge after a PROT_NONE reservation is carved up.

The rules are those of mm/mprotect.c ``mprotect_fixup`` (VM_ACCOUNT is added when a private
mapping first becomes writable, and dropped again on the way back only while the VMA has no
anon_vma) and mm/vma.c ``is_mergeable_vma`` (VM_ACCOUNT is compared),
``is_mergeable_anon_vma`` (an anon_vma-less range merges with a neighbour's anon_vma unless
that neighbour was cloned by fork) and ``vma_merge_new_range`` (a new mapping merged into a
written neighbour shares its anon_vma). Every expected layout here was checked on Linux
6.18.44 (the same sequences run against the kernel in tests/conformance/test_merge_anon_vma.py).

The disagreement reported in the issue came from outside the compared range: the kernel
placed the reservation directly below a written private mapping of the checking process, the
``MAP_FIXED`` writable piece merged into that mapping and so had an anon_vma, and mprotect
kept its VM_ACCOUNT. :func:`test_issue_10_written_neighbour` makes that neighbour visible.
"""

from __future__ import annotations

import pytest

from safemm.model import Kernel, Process
from safemm.model.mman import MAP_FIXED, PROT_EXEC, PROT_NONE, PROT_READ
from safemm.model.vm_flags import VM_ACCOUNT

from .strategies import ANON, RW, P, vma_at

RX = PROT_READ | PROT_EXEC
FIXED = ANON | MAP_FIXED


def pages(p: Process, base: int) -> str:
    """The VMAs of ``p`` as ``start-end perms`` in pages from ``base``, like the issue."""
    out = []
    for line in p.maps().splitlines():
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        out.append(f"{(start - base) // P}-{(end - base) // P} {perms}")
    return "  ".join(out)


@pytest.fixture
def base(p: Process) -> int:
    """A 16-page PROT_NONE reservation with an 8-page unmapped gap above it."""
    reserved = p.mmap(None, 24 * P, PROT_NONE, ANON)
    p.munmap(reserved + 16 * P, 8 * P)
    return reserved


def test_issue_10_exact_sequence_merges(k: Kernel, p: Process, base: int) -> None:
    """The issue's three calls on their own: the writable piece never faulted, so it has no
    anon_vma and ``mprotect_fixup`` drops its VM_ACCOUNT; both r-x pieces then have the same
    flags and ``vma_merge_existing_range`` merges them (the kernel does the same)."""
    p.mmap(base + 12 * P, 4 * P, RW, FIXED)
    assert vma_at(p, base + 12 * P).vm_flags & VM_ACCOUNT
    p.mprotect(base + 9 * P, 4 * P, RX)
    assert pages(p, base) == "0-9 ---p  9-13 r-xp  13-16 rw-p"
    assert not vma_at(p, base + 9 * P).vm_flags & VM_ACCOUNT
    k.check_invariants()


@pytest.mark.parametrize("page", [12, 13, 15])
def test_issue_10_written_piece_keeps_apart(k: Kernel, p: Process, base: int, page: int) -> None:
    """A store anywhere in the writable piece gives it an anon_vma (``do_anonymous_page`` →
    ``anon_vma_prepare``); split pieces keep it, so ``mprotect_fixup`` keeps VM_ACCOUNT on
    ``[12, 13)`` and ``is_mergeable_vma`` refuses the never-writable ``[9, 12)``: the
    kernel's layout in the issue."""
    p.mmap(base + 12 * P, 4 * P, RW, FIXED)
    p.write(base + page * P, b"x")
    p.mprotect(base + 9 * P, 4 * P, RX)
    assert pages(p, base) == "0-9 ---p  9-12 r-xp  12-13 r-xp  13-16 rw-p"
    assert vma_at(p, base + 12 * P).vm_flags & VM_ACCOUNT
    assert vma_at(p, base + 12 * P).anon_vma is not None
    assert not vma_at(p, base + 9 * P).vm_flags & VM_ACCOUNT
    k.check_invariants()


def test_issue_10_written_neighbour(k: Kernel, p: Process, base: int) -> None:
    """The issue's case as it happened: a written mapping right above the reservation. The
    new writable piece merges into it (``vma_merge_new_range``, ``is_mergeable_anon_vma``
    with a NULL anon_vma), so it has an anon_vma without ever faulting, and the r-x pieces
    stay apart. Clipped to the 16 pages, this is the issue's kernel layout."""
    p.mmap(base + 16 * P, 2 * P, RW, FIXED)
    p.write(base + 16 * P, b"x")
    p.mmap(base + 12 * P, 4 * P, RW, FIXED)
    assert pages(p, base) == "0-12 ---p  12-18 rw-p"
    assert vma_at(p, base + 12 * P).anon_vma is not None
    p.mprotect(base + 9 * P, 4 * P, RX)
    assert pages(p, base) == "0-9 ---p  9-12 r-xp  12-13 r-xp  13-18 rw-p"
    k.check_invariants()


def test_unwritten_neighbour_merges(k: Kernel, p: Process, base: int) -> None:
    """The same neighbour never written: no anon_vma anywhere, VM_ACCOUNT dropped, merged."""
    p.mmap(base + 16 * P, 2 * P, RW, FIXED)
    p.mmap(base + 12 * P, 4 * P, RW, FIXED)
    p.mprotect(base + 9 * P, 4 * P, RX)
    assert pages(p, base) == "0-9 ---p  9-13 r-xp  13-18 rw-p"
    k.check_invariants()


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (False, "0-8 r--p  8-16 ---p"),
        (True, "0-4 r--p  4-8 r--p  8-16 ---p"),
    ],
)
def test_once_writable_next_to_never_writable(
    k: Kernel, p: Process, base: int, written: bool, expected: str
) -> None:
    """A range made writable and read-only again next to a new read-only mapping: merged
    unless it was written in between (then VM_ACCOUNT stays: ``mprotect_fixup`` "cannot
    reduce our commit if we make it unwritable again" once there is an anon_vma)."""
    p.mprotect(base, 4 * P, RW)
    if written:
        p.write(base, b"x")
    p.mprotect(base, 4 * P, PROT_READ)
    p.mmap(base + 4 * P, 4 * P, PROT_READ, FIXED)
    assert pages(p, base) == expected
    k.check_invariants()


def test_once_written_prot_none_stays_apart(k: Kernel, p: Process, base: int) -> None:
    """Three PROT_NONE VMAs side by side: the middle one was written once and keeps
    VM_ACCOUNT, so it never merges back into the reservation, even when all three are
    mprotected alike."""
    p.mprotect(base + 4 * P, 4 * P, RW)
    p.write(base + 4 * P, b"x")
    p.mprotect(base + 4 * P, 4 * P, PROT_NONE)
    assert pages(p, base) == "0-4 ---p  4-8 ---p  8-16 ---p"
    p.mprotect(base, 16 * P, PROT_READ)
    assert pages(p, base) == "0-4 r--p  4-8 r--p  8-16 r--p"
    assert p.read(base + 4 * P, 1) == b"x"
    k.check_invariants()


def test_fork_child_does_not_merge_with_cloned_anon_vma(k: Kernel, p: Process, base: int) -> None:
    """``is_mergeable_anon_vma``: in the child the written VMA's anon_vma chain is not
    singular (``anon_vma_fork``), so a new anon_vma-less neighbour does not merge with it,
    on either side; in the parent both merge."""
    p.mmap(base + 4 * P, 8 * P, RW, FIXED)
    p.write(base + 4 * P, b"x")
    child = p.fork()
    for q in (child, p):
        q.mmap(base + 12 * P, 2 * P, RW, FIXED)
        q.mprotect(base + 2 * P, 2 * P, RW)
    assert pages(child, base) == "0-2 ---p  2-4 rw-p  4-12 rw-p  12-14 rw-p  14-16 ---p"
    assert pages(p, base) == "0-2 ---p  2-14 rw-p  14-16 ---p"
    k.check_invariants()
