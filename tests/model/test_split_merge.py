"""Split and merge rules: mm/vma.c ``__split_vma``/``split_vma``, ``vma_merge_new_range``,
``vma_merge_existing_range``, ``is_mergeable_vma``, ``is_mergeable_anon_vma``,
``can_merge_remove_vma``, ``vma_expand``."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Process
from safemm.model.mman import (
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_SHARED,
    PAGE_SHIFT,
    PROT_NONE,
    PROT_READ,
)
from safemm.model.vm_flags import VM_DONTEXPAND, VM_IO, VM_SOFTDIRTY
from safemm.model.vma import split_vma
from safemm.testing import SplatKind, expect_splat

from .strategies import ANON, RW, P, TestDevice, layout, locked, vma_at


def test_split_vma_new_below_and_above(k: Kernel, p: Process) -> None:
    """``__split_vma``: ``new_below`` makes the new VMA the lower piece (the original keeps the
    upper one, its pgoff advanced); otherwise the new VMA is the upper piece. ``->open`` runs
    on the new piece only; both stay in ``i_mmap``."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd, 8 * P)
    orig = vma_at(p, a)
    with locked(p):
        low = split_vma(orig, a + P, new_below=True)
        high = split_vma(orig, a + 3 * P, new_below=False)
    assert (low.vm_start, low.vm_end, low.vm_pgoff) == (a, a + P, 8)
    assert (orig.vm_start, orig.vm_end, orig.vm_pgoff) == (a + P, a + 3 * P, 9)
    assert (high.vm_start, high.vm_end, high.vm_pgoff) == (a + 3 * P, a + 4 * P, 11)
    assert dev.objs[0].opens == 2 and dev.objs[0].closes == 0
    assert low.vm_private_data is orig.vm_private_data is high.vm_private_data
    mapping = p.fds[fd].f_mapping
    assert {mapping.i_mmap.interval_of(v) for v in (low, orig, high)} == {
        (8, 8),
        (9, 10),
        (11, 11),
    }
    assert p.read(a + 3 * P, 5) == b"dev11"  # page tables untouched by the split
    dev.check_pieces()
    k.check_invariants()


def test_split_vma_at_max_map_count(p: Process) -> None:
    """``split_vma``: ENOMEM when ``map_count >= sysctl_max_map_count``."""
    k = Kernel(max_map_count=1)
    q = k.spawn()
    a = q.mmap(None, 2 * P, RW, ANON)
    with locked(q):
        with pytest.raises(KernelError) as ei:
            split_vma(vma_at(q, a), a + P, new_below=False)
        assert ei.value.errno == errno.ENOMEM


def test_split_outside_the_vma_warns(k: Kernel, p: Process) -> None:
    """``__split_vma``: ``WARN_ON(vma->vm_start >= addr)``."""
    a = p.mmap(None, 2 * P, RW, ANON)
    with locked(p), expect_splat("split-range", SplatKind.WARNING):
        split_vma(vma_at(p, a), a, new_below=False)


def test_may_split_veto_is_returned_as_is(k: Kernel, p: Process) -> None:
    """``__split_vma``: ``->may_split``'s error is returned before anything is allocated."""
    dev = TestDevice(k, "/dev/t", hooks=True, may_split=lambda addr: True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    with locked(p):
        with pytest.raises(KernelError) as ei:
            split_vma(vma_at(p, a), a + P, new_below=False)
        assert ei.value.errno == errno.EINVAL
    assert p.mm.map_count == 1 and dev.objs[0].opens == 0


@pytest.mark.parametrize("flag", [VM_DONTEXPAND, VM_IO])
def test_vm_special_never_merges(k: Kernel, p: Process, flag: int) -> None:
    """``vma_merge_new_range``/``vma_merge_existing_range``: VM_SPECIAL flags rule out any
    merge, even of contiguous offsets of one file with equal flags."""
    TestDevice(k, "/dev/t", insert=False, fault="page", set_flags=flag)
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd, 0)
    p.mmap(a + 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 2 * P)
    assert p.mm.map_count == 2
    p.mprotect(a + P, P, PROT_NONE)
    p.mprotect(a + P, P, PROT_READ)
    assert p.mm.map_count == 3


def test_new_range_merge_does_not_delete_a_next_with_close(k: Kernel, p: Process) -> None:
    """``vma_merge_new_range``: with mergeable VMAs on both sides, a next VMA with ``->close``
    cannot be deleted, so only prev is extended over the new range."""
    dev = TestDevice(k, "/dev/t", insert=False, hooks=True, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd, 0)
    p.mmap(a + 4 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 4 * P)
    assert dev.mmap_calls == 2
    p.mmap(a + 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 2 * P)
    assert dev.mmap_calls == 2  # merged: no ->mmap
    assert [(s, e) for s, e, _ in layout(p)] == [(a, a + 4 * P), (a + 4 * P, a + 6 * P)]
    assert all(o.opens == 0 and o.closes == 0 for o in dev.objs)
    dev.check_pieces()
    k.check_invariants()


def test_new_range_merge_may_expand_a_next_with_close(k: Kernel, p: Process) -> None:
    """``vma_merge_new_range``: merging into next alone expands it downwards (nothing is
    deleted, so ``->close`` does not matter)."""
    dev = TestDevice(k, "/dev/t", insert=False, hooks=True, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd, 2 * P)
    nxt = vma_at(p, a)
    p.mmap(a - 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
    assert layout(p) == [(a - 2 * P, a + 2 * P, layout(p)[0][2])]
    assert vma_at(p, a - 2 * P) is nxt and nxt.vm_pgoff == 0
    assert dev.mmap_calls == 1
    k.check_invariants()


def test_anon_new_range_merges_both_sides(k: Kernel, p: Process) -> None:
    """``vma_merge_new_range`` + ``vma_expand``: prev is extended over the range and next,
    and next is deleted."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    p.mmap(a + 4 * P, 2 * P, RW, ANON | MAP_FIXED)
    nxt = vma_at(p, a + 4 * P)
    p.mmap(a + 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert layout(p) == [(a, a + 6 * P, 0x73)]
    assert nxt.detached
    k.check_invariants()


def test_fork_child_vma_does_not_merge_with_a_new_neighbour(k: Kernel, p: Process) -> None:
    """``is_mergeable_anon_vma``: a VMA cloned by fork (``anon_vma_chain`` not singular) only
    merges with the very same anon_vma; in the parent the same mapping merges."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    p.write(a, b"x")
    c = p.fork()
    c.mmap(a + 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert c.mm.map_count == 2
    p.mmap(a + 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert p.mm.map_count == 1
    k.check_invariants()


def test_merge_needs_contiguous_pgoff(k: Kernel, p: Process) -> None:
    """``can_vma_merge_after``: ``prev->vm_pgoff + vma_pages(prev) == pgoff``."""
    TestDevice(k, "/dev/t", insert=False, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd, 0)
    p.mmap(a + 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 5 * P)
    assert p.mm.map_count == 2


def test_different_files_do_not_merge(k: Kernel, p: Process) -> None:
    """``is_mergeable_vma``: ``vma->vm_file != vmg->file`` (two opens are two files)."""
    TestDevice(k, "/dev/t", insert=False, fault="page")
    fd1, fd2 = p.open("/dev/t"), p.open("/dev/t")
    a = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd1, 0)
    p.mmap(a + 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd2, 2 * P)
    assert p.mm.map_count == 2


def test_softdirty_is_ignored_by_merges(k: Kernel, p: Process) -> None:
    """``is_mergeable_vma``: flags are compared except VM_SOFTDIRTY."""
    from safemm.model.vm_flags_update import vm_flags_clear

    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    with locked(p):
        vm_flags_clear(vma_at(p, a), VM_SOFTDIRTY)
    p.mmap(a + 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert p.mm.map_count == 1


def test_merge_left_keeps_anon_pages_reachable(k: Kernel, p: Process) -> None:
    """``dup_anon_vma``: when a merge moves pages from one VMA into another, the expanding VMA
    takes the shrinking one's anon_vma. (MAP_NORESERVE keeps VM_ACCOUNT out of the way.)"""
    a = p.mmap(0x2000_0000, 4 * P, PROT_READ, ANON | MAP_NORESERVE)
    p.mprotect(a + 2 * P, 2 * P, RW)
    p.write(a + 2 * P, b"x")
    left = vma_at(p, a)
    assert vma_at(p, a).anon_vma is None
    p.mprotect(a + 2 * P, P, PROT_READ)  # merges [a+2P, a+3P) into the left VMA
    assert vma_at(p, a + 2 * P) is left
    assert left.anon_vma is not None
    assert p.read(a + 2 * P, 1) == b"x"
    k.check_invariants()


def test_pgoff_after_merge_is_linear(p: Process) -> None:
    """Merged anonymous VMAs keep ``vm_pgoff`` = ``vm_start >> PAGE_SHIFT``."""
    a = p.mmap(0x2000_0000, 4 * P, RW, ANON)
    p.mprotect(a + P, 2 * P, PROT_READ)
    p.mprotect(a, 4 * P, RW)
    assert layout(p) == [(a, a + 4 * P, 0x73)]
    assert vma_at(p, a).vm_pgoff == a >> PAGE_SHIFT
