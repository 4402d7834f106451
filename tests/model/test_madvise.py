"""madvise: mm/madvise.c ``do_madvise``, ``madvise_walk_vmas``, ``madvise_vma_behavior``,
``madvise_dontneed_free``, ``madvise_update_vma``; and what fork does with the flags
(kernel/fork.c ``dup_mmap``: VM_DONTCOPY, VM_WIPEONFORK). Expected results were checked on
Linux 6.18.44 where user space can reach them (anonymous and shmem mappings)."""

from __future__ import annotations

import errno

import pytest

from safemm import (
    MADV_DOFORK,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_KEEPONFORK,
    MADV_WIPEONFORK,
)
from safemm.model import Kernel, KernelError, Process
from safemm.model.mman import (
    MADV_DODUMP,
    MADV_DONTDUMP,
    MADV_RANDOM,
    MAP_FIXED,
    MAP_SHARED,
    PROT_READ,
)
from safemm.model.vm_flags import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_LOCKED,
    VM_RAND_READ,
    VM_WIPEONFORK,
)

from .strategies import ANON, RW, SHANON, P, TestDevice, vma_at


def spans(p: Process, base: int) -> list[tuple[int, int]]:
    """The VMAs of ``p`` as page ranges relative to ``base``."""
    return [((v.vm_start - base) // P, (v.vm_end - base) // P) for v in p.mm.vmas()]


@pytest.fixture
def base(p: Process) -> int:
    """Eight written private pages at ``base``: page i holds ``b"p<i>"``."""
    a = p.mmap(None, 8 * P, RW, ANON)
    for i in range(8):
        p.write(a + i * P, f"p{i}".encode())
    return a


def test_dontneed_private_anon_reads_back_zero(k: Kernel, p: Process, base: int) -> None:
    """``madvise_dontneed_single_vma`` zaps the range: private anonymous pages are freed and
    read back as zero; pages outside the range are untouched; the layout does not change."""
    rss = p.mm.rss_anon
    p.madvise(base + 2 * P, 3 * P, MADV_DONTNEED)
    assert [p.read(base + i * P, 2) for i in range(8)] == [
        b"p0",
        b"p1",
        b"\0\0",
        b"\0\0",
        b"\0\0",
        b"p5",
        b"p6",
        b"p7",
    ]
    assert p.mm.rss_anon == rss - 3
    assert spans(p, base) == [(0, 8)]
    k.check_invariants()


def test_dontneed_shared_keeps_contents(k: Kernel, p: Process) -> None:
    """Shared (shmem) pages stay in their page cache: after the zap they fault back in with
    their contents."""
    a = p.mmap(None, 2 * P, RW, SHANON)
    p.write(a, b"kept")
    p.madvise(a, 2 * P, MADV_DONTNEED)
    assert p.mm.pgtables.lookup(a // P) is None
    assert p.read(a, 4) == b"kept"
    k.check_invariants()


def test_dontneed_across_hole_is_enomem_after_zapping(k: Kernel, p: Process, base: int) -> None:
    """``madvise_walk_vmas``: a hole does not stop the walk; the mapped parts on both sides
    are zapped and ENOMEM is returned at the end."""
    p.munmap(base + 3 * P, P)
    with pytest.raises(KernelError) as ei:
        p.madvise(base + 2 * P, 4 * P, MADV_DONTNEED)
    assert ei.value.errno == errno.ENOMEM
    assert p.read(base + 2 * P, 2) == b"\0\0"
    assert p.read(base + 5 * P, 2) == b"\0\0"
    assert p.read(base + 6 * P, 2) == b"p6"
    k.check_invariants()


def test_dontneed_locked_is_einval(k: Kernel, p: Process, base: int) -> None:
    """``madvise_dontneed_free_valid_vma``: VM_LOCKED VMAs refuse MADV_DONTNEED."""
    p.mlock(base, P)
    with pytest.raises(KernelError) as ei:
        p.madvise(base, 2 * P, MADV_DONTNEED)
    assert ei.value.errno == errno.EINVAL
    assert p.read(base, 2) == b"p0"


def test_dontfork_splits_and_dofork_merges_back(k: Kernel, p: Process, base: int) -> None:
    """``madvise_update_vma`` splits the advised range out; the child of a fork does not get
    it (``dup_mmap`` skips VM_DONTCOPY); MADV_DOFORK merges the pieces back."""
    p.madvise(base + 2 * P, 2 * P, MADV_DONTFORK)
    assert spans(p, base) == [(0, 2), (2, 4), (4, 8)]
    assert vma_at(p, base + 2 * P).vm_flags & VM_DONTCOPY
    child = p.fork()
    assert spans(child, base) == [(0, 2), (4, 8)]
    assert child.read(base + 4 * P, 2) == b"p4"
    p.madvise(base, 8 * P, MADV_DOFORK)
    assert spans(p, base) == [(0, 8)]
    k.check_invariants()


def test_wipeonfork_child_sees_zeroes(k: Kernel, p: Process, base: int) -> None:
    """``dup_mmap``: a VM_WIPEONFORK copy gets no page tables and a fresh anon_vma, so the
    child reads zeroes where the parent keeps its data; MADV_KEEPONFORK undoes it."""
    p.madvise(base, 2 * P, MADV_WIPEONFORK)
    assert vma_at(p, base).vm_flags & VM_WIPEONFORK
    child = p.fork()
    assert child.read(base, 2) == b"\0\0"
    assert child.read(base + 2 * P, 2) == b"p2"
    assert p.read(base, 2) == b"p0"
    p.madvise(base, 2 * P, MADV_KEEPONFORK)
    assert spans(p, base) == [(0, 8)]
    assert p.fork().read(base, 2) == b"p0"
    k.check_invariants()


def test_wipeonfork_stops_at_shared_vma(k: Kernel, p: Process, base: int) -> None:
    """MADV_WIPEONFORK on a shared VMA is EINVAL; the VMAs before it keep the advice (the
    walk stops at the first error)."""
    p.mmap(base + 4 * P, 2 * P, RW, SHANON | MAP_FIXED)
    with pytest.raises(KernelError) as ei:
        p.madvise(base + 2 * P, 6 * P, MADV_WIPEONFORK)
    assert ei.value.errno == errno.EINVAL
    assert vma_at(p, base + 2 * P).vm_flags & VM_WIPEONFORK
    assert not vma_at(p, base + 6 * P).vm_flags & VM_WIPEONFORK
    k.check_invariants()


def test_flag_only_advice(k: Kernel, p: Process, base: int) -> None:
    """MADV_RANDOM and MADV_DONTDUMP set their flags, MADV_DODUMP clears VM_DONTDUMP."""
    p.madvise(base, 8 * P, MADV_RANDOM)
    p.madvise(base, 8 * P, MADV_DONTDUMP)
    flags = vma_at(p, base).vm_flags
    assert flags & VM_RAND_READ and flags & VM_DONTDUMP
    p.madvise(base, 8 * P, MADV_DODUMP)
    assert not vma_at(p, base).vm_flags & VM_DONTDUMP


def test_zero_length_is_success(p: Process, base: int) -> None:
    """``do_madvise``: a zero length is success even at an unmapped address."""
    p.madvise(0x10000, 0, MADV_DONTFORK)


def test_split_beyond_max_map_count_is_eagain() -> None:
    """``madvise_update_vma``: ENOMEM from the split (``max_map_count``) becomes EAGAIN."""
    k = Kernel(max_map_count=1)
    p = k.spawn()
    a = p.mmap(None, 4 * P, RW, ANON)
    with pytest.raises(KernelError) as ei:
        p.madvise(a + P, P, MADV_DONTFORK)
    assert ei.value.errno == errno.EAGAIN
    assert not vma_at(p, a).vm_flags & VM_DONTCOPY


def test_device_vma_dontneed_and_dofork(k: Kernel, p: Process) -> None:
    """A VM_MIXEDMAP driver VMA: MADV_DONTNEED zaps it (only VM_PFNMAP is refused), and
    MADV_DOFORK refuses it (VM_SPECIAL); a VM_PFNMAP one refuses MADV_DONTNEED."""
    TestDevice(k, "/dev/t")
    TestDevice(k, "/dev/pfn", pfnmap=True)
    d = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, p.open("/dev/t"))
    assert p.read(d, 4) == b"dev0"
    p.madvise(d, 2 * P, MADV_DONTNEED)
    assert p.mm.pgtables.lookup(d // P) is None
    with pytest.raises(KernelError) as ei:
        p.madvise(d, P, MADV_DOFORK)
    assert ei.value.errno == errno.EINVAL
    f = p.mmap(None, P, PROT_READ, MAP_SHARED, p.open("/dev/pfn"))
    with pytest.raises(KernelError) as ei:
        p.madvise(f, P, MADV_DONTNEED)
    assert ei.value.errno == errno.EINVAL
    assert not vma_at(p, d).vm_flags & VM_LOCKED
    k.check_invariants()
