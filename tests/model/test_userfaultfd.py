"""UFFDIO_REGISTER: fs/userfaultfd.c ``userfaultfd_register`` (``validate_range``, the VMA
scan, ``userfaultfd_register_range``) and include/linux/userfaultfd_k.h
``vma_can_userfault``."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Process
from safemm.model.mman import HPAGE_SIZE, MAP_FIXED, MAP_HUGETLB, MAP_SHARED, PROT_READ
from safemm.model.userfaultfd import UserfaultfdCtx, userfaultfd_register
from safemm.model.vm_flags import VM_MAYWRITE, VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP
from safemm.model.vm_flags_update import vm_flags_clear

from .strategies import ANON, RW, SHANON, P, TestDevice, assert_unchanged, layout, locked, snapshot

MISSING, WP, MINOR = 1, 2, 4


def test_anonymous_vma_can_register(k: Kernel, p: Process) -> None:
    """``vma_can_userfault``: anonymous VMAs are allowed; the VMA gets the mode's flags and
    the context."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.userfaultfd_register(a, 2 * P, MISSING | WP)
    v = p.mm.mm_mt.load(a)
    assert v is not None
    assert v.vm_flags & (VM_UFFD_MISSING | VM_UFFD_WP) == VM_UFFD_MISSING | VM_UFFD_WP
    assert v.vm_userfaultfd_ctx is p.uffd
    k.check_invariants()


def test_shmem_and_hugetlb_can_register(k: Kernel, p: Process) -> None:
    """``vma_can_userfault``: shmem and hugetlb VMAs are allowed, MINOR mode only there."""
    a = p.mmap(None, 2 * P, RW, SHANON)
    p.userfaultfd_register(a, 2 * P, MINOR)
    h = p.mmap(None, HPAGE_SIZE, RW, ANON | MAP_HUGETLB)
    p.userfaultfd_register(h, HPAGE_SIZE, MISSING | MINOR)
    for addr in (a, h):
        v = p.mm.mm_mt.load(addr)
        assert v is not None and v.vm_flags & VM_UFFD_MINOR


def test_minor_mode_on_anon_is_einval(k: Kernel, p: Process) -> None:
    """``vma_can_userfault``: VM_UFFD_MINOR needs hugetlb or shmem."""
    a = p.mmap(None, P, RW, ANON)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.userfaultfd_register(a, P, MINOR)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_driver_mixedmap_vma_is_einval(k: Kernel, p: Process) -> None:
    """``vma_can_userfault`` (H8): a driver's VM_MIXEDMAP VMA (it has vm_ops and is neither
    shmem nor hugetlb) cannot be registered → EINVAL; nothing changes."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, RW, MAP_SHARED, fd)
    b = p.mmap(a - 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    p.userfaultfd_register(b, P)  # creates the context; splits the anon VMA
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.userfaultfd_register(b, 4 * P)  # anon then driver VMA: refused before any change
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_vma_without_maywrite_is_eperm(k: Kernel, p: Process) -> None:
    """``userfaultfd_register``: a VMA without VM_MAYWRITE → EPERM."""
    a = p.mmap(None, P, PROT_READ, ANON)
    with locked(p) as mm:
        v = mm.mm_mt.load(a)
        assert v is not None
        vm_flags_clear(v, VM_MAYWRITE)
    with pytest.raises(KernelError) as ei:
        p.userfaultfd_register(a, P)
    assert ei.value.errno == errno.EPERM


def test_other_context_is_ebusy(k: Kernel, p: Process) -> None:
    """``userfaultfd_register``: a VMA owned by another userfaultfd → EBUSY."""
    a = p.mmap(None, P, RW, ANON)
    p.userfaultfd_register(a, P)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei, locked(p) as mm:
        userfaultfd_register(mm, UserfaultfdCtx(mm), a, P, MISSING)
    assert ei.value.errno == errno.EBUSY
    assert_unchanged(before, snapshot(k))


def test_partial_range_splits(k: Kernel, p: Process) -> None:
    """``userfaultfd_register_range`` → ``vma_modify_flags_uffd``: the range is split out."""
    a = p.mmap(None, 4 * P, RW, ANON)
    p.userfaultfd_register(a + P, 2 * P)
    assert [(s, e) for s, e, _ in layout(p)] == [
        (a, a + P),
        (a + P, a + 3 * P),
        (a + 3 * P, a + 4 * P),
    ]
    mid = p.mm.mm_mt.load(a + P)
    assert mid is not None and mid.vm_userfaultfd_ctx is p.uffd
    k.check_invariants()


def test_holes_are_skipped(k: Kernel, p: Process) -> None:
    """``userfaultfd_register``: only the first VMA must exist (``vma_find``); the scan and
    the registration walk the VMAs of the range (``for_each_vma_range``), skipping holes."""
    a = p.mmap(None, 6 * P, RW, ANON)
    p.munmap(a + 2 * P, 2 * P)
    p.userfaultfd_register(a + P, 4 * P)
    assert [(s, e) for s, e, _ in layout(p)] == [
        (a, a + P),
        (a + P, a + 2 * P),
        (a + 4 * P, a + 5 * P),
        (a + 5 * P, a + 6 * P),
    ]
    for addr in (a + P, a + 4 * P):
        v = p.mm.mm_mt.load(addr)
        assert v is not None and v.vm_flags & VM_UFFD_MISSING
    # a range starting in a hole is fine too, as long as a VMA intersects it
    b = p.mmap(None, 2 * P, RW, ANON)
    p.userfaultfd_register(b - 4 * P, 5 * P)
    v = p.mm.mm_mt.load(b)
    assert v is not None and v.vm_flags & VM_UFFD_MISSING and v.vm_end == b + P
    k.check_invariants()


@pytest.mark.parametrize(
    ("off", "length", "mode"),
    [
        (0, P, 0),  # no mode
        (0, P, 8),  # unknown mode bit
        (1, P, MISSING),  # unaligned start
        (0, P + 1, MISSING),  # unaligned length
        (0, 0, MISSING),  # zero length
        (16 * P, P, MISSING),  # no VMA in the range
    ],
)
def test_bad_arguments(k: Kernel, p: Process, off: int, length: int, mode: int) -> None:
    """``userfaultfd_register``/``validate_range``: EINVAL, nothing changed."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.userfaultfd_register(a, P)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.userfaultfd_register(a + off, length, mode)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_below_mmap_min_addr_is_einval(k: Kernel, p: Process) -> None:
    """``validate_unaligned_range``: ``start < mmap_min_addr`` → EINVAL."""
    p.mmap(0x10000, P, RW, ANON | MAP_FIXED)
    with pytest.raises(KernelError) as ei:
        p.userfaultfd_register(0x1000, 0x10000)
    assert ei.value.errno == errno.EINVAL


def test_hugetlb_alignment(k: Kernel, p: Process) -> None:
    """``userfaultfd_register``: a hugetlb VMA needs huge-page aligned start and end."""
    h = p.mmap(None, 2 * HPAGE_SIZE, RW, ANON | MAP_HUGETLB)
    for start, length in ((h + P, HPAGE_SIZE), (h, HPAGE_SIZE + P)):
        with pytest.raises(KernelError) as ei:
            p.userfaultfd_register(start, length)
        assert ei.value.errno == errno.EINVAL
    p.userfaultfd_register(h, HPAGE_SIZE)


def test_registered_vma_does_not_merge_with_unregistered(k: Kernel, p: Process) -> None:
    """``is_mergeable_vma``: the userfaultfd context must match."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.userfaultfd_register(a, P)
    p.mprotect(a, 2 * P, PROT_READ)
    assert p.mm.map_count == 2
    p.userfaultfd_register(a + P, P)  # same context now: merges back
    assert p.mm.map_count == 1
