"""mlock, munlock and MAP_LOCKED: mm/mlock.c ``do_mlock``, ``apply_vma_lock_flags``,
``mlock_fixup``; mm/gup.c ``__mm_populate``/``populate_vma_page_range``; mm/mmap.c
``__mmap_complete``; mm/mprotect.c ``mprotect_fixup``'s populate of a locked VMA made
writable. Results checked on Linux 6.18.44 where user space can reach them."""

from __future__ import annotations

import errno

import pytest

from safemm import MAP_LOCKED
from safemm.model import Kernel, KernelError, Process
from safemm.model.mman import MAP_FIXED, MAP_SHARED, PROT_NONE, PROT_READ
from safemm.model.vm_flags import VM_ACCOUNT, VM_LOCKED

from .strategies import ANON, RW, P, TestDevice, vma_at


def locked_spans(p: Process, base: int) -> list[tuple[int, int, bool]]:
    """``(start, end, VM_LOCKED)`` of each VMA, in pages from ``base``."""
    return [
        ((v.vm_start - base) // P, (v.vm_end - base) // P, bool(v.vm_flags & VM_LOCKED))
        for v in p.mm.vmas()
    ]


@pytest.fixture
def base(p: Process) -> int:
    """A 16-page PROT_NONE reservation with eight private writable pages at 4..12."""
    a = p.mmap(None, 16 * P, PROT_NONE, ANON)
    p.mmap(a + 4 * P, 8 * P, RW, ANON | MAP_FIXED)
    return a


def test_mlock_splits_populates_and_munlock_merges(k: Kernel, p: Process, base: int) -> None:
    """``mlock_fixup`` splits the range out with VM_LOCKED; ``__mm_populate`` faults it in for
    write (private writable: new anonymous pages, an anon_vma); munlock merges back."""
    p.mlock(base + 5 * P, 2 * P)
    assert locked_spans(p, base) == [
        (0, 4, False),
        (4, 5, False),
        (5, 7, True),
        (7, 12, False),
        (12, 16, False),
    ]
    assert p.mm.rss_anon == 2
    assert vma_at(p, base + 5 * P).anon_vma is not None
    p.munlock(base + 4 * P, 8 * P)
    assert locked_spans(p, base) == [(0, 4, False), (4, 12, False), (12, 16, False)]
    k.check_invariants()


def test_mlock_rounds_start_down(k: Kernel, p: Process, base: int) -> None:
    """``do_mlock``: ``len = PAGE_ALIGN(len + offset_in_page(start))``, start rounded down."""
    p.mlock(base + 4 * P + 5, 10)
    assert locked_spans(p, base)[1] == (4, 5, True)
    p.mlock(base + 5 * P + P - 1, 2)  # straddles pages 5 and 6
    assert locked_spans(p, base)[1] == (4, 7, True)


def test_mlock_prot_none_locks_then_fails(k: Kernel, p: Process, base: int) -> None:
    """The flags are applied first; the population then meets a PROT_NONE VMA, which
    ``check_vma_flags`` refuses (EFAULT, reported as ENOMEM): VM_LOCKED stays set."""
    with pytest.raises(KernelError) as ei:
        p.mlock(base + 2 * P, 2 * P)
    assert ei.value.errno == errno.ENOMEM
    assert locked_spans(p, base)[:3] == [(0, 2, False), (2, 4, True), (4, 12, False)]
    k.check_invariants()


def test_mlock_hole_is_enomem_after_locking(k: Kernel, p: Process, base: int) -> None:
    """``apply_vma_lock_flags``: the VMAs before a hole are locked, then ENOMEM; munlock over
    the same range unlocks them and fails the same way; a start in a hole changes nothing."""
    p.munmap(base + 10 * P, P)
    with pytest.raises(KernelError) as ei:
        p.mlock(base + 8 * P, 4 * P)
    assert ei.value.errno == errno.ENOMEM
    assert (8, 10, True) in locked_spans(p, base)
    with pytest.raises(KernelError) as ei:
        p.munlock(base + 8 * P, 4 * P)
    assert ei.value.errno == errno.ENOMEM
    assert not any(locked for _, _, locked in locked_spans(p, base))
    before = locked_spans(p, base)
    with pytest.raises(KernelError) as ei:
        p.mlock(base + 10 * P, P)
    assert ei.value.errno == errno.ENOMEM
    assert locked_spans(p, base) == before
    k.check_invariants()


def test_mlock_length_wrapping_to_zero_is_success(p: Process, base: int) -> None:
    """``PAGE_ALIGN(ULONG_MAX)`` wraps to 0: an empty range, success, nothing changes."""
    p.mlock(base + 4 * P, (1 << 64) - 1)
    assert not any(locked for _, _, locked in locked_spans(p, base))


def test_locked_written_range_keeps_account(k: Kernel, p: Process, base: int) -> None:
    """Population gave the VMA an anon_vma, so ``mprotect_fixup`` keeps VM_ACCOUNT when it is
    made read-only, and a never-writable read-only neighbour does not merge with it."""
    p.mlock(base + 4 * P, 8 * P)
    p.munlock(base + 4 * P, 8 * P)
    p.mprotect(base + 4 * P, 8 * P, PROT_READ)
    assert vma_at(p, base + 4 * P).vm_flags & VM_ACCOUNT
    p.mmap(base + 12 * P, 2 * P, PROT_READ, ANON | MAP_FIXED)
    assert vma_at(p, base + 12 * P).vm_start == base + 12 * P
    k.check_invariants()


def test_mprotect_locked_prot_none_to_writable_populates(k: Kernel, p: Process, base: int) -> None:
    """``mprotect_fixup``: a private VM_LOCKED VMA that becomes writable is populated."""
    with pytest.raises(KernelError):
        p.mlock(base, 2 * P)
    p.mprotect(base, 2 * P, RW)
    assert p.mm.rss_anon == 2
    assert vma_at(p, base).anon_vma is not None
    k.check_invariants()


def test_map_locked(k: Kernel, p: Process) -> None:
    """MAP_LOCKED: VM_LOCKED and populated (``mm_populate``, errors ignored, so PROT_NONE
    succeeds); a driver VMA (VM_MIXEDMAP, VM_SPECIAL) loses VM_LOCKED in ``__mmap_complete``;
    a fork child's copy drops VM_LOCKED (``dup_mmap``)."""
    a = p.mmap(None, 2 * P, RW, ANON | MAP_LOCKED)
    assert vma_at(p, a).vm_flags & VM_LOCKED
    assert p.mm.rss_anon == 2
    n = p.mmap(None, 2 * P, PROT_NONE, ANON | MAP_LOCKED)
    assert vma_at(p, n).vm_flags & VM_LOCKED
    TestDevice(k, "/dev/t")
    d = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED | MAP_LOCKED, p.open("/dev/t"))
    assert not vma_at(p, d).vm_flags & VM_LOCKED
    child = p.fork()
    assert not vma_at(child, a).vm_flags & VM_LOCKED
    k.check_invariants()


def test_mremap_grow_locked_populates(k: Kernel, p: Process) -> None:
    """mremap growing a VM_LOCKED mapping populates the new part (``vrm->mlocked``)."""
    a = p.mmap(None, 2 * P, RW, ANON | MAP_LOCKED)
    b = p.mremap(a, 2 * P, 4 * P, 1)
    assert vma_at(p, b).vm_flags & VM_LOCKED
    assert p.mm.rss_anon == 4
    k.check_invariants()
