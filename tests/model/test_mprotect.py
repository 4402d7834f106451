"""mprotect(2): mm/mprotect.c ``do_mprotect_pkey``, ``mprotect_fixup``, ``change_protection``
(``change_pte_range``, ``can_change_pte_writable``) and mm/vma.c ``vma_modify_flags``."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Process, SegmentationFault
from safemm.model.errors import SEGV_ACCERR
from safemm.model.mman import (
    MAP_FIXED,
    MAP_GROWSDOWN,
    MAP_SHARED,
    PAGE_SHIFT,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_NONE,
    PROT_READ,
    PROT_SEM,
)
from safemm.model.vm_flags import VM_ACCOUNT, VM_GROWSDOWN, VM_MAYWRITE, VM_READ, VM_WRITE
from safemm.testing import SplatKind, expect_splat

from .strategies import (
    ANON,
    RW,
    P,
    TestDevice,
    assert_unchanged,
    layout,
    snapshot,
    vma_at,
)


def pte_write(p: Process, addr: int) -> bool:
    pte = p.mm.pgtables.lookup(addr >> PAGE_SHIFT)
    assert pte is not None
    return pte.write


def test_split_then_merge_back(k: Kernel, p: Process) -> None:
    """``vma_modify_flags``: changing the middle splits the VMA in three (``split_vma`` twice);
    changing it back merges all three (``vma_merge_existing_range``, merge_both)."""
    a = p.mmap(None, 6 * P, RW, ANON)
    for i in range(6):
        p.write(a + i * P, b"x")
    p.mprotect(a + 2 * P, 2 * P, PROT_READ)
    assert layout(p) == [
        (a, a + 2 * P, 0x73),
        (a + 2 * P, a + 4 * P, 0x71),
        (a + 4 * P, a + 6 * P, 0x73),
    ]
    mid = vma_at(p, a + 2 * P)
    assert mid.anon_vma is vma_at(p, a).anon_vma  # the split cloned the anon_vma
    p.mprotect(a + 2 * P, 2 * P, RW)
    assert layout(p) == [(a, a + 6 * P, 0x73)]
    assert vma_at(p, a).vm_pgoff == a >> PAGE_SHIFT
    k.check_invariants()


def test_merge_with_left_and_right_neighbours(p: Process) -> None:
    """``vma_merge_existing_range``: a change at the left edge extends prev and shrinks vma;
    a change at the right edge shrinks vma and extends next."""
    a = p.mmap(None, 6 * P, PROT_READ, ANON)
    p.mprotect(a + 2 * P, 2 * P, RW)
    assert len(layout(p)) == 3
    p.mprotect(a + 2 * P, P, PROT_READ)  # left edge of the middle → joins prev
    assert layout(p) == [
        (a, a + 3 * P, 0x71),
        (a + 3 * P, a + 4 * P, 0x73),
        (a + 4 * P, a + 6 * P, 0x71),
    ]
    p.mprotect(a + 3 * P, P, PROT_READ)  # the whole middle → all three merge
    assert layout(p) == [(a, a + 6 * P, 0x71)]


def test_existing_ptes_are_rewritten(k: Kernel, p: Process) -> None:
    """``change_protection``: present PTEs follow the new protection — read-only after
    PROT_READ, inaccessible after PROT_NONE, and exclusive dirty anonymous pages are made
    writable again directly (``can_change_pte_writable``)."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.write(a, b"data")
    assert pte_write(p, a)
    p.mprotect(a, 2 * P, PROT_READ)
    assert not pte_write(p, a)
    assert p.read(a, 4) == b"data"
    with pytest.raises(SegmentationFault) as ei:
        p.write(a, b"no")
    assert ei.value.code == SEGV_ACCERR
    p.mprotect(a, 2 * P, PROT_NONE)
    with pytest.raises(SegmentationFault) as ei:
        p.read(a, 1)
    assert ei.value.code == SEGV_ACCERR
    p.mprotect(a, 2 * P, RW)
    assert pte_write(p, a)  # exclusive anon page: no write fault needed
    p.write(a, b"DATA")
    assert p.read(a, 4) == b"DATA"
    k.check_invariants()


def test_shared_device_ptes_lose_write(k: Kernel, p: Process) -> None:
    """``change_protection`` on a shared driver mapping: inserted pages become read-only;
    restoring PROT_WRITE makes them writable again (shared writable ``vm_page_prot``)."""
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, RW, MAP_SHARED, fd)
    assert pte_write(p, a)
    p.mprotect(a, 2 * P, PROT_READ)
    assert not pte_write(p, a)
    with pytest.raises(SegmentationFault):
        p.write(a, b"x")
    assert dev.pool[0].read(0, 4) == b"dev0"
    k2 = Kernel(strict=False)  # H9 (gaining VM_WRITE after insert) is a strict-mode report
    q = k2.spawn()
    dev2 = TestDevice(k2, "/dev/t")
    fd2 = q.open("/dev/t")
    b = q.mmap(None, P, PROT_READ, MAP_SHARED, fd2)
    q.mprotect(b, P, RW)
    assert pte_write(q, b)
    q.write(b, b"w")
    assert dev2.pool[0].read(0, 1) == b"w"


def test_gaining_write_after_insert_is_reported_in_strict_mode(k: Kernel, p: Process) -> None:
    """Strict mode (H9, beyond Linux): a driver VMA with inserted pages gaining VM_WRITE."""

    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    with expect_splat("access-after-insert", SplatKind.STRICT):
        p.mprotect(a, P, RW)


def test_may_ceiling_is_eacces(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: an access bit without its VM_MAY* bit → EACCES, unchanged."""
    TestDevice(k, "/dev/t", clear_flags=VM_MAYWRITE)
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a, 2 * P, RW)
    assert ei.value.errno == errno.EACCES
    assert_unchanged(before, snapshot(k))


def test_eacces_after_changing_what_precedes(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey`` applies the change VMA by VMA: the VMAs before the one whose
    ceiling forbids it are changed, then EACCES."""
    TestDevice(k, "/dev/t", clear_flags=VM_MAYWRITE)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, ANON)
    p.mmap(a + 4 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a + P, 5 * P, RW)
    assert ei.value.errno == errno.EACCES
    assert [(s, e, f & 7) for s, e, f in layout(p)] == [
        (a, a + P, 1),
        (a + P, a + 4 * P, 3),
        (a + 4 * P, a + 6 * P, 1),
    ]
    k.check_invariants()


def test_hole_is_enomem_after_changing_what_precedes(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: a hole in the range → ENOMEM, but the VMAs before it were
    already changed (Linux applies part of the call)."""
    a = p.mmap(None, 6 * P, PROT_READ, ANON)
    p.munmap(a + 3 * P, P)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a + P, 5 * P, RW)
    assert ei.value.errno == errno.ENOMEM
    assert [(s, e, f & 7) for s, e, f in layout(p)] == [
        (a, a + P, 1),
        (a + P, a + 3 * P, 3),
        (a + 4 * P, a + 6 * P, 1),
    ]
    # a range running past the last VMA: the same
    with pytest.raises(KernelError) as ei:
        p.mprotect(a + 4 * P, 4 * P, PROT_NONE)
    assert ei.value.errno == errno.ENOMEM
    assert layout(p)[-1][2] & 7 == 0
    k.check_invariants()


def test_start_in_a_hole_changes_nothing(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: no VMA at start (``vma->vm_start > start``) → ENOMEM at once."""
    a = p.mmap(None, 4 * P, PROT_READ, ANON)
    p.munmap(a, P)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a, 4 * P, RW)
    assert ei.value.errno == errno.ENOMEM
    with pytest.raises(KernelError) as ei:
        p.mprotect(0x10000, P, RW)
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))


@pytest.mark.parametrize(
    ("off", "length", "prot", "err"),
    [
        (1, P, PROT_READ, errno.EINVAL),  # unaligned start
        (0, P, 0x80, errno.EINVAL),  # !arch_validate_prot
        (0, P, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP, errno.EINVAL),
        (0, (1 << 64) - 1, PROT_READ, errno.ENOMEM),  # PAGE_ALIGN wraps to 0: end <= start
        (0, -P, PROT_READ, errno.ENOMEM),  # end = start + len wraps
        (0, P, PROT_READ | PROT_GROWSDOWN, errno.EINVAL),  # not a VM_GROWSDOWN VMA
        (0, P, PROT_READ | PROT_GROWSUP, errno.EINVAL),  # x86 has no VM_GROWSUP
    ],
)
def test_bad_arguments(k: Kernel, p: Process, off: int, length: int, prot: int, err: int) -> None:
    """``do_mprotect_pkey`` argument checks, each leaving the model unchanged."""
    a = p.mmap(None, 4 * P, RW, ANON)
    p.read(a, 1)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a + off, length, prot)
    assert ei.value.errno == err
    assert_unchanged(before, snapshot(k))


def test_zero_length_is_a_no_op_even_unmapped(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: ``if (!len) return 0`` before any lookup."""
    before = snapshot(k)
    p.mprotect(0x1234_0000, 0, RW)
    assert_unchanged(before, snapshot(k))


def test_growsdown_without_vma_is_enomem(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: PROT_GROWSDOWN is judged after the lookup: no VMA → ENOMEM."""
    with pytest.raises(KernelError) as ei:
        p.mprotect(0x1234_0000, P, PROT_READ | PROT_GROWSDOWN)
    assert ei.value.errno == errno.ENOMEM


def test_growsdown_extends_to_the_vma_start(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: with PROT_GROWSDOWN on a VM_GROWSDOWN VMA, ``start`` becomes
    ``vma->vm_start``."""
    a = p.mmap(None, 4 * P, RW, ANON | MAP_GROWSDOWN)
    assert vma_at(p, a).vm_flags & VM_GROWSDOWN
    p.mprotect(a + 2 * P, P, PROT_READ | PROT_GROWSDOWN)
    assert [(s, e, f & 7) for s, e, f in layout(p)] == [
        (a, a + 3 * P, 1),
        (a + 3 * P, a + 4 * P, 3),
    ]


def test_unknown_prot_bit_sem_is_accepted(p: Process) -> None:
    """``arch_validate_prot`` (generic): PROT_SEM is a valid bit."""
    a = p.mmap(None, P, RW, ANON)
    p.mprotect(a, P, PROT_READ | PROT_SEM)
    assert vma_at(p, a).vm_flags & 7 == VM_READ


def test_vm_account_dropped_for_untouched_anon(p: Process) -> None:
    """``mprotect_fixup``: making a private mapping writable charges it (VM_ACCOUNT); making
    it read-only again drops VM_ACCOUNT only while it has no anon_vma — so an untouched
    middle merges back with its VM_ACCOUNT-less neighbours."""
    a = p.mmap(None, 3 * P, PROT_READ, ANON)
    assert not vma_at(p, a).vm_flags & VM_ACCOUNT
    p.mprotect(a + P, P, RW)
    assert vma_at(p, a + P).vm_flags & VM_ACCOUNT
    p.mprotect(a + P, P, PROT_READ)
    assert layout(p) == [(a, a + 3 * P, 0x71)]
    assert not vma_at(p, a).vm_flags & VM_ACCOUNT


def test_vm_account_kept_after_a_fault_prevents_merge(k: Kernel, p: Process) -> None:
    """``mprotect_fixup``: once the middle has an anon_vma, VM_ACCOUNT stays when it becomes
    read-only again, so its flags differ from the neighbours' and it cannot merge."""
    a = p.mmap(None, 3 * P, PROT_READ, ANON)
    p.mprotect(a + P, P, RW)
    p.write(a + P, b"x")
    p.mprotect(a + P, P, PROT_READ)
    assert len(layout(p)) == 3
    assert vma_at(p, a + P).vm_flags & (VM_ACCOUNT | VM_WRITE) == VM_ACCOUNT
    k.check_invariants()


def test_accounted_untouched_mapping_loses_vm_account(p: Process) -> None:
    """``mprotect_fixup``: an untouched RW mapping made read-only drops VM_ACCOUNT and then
    merges with a read-only neighbour; a touched one keeps it and does not."""
    a = p.mmap(None, 2 * P, PROT_READ, ANON)
    b = p.mmap(a + 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert p.mm.map_count == 2
    p.mprotect(b, 2 * P, PROT_READ)
    assert layout(p) == [(a, a + 4 * P, 0x71)]


def test_same_flags_do_not_split(k: Kernel, p: Process) -> None:
    """``mprotect_fixup``: ``newflags == oldflags`` returns before ``vma_modify_flags``, so no
    split (and no ``->may_split``) happens."""
    TestDevice(k, "/dev/t", hooks=True, may_split=lambda addr: True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    p.mprotect(a + P, P, PROT_READ)
    assert_unchanged(before, snapshot(k))


def test_may_split_veto(k: Kernel, p: Process) -> None:
    """``split_vma`` → ``->may_split``: a vetoed split fails the mprotect with the hook's
    errno, before anything changes."""
    dev = TestDevice(k, "/dev/t", hooks=True, may_split=lambda addr: True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a + P, P, PROT_NONE)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))
    p.mprotect(a, 4 * P, PROT_NONE)  # the whole VMA: no split
    dev.check_pieces()


def test_split_calls_open_on_new_pieces(k: Kernel, p: Process) -> None:
    """``__split_vma``: each new piece gets ``->open``; no ``->close`` runs."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    p.mprotect(a + P, 2 * P, PROT_NONE)
    obj = dev.objs[0]
    assert (obj.opens, obj.closes) == (2, 0)
    assert p.mm.map_count == 3
    assert [vma_at(p, a + i * P).vm_pgoff for i in (0, 1, 3)] == [0, 1, 3]
    dev.check_pieces()
    k.check_invariants()


def test_driver_mprotect_hook_veto(k: Kernel, p: Process) -> None:
    """``do_mprotect_pkey``: ``vm_ops->mprotect`` may refuse; its error is returned and the
    VMA is untouched."""
    TestDevice(k, "/dev/t", mprotect_veto=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a, 2 * P, PROT_NONE)
    assert ei.value.errno == errno.EACCES
    assert_unchanged(before, snapshot(k))


def test_close_hook_vma_is_not_deleted_by_a_merge(k: Kernel, p: Process) -> None:
    """``vma_merge_existing_range``: a whole VMA with ``->close`` would be deleted by the merge,
    so the merge is abandoned (``can_merge_remove_vma``); a partial change that only shrinks
    it merges with the neighbour."""
    dev = TestDevice(k, "/dev/t", insert=False, hooks=True, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd, 0)
    p.mmap(a + 4 * P, 2 * P, RW, MAP_SHARED | MAP_FIXED, fd, 4 * P)
    assert dev.mmap_calls == 2 and p.mm.map_count == 2
    p.mprotect(a + 4 * P, 2 * P, PROT_READ)  # would delete the second VMA: refused
    assert p.mm.map_count == 2
    p.mprotect(a + 4 * P, 2 * P, RW)
    p.mprotect(a + 2 * P, 2 * P, RW)  # right edge of the first → shrink it, extend next
    assert [(s, e, f & 7) for s, e, f in layout(p)] == [
        (a, a + 2 * P, 1),
        (a + 2 * P, a + 6 * P, 3),
    ]
    obj0, obj1 = dev.objs
    assert (obj0.opens, obj0.closes, obj1.opens, obj1.closes) == (0, 0, 0, 0)
    k.check_invariants()
