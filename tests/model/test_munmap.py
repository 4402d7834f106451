"""munmap(2): mm/vma.c ``do_vmi_munmap`` → ``do_vmi_align_munmap`` →
``vms_gather_munmap_vmas`` / ``vms_complete_munmap_vmas`` → ``remove_vma``."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Process, SegmentationFault
from safemm.model.errors import SEGV_MAPERR
from safemm.model.mman import MAP_FIXED, MAP_SHARED, PAGE_SHIFT, PROT_NONE, PROT_READ, TASK_SIZE

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


def test_split_at_both_ends(k: Kernel, p: Process) -> None:
    """``vms_gather_munmap_vmas``: the first VMA is split at start (new piece below), the last
    at end (new piece above); only the middle is removed; pgoffs stay linear."""
    a = p.mmap(None, 8 * P, RW, ANON)
    for i in range(8):
        p.write(a + i * P, bytes([i + 1]))
    free_before = k.pages.nr_free
    p.munmap(a + 3 * P, 2 * P)
    assert layout(p) == [(a, a + 3 * P, 0x73), (a + 5 * P, a + 8 * P, 0x73)]
    assert vma_at(p, a + 5 * P).vm_pgoff == (a >> PAGE_SHIFT) + 5
    assert k.pages.nr_free == free_before + 2
    assert p.mm.rss_anon == 6
    assert p.read(a + 2 * P, 1) == b"\x03" and p.read(a + 5 * P, 1) == b"\x06"
    with pytest.raises(SegmentationFault) as ei:
        p.read(a + 3 * P, 1)
    assert ei.value.code == SEGV_MAPERR
    k.check_invariants()


def test_unmap_spanning_vmas_and_holes(k: Kernel, p: Process) -> None:
    """``do_vmi_align_munmap``: every VMA intersecting the range goes; holes are fine."""
    a = p.mmap(None, 10 * P, RW, ANON)
    p.munmap(a + 2 * P, P)
    p.mprotect(a + 5 * P, 2 * P, PROT_READ)
    p.munmap(a + P, 8 * P)
    assert layout(p) == [(a, a + P, 0x73), (a + 9 * P, a + 10 * P, 0x73)]
    k.check_invariants()


def test_no_vma_in_range_is_success(k: Kernel, p: Process) -> None:
    """``do_vmi_munmap``: no VMA in the range → 0, nothing happens."""
    a = p.mmap(None, P, RW, ANON)
    before = snapshot(k)
    p.munmap(a + 16 * P, 4 * P)
    p.munmap(0x10000, P)
    assert_unchanged(before, snapshot(k))


def test_length_rounds_up(p: Process) -> None:
    """``do_vmi_munmap``: ``end = start + PAGE_ALIGN(len)``."""
    a = p.mmap(None, 3 * P, RW, ANON)
    p.munmap(a, 1)
    assert layout(p) == [(a + P, a + 3 * P, 0x73)]


@pytest.mark.parametrize(
    ("addr_off", "length"),
    [
        (1, P),  # unaligned start
        (0, 0),  # zero length
        (None, P),  # start past TASK_SIZE
        (0, 1 << 47),  # len > TASK_SIZE - start
        (0, (1 << 64) - 1),  # huge length
        (0, -P),  # negative wraps to huge
    ],
)
def test_einval(k: Kernel, p: Process, addr_off: int | None, length: int) -> None:
    """``do_vmi_munmap``: unaligned start, start > TASK_SIZE, len > TASK_SIZE - start, or an
    aligned length of 0 → EINVAL, with nothing changed."""
    a = p.mmap(None, 4 * P, RW, ANON)
    p.write(a, b"x")
    addr = TASK_SIZE + P if addr_off is None else a + addr_off
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.munmap(addr, length)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_close_once_per_piece_under_read_lock(k: Kernel, p: Process) -> None:
    """``remove_vma``: ``->close`` once per removed piece; ``do_vmi_align_munmap`` has
    downgraded the mmap lock to read by then (``vms_complete_munmap_vmas``)."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 6 * P, PROT_READ, MAP_SHARED, fd)
    p.mprotect(a + 2 * P, 2 * P, PROT_NONE)  # three pieces: two ->open
    obj = dev.objs[0]
    assert (obj.opens, obj.closes) == (2, 0)
    p.munmap(a + P, 4 * P)  # splits twice more (two ->open), removes three pieces
    assert (obj.opens, obj.closes) == (4, 3)
    assert sorted(obj.closed_ranges) == [
        (a + P, a + 2 * P, p.pid),
        (a + 2 * P, a + 4 * P, p.pid),
        (a + 4 * P, a + 5 * P, p.pid),
    ]
    assert dev.close_locks == [(False, True)] * 3
    dev.check_pieces()
    p.munmap(a, 6 * P)
    assert obj.closes == 5
    dev.check_pieces()
    assert all(pg.mapcount == 0 and pg.refcount == 1 for pg in dev.pool)
    k.check_invariants()


def test_unmap_drops_file_reference_and_i_mmap(k: Kernel, p: Process) -> None:
    """``remove_vma`` → ``fput``; ``free_pgtables`` → ``unlink_file_vma``."""
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    f = p.fds[fd]
    mapping = f.f_mapping
    assert f.f_count == 2 and len(mapping.i_mmap) == 1
    p.munmap(a, 2 * P)
    assert f.f_count == 1 and len(mapping.i_mmap) == 0
    p.close(fd)
    assert f.released and dev.releases == 1


def test_may_split_veto_at_start_changes_nothing(k: Kernel, p: Process) -> None:
    """``__split_vma``: ``->may_split`` vetoing the first split fails the munmap before any
    change (its errno is returned as is)."""
    dev = TestDevice(k, "/dev/t", hooks=True, may_split=lambda addr: True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.munmap(a + P, P)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))
    p.munmap(a, 4 * P)  # no split needed: allowed
    assert dev.objs[0].closes == 1
    dev.check_pieces()


def test_may_split_veto_at_end_keeps_the_start_split(k: Kernel, p: Process) -> None:
    """``vms_gather_munmap_vmas``: when the end split fails, VMAs already detached are
    reattached but the start split stays made (with its ``->open``) — Linux does not undo
    it."""
    end_addr: list[int] = []
    dev = TestDevice(k, "/dev/t", hooks=True, may_split=lambda addr: addr in end_addr)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    end_addr.append(a + 2 * P)
    with pytest.raises(KernelError) as ei:
        p.munmap(a + P, P)
    assert ei.value.errno == errno.EINVAL
    assert [(s, e) for s, e, _ in layout(p)] == [(a, a + P), (a + P, a + 4 * P)]
    assert (dev.objs[0].opens, dev.objs[0].closes) == (1, 0)
    assert p.read(a + 3 * P, 4) == b"dev3"
    dev.check_pieces()
    k.check_invariants()


def test_map_count_limit_for_a_middle_unmap(p: Process) -> None:
    """``vms_gather_munmap_vmas``: splitting a VMA in three at ``max_map_count`` → ENOMEM
    before anything changes; unmapping a head or tail (no net new VMA) still works."""
    k = Kernel(max_map_count=3)
    q = k.spawn()
    base = 0x1000_0000
    for i in range(3):
        q.mmap(base + 8 * i * P, 4 * P, RW, ANON | MAP_FIXED)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        q.munmap(base + P, P)
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))
    q.munmap(base + 3 * P, P)  # the tail: split at start only, then removal
    q.munmap(base, P)  # the head: split at end only
    assert layout(q)[0] == (base + P, base + 3 * P, 0x73)
    k.check_invariants()


def test_unmap_of_shared_anon_keeps_other_mappers(k: Kernel, p: Process) -> None:
    """``zap_pte_range`` drops only this mm's mapping of a shmem page."""
    from .strategies import SHANON

    a = p.mmap(None, P, RW, SHANON)
    p.write(a, b"shared")
    c = p.fork()
    p.munmap(a, P)
    assert c.read(a, 6) == b"shared"
    k.check_invariants()


def test_unmap_releases_private_pages(k: Kernel, p: Process) -> None:
    """``zap_present_ptes``: every anonymous page of the range loses its mapping and, being
    exclusive, is freed."""
    a = p.mmap(None, 16 * P, RW, ANON)
    for i in range(16):
        p.write(a + i * P, b"z")
    free = k.pages.nr_free
    p.munmap(a, 16 * P)
    assert k.pages.nr_free == free + 16
    assert p.mm.rss_anon == 0
    assert p.mm.pgtables.nr_ptes == 0
