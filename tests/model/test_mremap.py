"""mremap(2): mm/mremap.c ``do_mremap`` (``check_mremap_params``, ``remap_is_valid``,
``shrink_vma``, ``expand_vma``/``vma_merge_extend``, ``mremap_to``, ``move_vma`` →
``copy_vma_and_data``/``unmap_source_vma``/``dontunmap_complete``)."""

from __future__ import annotations

import errno

import pytest

from safemm.model import BusError, Kernel, KernelError, Process, SegmentationFault
from safemm.model.mman import (
    MAP_FIXED,
    MAP_LOCKED,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SHIFT,
    PROT_READ,
    TASK_SIZE,
)
from safemm.model.vm_flags import VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED

from .strategies import (
    ANON,
    RW,
    SHANON,
    P,
    TestDevice,
    assert_unchanged,
    layout,
    pte_at,
    snapshot,
    vma_at,
)

MOVE = MREMAP_MAYMOVE
FIXED = MREMAP_MAYMOVE | MREMAP_FIXED


def fill(p: Process, a: int, n: int, tag: bytes = b"") -> None:
    for i in range(n):
        p.write(a + i * P, tag + bytes([i + 1]))


def test_shrink_unmaps_the_tail(k: Kernel, p: Process) -> None:
    """``shrink_vma``: a smaller new_len unmaps ``[addr + new_len, addr + old_len)``."""
    a = p.mmap(None, 4 * P, RW, ANON)
    fill(p, a, 4)
    free = k.pages.nr_free
    assert p.mremap(a, 4 * P, P) == a
    assert layout(p) == [(a, a + P, 0x73)]
    assert k.pages.nr_free == free + 3
    assert p.read(a, 1) == b"\x01"
    k.check_invariants()


def test_shrink_works_across_holes(p: Process) -> None:
    """``shrink_vma`` is a plain ``do_vmi_munmap``: only the VMA at ``addr`` is looked up."""
    a = p.mmap(None, 6 * P, RW, ANON)
    p.munmap(a + 2 * P, P)
    assert p.mremap(a, 6 * P, P) == a
    assert layout(p) == [(a, a + P, 0x73)]


def test_same_size_is_a_no_op(k: Kernel, p: Process) -> None:
    """``mremap_at``: MREMAP_NO_RESIZE returns addr without looking further."""
    a = p.mmap(None, 2 * P, RW, ANON)
    before = snapshot(k)
    assert p.mremap(a, 2 * P, 2 * P) == a
    assert p.mremap(a, 5 * P, 5 * P) == a  # even past the VMA end: no check is made
    assert_unchanged(before, snapshot(k))


def test_grow_in_place(k: Kernel, p: Process) -> None:
    """``expand_vma_in_place`` → ``vma_merge_extend``: the free space after the VMA is taken
    by extending it; data and pgoff are kept."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    fill(p, a, 2)
    v = vma_at(p, a)
    assert p.mremap(a, 2 * P, 5 * P) == a
    assert layout(p) == [(a, a + 5 * P, 0x73)]
    assert vma_at(p, a) is v and v.vm_pgoff == a >> PAGE_SHIFT
    assert p.read(a + P, 1) == b"\x02"
    p.write(a + 4 * P, b"new")
    k.check_invariants()


def test_grow_in_place_merges_with_next(p: Process) -> None:
    """``vma_merge_extend`` → ``vma_merge_new_range``: an extension that reaches a compatible
    next VMA merges with it too."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    p.mmap(a + 4 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert p.mm.map_count == 2
    assert p.mremap(a, 2 * P, 4 * P) == a
    assert layout(p) == [(a, a + 6 * P, 0x73)]


def test_grow_blocked_without_maymove(k: Kernel, p: Process) -> None:
    """``expand_vma``: cannot expand in place and no MREMAP_MAYMOVE → ENOMEM, unchanged."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    p.mmap(a + 2 * P, P, PROT_READ, ANON | MAP_FIXED)
    fill(p, a, 2)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a, 2 * P, 4 * P)
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))


def test_grow_not_at_vma_end_needs_a_move(k: Kernel, p: Process) -> None:
    """``vrm_can_expand_in_place``: only a range reaching the VMA's end can grow in place."""
    a = p.mmap(0x2000_0000, 4 * P, RW, ANON)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a, 2 * P, 3 * P)
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))


def test_move_keeps_the_pages(k: Kernel, p: Process) -> None:
    """``move_vma``: the pages move with their PTEs (``move_page_tables``): same frames, no
    copy; the old range is unmapped."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    p.mmap(a + 2 * P, P, PROT_READ, ANON | MAP_FIXED)
    fill(p, a, 2, b"m")
    pfns = [pte_at(p, a + i * P).pfn for i in range(2)]
    free = k.pages.nr_free
    b = p.mremap(a, 2 * P, 4 * P, MOVE)
    assert b != a
    assert [pte_at(p, b + i * P).pfn for i in range(2)] == pfns
    assert k.pages.nr_free == free
    assert p.read(b + P, 2) == b"m\x02"
    assert p.read(b + 3 * P, 1) == b"\x00"
    with pytest.raises(SegmentationFault):
        p.read(a, 1)
    assert vma_at(p, b).vm_pgoff == a >> PAGE_SHIFT  # faulted anon keeps its pgoff
    k.check_invariants()


def test_move_of_unfaulted_anon_resets_pgoff(p: Process) -> None:
    """``copy_vma``: an anonymous VMA without an anon_vma gets pgoff = new addr >> PAGE_SHIFT
    (to increase its chance of merging)."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    p.mmap(a + 2 * P, P, PROT_READ, ANON | MAP_FIXED)
    b = p.mremap(a, 2 * P, 4 * P, MOVE)
    assert vma_at(p, b).vm_pgoff == b >> PAGE_SHIFT


def test_move_part_of_a_vma(k: Kernel, p: Process) -> None:
    """``move_vma`` of a sub-range: the old VMA is split around it by the final munmap."""
    a = p.mmap(0x2000_0000, 6 * P, RW, ANON)
    fill(p, a, 6)
    t = 0x3000_0000
    assert p.mremap(a + 2 * P, 2 * P, 2 * P, FIXED, t) == t
    assert [(s, e) for s, e, _ in layout(p)] == [
        (a, a + 2 * P),
        (a + 4 * P, a + 6 * P),
        (t, t + 2 * P),
    ]
    assert p.read(t, 1) == b"\x03" and p.read(t + P, 1) == b"\x04"
    k.check_invariants()


def test_fixed_replaces_the_destination(k: Kernel, p: Process) -> None:
    """``mremap_to``: MREMAP_FIXED unmaps the destination range first."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    fill(p, a, 2, b"s")
    t = p.mmap(0x3000_0000, 4 * P, PROT_READ, ANON)
    p.read(t, 1)
    assert p.mremap(a, 2 * P, 2 * P, FIXED, t + P) == t + P
    assert [(s, e, f & 7) for s, e, f in layout(p)] == [
        (t, t + P, 1),
        (t + P, t + 3 * P, 3),
        (t + 3 * P, t + 4 * P, 1),
    ]
    assert p.read(t + P, 2) == b"s\x01"
    k.check_invariants()


def test_fixed_with_shrink(p: Process) -> None:
    """``mremap_to``: old_len > new_len unmaps the old tail first, then moves new_len."""
    a = p.mmap(0x2000_0000, 4 * P, RW, ANON)
    fill(p, a, 4)
    t = 0x3000_0000
    assert p.mremap(a, 4 * P, 2 * P, FIXED, t) == t
    assert [(s, e) for s, e, _ in layout(p)] == [(t, t + 2 * P)]
    assert p.read(t + P, 1) == b"\x02"


@pytest.mark.parametrize(
    ("old_off", "new_off", "length"),
    [(0, P, 2 * P), (P, 0, 2 * P), (0, 0, P)],
)
def test_fixed_overlap_is_einval(
    k: Kernel, p: Process, old_off: int, new_off: int, length: int
) -> None:
    """``mremap_to`` → ``vrm_overlaps``: old and new ranges may not overlap."""
    a = p.mmap(0x2000_0000, 4 * P, RW, ANON)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a + old_off, length, length, FIXED, a + new_off)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_dontunmap_moves_pages_and_keeps_the_vma(k: Kernel, p: Process) -> None:
    """``move_vma`` with MREMAP_DONTUNMAP: the PTEs move, the old VMA stays (now empty: reads
    see fresh zero-filled memory); ``dontunmap_complete`` clears VM_LOCKED on it (6.18 keeps
    VM_ACCOUNT) and, when the whole VMA moved, unlinks its anon_vma."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON | MAP_LOCKED)
    old = vma_at(p, a)
    assert old.vm_flags & VM_LOCKED and old.vm_flags & VM_ACCOUNT
    fill(p, a, 2, b"d")
    b = p.mremap(a, 2 * P, 2 * P, MOVE | MREMAP_DONTUNMAP)
    assert b != a
    assert p.read(b, 2) == b"d\x01"
    assert vma_at(p, a) is old
    assert not old.vm_flags & VM_LOCKED and old.vm_flags & VM_ACCOUNT
    assert old.anon_vma is None
    assert vma_at(p, b).vm_flags & VM_LOCKED and vma_at(p, b).vm_flags & VM_ACCOUNT
    assert p.read(a, 2) == b"\x00\x00"
    assert p.mm.rss_anon == 2
    k.check_invariants()


def test_dontunmap_rules(k: Kernel, p: Process) -> None:
    """``check_mremap_params``: MREMAP_DONTUNMAP needs MAYMOVE and old_len == new_len;
    ``remap_is_valid``: not on VM_DONTEXPAND/VM_PFNMAP VMAs (EINVAL)."""
    a = p.mmap(None, 2 * P, RW, ANON)
    TestDevice(k, "/dev/t", set_flags=VM_DONTEXPAND)
    fd = p.open("/dev/t")
    d = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    for args in (
        (a, 2 * P, 2 * P, MREMAP_DONTUNMAP),
        (a, 2 * P, 3 * P, MOVE | MREMAP_DONTUNMAP),
        (d, P, P, MOVE | MREMAP_DONTUNMAP),
    ):
        with pytest.raises(KernelError) as ei:
            p.mremap(*args)
        assert ei.value.errno == errno.EINVAL, args
    assert_unchanged(before, snapshot(k))


def test_dontexpand_and_pfnmap_cannot_grow(k: Kernel, p: Process) -> None:
    """``remap_is_valid``: growing a VM_DONTEXPAND or VM_PFNMAP VMA → EFAULT (even with
    MREMAP_MAYMOVE); shrinking them is fine."""
    TestDevice(k, "/dev/dx", set_flags=VM_DONTEXPAND)
    TestDevice(k, "/dev/pfn", insert=False, pfnmap=True)
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, p.open("/dev/dx"))
    b = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, p.open("/dev/pfn"))
    before = snapshot(k)
    for addr in (a, b):
        for flags in (0, MOVE):
            with pytest.raises(KernelError) as ei:
                p.mremap(addr, 2 * P, 3 * P, flags)
            assert ei.value.errno == errno.EFAULT
    assert_unchanged(before, snapshot(k))
    assert p.mremap(b, 2 * P, P) == b
    assert p.mremap(a, 2 * P, P) == a
    k.check_invariants()


def test_mixedmap_cannot_grow_in_place(k: Kernel, p: Process) -> None:
    """``expand_vma``: when the space after the VMA is free the expansion is attempted in
    place, and ``vma_merge_extend`` refuses VM_SPECIAL (here VM_MIXEDMAP) VMAs → ENOMEM —
    even with MREMAP_MAYMOVE (``expand_vma_in_place``'s error is returned, no move is tried).
    When the space is taken, MREMAP_MAYMOVE moves it; the new tail has no PTEs, so touching it
    is SIGBUS (no ``->fault``: "VMA not fully populated on mmap()")."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    for flags in (0, MOVE):
        with pytest.raises(KernelError) as ei:
            p.mremap(a, 2 * P, 3 * P, flags)
        assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))
    p.mmap(a + 2 * P, P, PROT_READ, ANON | MAP_FIXED)
    b = p.mremap(a, 2 * P, 3 * P, MOVE)
    assert b != a
    assert p.read(b + P, 4) == b"dev1"
    with pytest.raises(BusError):
        p.read(b + 2 * P, 1)
    k.check_invariants()


def test_move_opens_the_copy_and_closes_the_old_piece(k: Kernel, p: Process) -> None:
    """``copy_vma``: ``->open`` on the new VMA; ``vm_ops->mremap(new_vma)`` is told; the
    munmap of the old range ``->close``s the old piece."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd)
    t = 0x3000_0000
    assert p.mremap(a, 2 * P, 2 * P, FIXED, t) == t
    obj = dev.objs[0]
    assert (obj.opens, obj.closes) == (1, 1)
    assert obj.closed_ranges == [(a, a + 2 * P, p.pid)]
    assert obj.mremaps == [(t, t + 2 * P)]
    assert p.read(t + P, 4) == b"dev1"
    assert dev.pool[1].mapcount == 1
    dev.check_pieces()
    k.check_invariants()


def test_move_part_of_a_driver_vma(k: Kernel, p: Process) -> None:
    """``prep_move_vma`` asks ``->may_split`` at both ends; the copy is opened; the old range's
    munmap splits the old VMA (``->open`` on the split piece) and closes the moved piece."""
    splits: list[int] = []

    def allow(addr: int) -> bool:
        splits.append(addr)
        return False

    dev = TestDevice(k, "/dev/t", hooks=True, may_split=allow)
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 4 * P, PROT_READ, MAP_SHARED, fd)
    t = 0x3000_0000
    p.mremap(a + P, P, P, FIXED, t)
    assert splits[:2] == [a + P, a + 2 * P]
    obj = dev.objs[0]
    assert p.mm.map_count == 3
    assert obj.closes == 1 and obj.opens == 3  # the copy, then two splits of the old VMA
    assert p.read(t, 4) == b"dev1"
    dev.check_pieces()


def test_may_split_veto_fails_the_move(k: Kernel, p: Process) -> None:
    """``prep_move_vma``: a ``->may_split`` veto fails the mremap before anything moves."""
    TestDevice(k, "/dev/t", hooks=True, may_split=lambda addr: True)
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 4 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a + P, P, P, FIXED, 0x3000_0000)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_mremap_hook_veto_moves_ptes_back(k: Kernel, p: Process) -> None:
    """``copy_vma_and_data``: when ``vm_ops->mremap`` fails, the PTEs are moved back and the
    *new* range is unmapped (``unmap_source_vma`` on the new VMA: ``->close`` on the copy);
    the error is returned and the old mapping is intact."""
    dev = TestDevice(k, "/dev/t", hooks=True, mremap_veto=True)
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a, 2 * P, 2 * P, FIXED, 0x3000_0000)
    assert ei.value.errno == errno.EINVAL
    obj = dev.objs[0]
    assert (obj.opens, obj.closes) == (1, 1)
    assert obj.closed_ranges == [(0x3000_0000, 0x3000_0000 + 2 * P, p.pid)]
    assert_unchanged(before, snapshot(k))
    assert p.read(a + P, 4) == b"dev1"
    dev.check_pieces()
    k.check_invariants()


def test_grown_shared_anon_tail_is_sigbus(k: Kernel, p: Process) -> None:
    """``shmem_fault`` → ``shmem_get_folio_gfp``: a page at or past ``i_size`` (the mapping's
    length at mmap time) is SIGBUS — growing a shared anonymous mapping does not grow its
    file."""
    a = p.mmap(0x2000_0000, 2 * P, RW, SHANON)
    assert p.mremap(a, 2 * P, 3 * P) == a
    p.write(a + P, b"ok")
    with pytest.raises(BusError):
        p.read(a + 2 * P, 1)


def test_duplicate_shared_mapping_with_zero_old_len(k: Kernel, p: Process) -> None:
    """``remap_is_valid``: old_len 0 duplicates a shared mapping (a second VMA of the same
    pages); ``unmap_source_vma``'s munmap of 0 bytes fails and is ignored."""
    a = p.mmap(0x2000_0000, 2 * P, RW, SHANON)
    p.write(a, b"dup")
    b = p.mremap(a, 0, 2 * P, MOVE)
    assert b != a
    assert p.mm.map_count == 2
    assert p.read(b, 3) == b"dup"
    p.write(b + P, b"back")
    assert p.read(a + P, 4) == b"back"
    k.check_invariants()


def test_zero_old_len_on_private_is_einval(k: Kernel, p: Process) -> None:
    """``remap_is_valid``: "attempted to duplicate a private mapping" → EINVAL."""
    a = p.mmap(None, 2 * P, RW, ANON)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a, 0, 2 * P, MOVE)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


@pytest.mark.parametrize(
    ("off", "old_len", "new_len", "flags", "new_addr", "err"),
    [
        (0, P, 2 * P, 0x8, None, errno.EINVAL),  # unknown flag
        (1, P, 2 * P, MOVE, None, errno.EINVAL),  # unaligned addr
        (0, P, 0, MOVE, None, errno.EINVAL),  # zero new_len
        (0, P, (1 << 64) - 1, MOVE, None, errno.EINVAL),  # PAGE_ALIGN(new_len) == 0
        (0, P, 2 * P, MREMAP_FIXED, 0x3000_0000, errno.EINVAL),  # FIXED without MAYMOVE
        (0, P, P, FIXED, 0x3000_0001, errno.EINVAL),  # unaligned new_addr
        (0, P, P, FIXED, TASK_SIZE, errno.EINVAL),  # new range past TASK_SIZE
        (0, 3 * P, 4 * P, MOVE, None, errno.EFAULT),  # old range crosses the VMA end
        (8 * P, P, 2 * P, MOVE, None, errno.EFAULT),  # no VMA at addr
    ],
)
def test_bad_arguments(
    k: Kernel,
    p: Process,
    off: int,
    old_len: int,
    new_len: int,
    flags: int,
    new_addr: int | None,
    err: int,
) -> None:
    """``check_mremap_params``/``remap_is_valid``/``mremap_to`` argument errors, each leaving
    the model unchanged."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    fill(p, a, 2)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mremap(a + off, old_len, new_len, flags, new_addr)
    assert ei.value.errno == err
    assert_unchanged(before, snapshot(k))


def test_map_count_headroom(p: Process) -> None:
    """``check_mremap_params``: a fixed move needs ``map_count + 2 < max_map_count - 3``;
    ``prep_move_vma``: any move needs ``map_count < max_map_count - 3``."""
    k = Kernel(max_map_count=8)
    q = k.spawn()
    base = 0x2000_0000
    for i in range(3):
        q.mmap(base + 4 * i * P, P, RW, ANON | MAP_FIXED)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        q.mremap(base, P, P, FIXED, 0x3000_0000)  # 3 + 2 >= 8 - 3
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))
    q.munmap(base + 8 * P, P)
    assert q.mremap(base, P, P, FIXED, 0x3000_0000) == 0x3000_0000  # 2 + 2 < 5
    for i in range(3):
        q.mmap(base + 4 * i * P + P, P, PROT_READ, ANON | MAP_FIXED)
    assert q.mm.map_count == 5
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        q.mremap(base + 4 * P, P, 2 * P, MOVE)  # blocked in place; 5 >= 8 - 3
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))
    k.check_invariants()
