"""mmap(2): mm/mmap.c ``do_mmap``/``__get_unmapped_area`` and mm/vma.c ``__mmap_region``.

Each test names the kernel function whose behaviour it checks.
"""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Process
from safemm.model.mm_types import MMAP_BASE
from safemm.model.mman import (
    HPAGE_SIZE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MMAP_MIN_ADDR,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_READ,
    TASK_SIZE,
)
from safemm.model.page_alloc import PageKind
from safemm.model.process import O_RDONLY
from safemm.model.vm_flags import (
    VM_ACCOUNT,
    VM_DONTEXPAND,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_WRITE,
)

from .strategies import (
    ANON,
    RW,
    SHANON,
    P,
    TestDevice,
    assert_unchanged,
    layout,
    snapshot,
    vma_at,
)

MAY = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


# -- anonymous mappings ---------------------------------------------------------------------------


def test_anon_private_flags_pgoff_and_placement(p: Process) -> None:
    """``do_mmap``: MAP_PRIVATE|MAP_ANONYMOUS gets R/W + all VM_MAY* bits and pgoff =
    addr >> PAGE_SHIFT; ``__mmap_region`` adds VM_ACCOUNT (``accountable_mapping``) and
    VM_SOFTDIRTY; ``arch_get_unmapped_area_topdown`` places it right below mmap_base."""
    a = p.mmap(None, 4 * P, RW, ANON)
    assert a == MMAP_BASE - 4 * P
    v = vma_at(p, a)
    assert (v.vm_start, v.vm_end) == (a, a + 4 * P)
    assert v.vm_flags == VM_READ | VM_WRITE | MAY | VM_ACCOUNT | VM_SOFTDIRTY
    assert v.vm_pgoff == a >> PAGE_SHIFT
    assert v.vm_file is None
    assert v.vm_ops is None
    assert v.anon_vma is None  # nothing faulted yet
    p.kernel.check_invariants()


def test_anon_readonly_private_is_not_accounted(p: Process) -> None:
    """``accountable_mapping``: only private *writable* mappings are charged (VM_ACCOUNT)."""
    a = p.mmap(None, P, PROT_READ, ANON)
    assert not vma_at(p, a).vm_flags & VM_ACCOUNT


def test_length_is_rounded_up_to_pages(p: Process) -> None:
    """``do_mmap``: ``len = PAGE_ALIGN(len)``."""
    a = p.mmap(None, P + 1, RW, ANON)
    v = vma_at(p, a)
    assert v.vm_end - v.vm_start == 2 * P


def test_anon_shared_is_shmem_backed(k: Kernel, p: Process) -> None:
    """``do_mmap`` MAP_SHARED anonymous: VM_SHARED|VM_MAYSHARE, pgoff 0; ``__mmap_region``
    → ``shmem_zero_setup`` gives it a shmem file; the data is shared with a fork child."""
    a = p.mmap(None, 2 * P, RW, SHANON)
    v = vma_at(p, a)
    assert v.vm_flags & (VM_SHARED | VM_MAYSHARE) == VM_SHARED | VM_MAYSHARE
    assert not v.vm_flags & VM_ACCOUNT
    assert v.vm_pgoff == 0
    assert v.vm_file is not None and v.vm_file.f_inode.kind == "shmem"
    p.write(a, b"parent")
    c = p.fork()
    assert c.read(a, 6) == b"parent"
    c.write(a + P, b"child")
    assert p.read(a + P, 5) == b"child"
    c.exit()
    p.exit()
    k.check_invariants()
    assert not k.mms


def test_adjacent_anon_mmaps_merge(p: Process) -> None:
    """``vma_merge_new_range``: a second anonymous mapping placed directly below the first
    (top-down) has contiguous pgoff and equal flags, so it extends the existing VMA."""
    a = p.mmap(None, 2 * P, RW, ANON)
    b = p.mmap(None, 3 * P, RW, ANON)
    assert b == a - 3 * P
    assert layout(p) == [(b, a + 2 * P, 0x73)]
    assert p.mm.map_count == 1
    p.kernel.check_invariants()


def test_different_prot_does_not_merge(p: Process) -> None:
    """``is_mergeable_vma``: flags must match (except VM_SOFTDIRTY)."""
    a = p.mmap(None, 2 * P, RW, ANON)
    b = p.mmap(None, 2 * P, PROT_READ, ANON)
    assert b == a - 2 * P
    assert p.mm.map_count == 2


def test_shared_anon_mappings_never_merge(p: Process) -> None:
    """``is_mergeable_vma``: each shared anonymous mapping has its own shmem file."""
    p.mmap(None, P, RW, SHANON)
    p.mmap(None, P, RW, SHANON)
    assert p.mm.map_count == 2


def test_large_anon_mapping_is_pmd_aligned(p: Process) -> None:
    """``__get_unmapped_area`` → ``thp_get_unmapped_area_vmflags`` for a PMD-multiple
    anonymous mapping without a hint."""
    p.mmap(None, P, RW, ANON)
    a = p.mmap(None, HPAGE_SIZE, RW, ANON)
    assert a % HPAGE_SIZE == 0


# -- address choice -------------------------------------------------------------------------------


def test_free_hint_is_honoured(p: Process) -> None:
    """``arch_get_unmapped_area_topdown``: a free, valid hint is used as is (rounded down to a
    page)."""
    hint = 0x1000_0000
    assert p.mmap(hint, 2 * P, RW, ANON) == hint
    assert p.mmap(hint + 4 * P + 123, P, PROT_READ, ANON) == hint + 4 * P


def test_occupied_hint_falls_back_to_top_down(p: Process) -> None:
    """``arch_get_unmapped_area_topdown``: a hint overlapping a mapping is ignored."""
    hint = 0x1000_0000
    p.mmap(hint, 2 * P, RW, ANON)
    b = p.mmap(hint + P, P, PROT_READ, ANON)
    assert b != hint + P
    assert b == MMAP_BASE - P


def test_hint_below_mmap_min_addr_is_raised(p: Process) -> None:
    """``round_hint_to_min``: a hint below ``mmap_min_addr`` becomes ``mmap_min_addr``."""
    assert p.mmap(0x1000, P, RW, ANON) == MMAP_MIN_ADDR


def test_top_down_fills_holes_below_base(p: Process) -> None:
    """``unmapped_area_topdown``: the highest gap that fits below mmap_base is chosen."""
    a = p.mmap(None, 8 * P, PROT_READ, ANON)
    p.munmap(a + 2 * P, 2 * P)  # a 2-page hole
    assert p.mmap(None, 2 * P, RW, ANON) == a + 2 * P
    # a 3-page request does not fit in the (now filled) hole: goes below everything
    assert p.mmap(None, 3 * P, PROT_EXEC, ANON) == a - 3 * P


# -- MAP_FIXED ------------------------------------------------------------------------------------


def test_map_fixed_replaces_the_middle(k: Kernel, p: Process) -> None:
    """``__mmap_region``: MAP_FIXED unmaps what it covers (``vms_gather_munmap_vmas`` splits
    both ends), drops its pages, and installs the new mapping."""
    a = p.mmap(None, 8 * P, RW, ANON)
    for i in range(8):
        p.write(a + i * P, bytes([i + 1]) * 8)
    free_before = k.pages.nr_free
    assert p.mmap(a + 3 * P, 2 * P, PROT_READ, ANON | MAP_FIXED) == a + 3 * P
    assert layout(p) == [
        (a, a + 3 * P, 0x73),
        (a + 3 * P, a + 5 * P, 0x71),
        (a + 5 * P, a + 8 * P, 0x73),
    ]
    assert k.pages.nr_free == free_before + 2  # the two replaced pages were freed
    assert p.read(a + 3 * P, 8) == bytes(8)
    assert p.read(a + 2 * P, 1) == b"\x03"
    assert p.read(a + 5 * P, 1) == b"\x06"
    k.check_invariants()


def test_map_fixed_spanning_several_vmas(p: Process) -> None:
    """``vms_gather_munmap_vmas`` detaches every VMA of the range, splitting the first and
    the last."""
    a = p.mmap(None, 9 * P, RW, ANON)
    p.mprotect(a + 3 * P, 3 * P, PROT_READ)
    assert len(layout(p)) == 3
    p.mmap(a + 2 * P, 5 * P, PROT_EXEC, ANON | MAP_FIXED)
    assert layout(p) == [
        (a, a + 2 * P, 0x73),
        (a + 2 * P, a + 7 * P, 0x74),
        (a + 7 * P, a + 9 * P, 0x73),
    ]
    p.kernel.check_invariants()


def test_map_fixed_closes_a_replaced_driver_vma(k: Kernel, p: Process) -> None:
    """``vms_clean_up_area``: the replaced driver piece gets ``->close`` (once), and its
    inserted pages lose the mapping's reference."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    obj = dev.objs[0]
    assert dev.pool[1].mapcount == 1
    p.mmap(a + P, P, RW, ANON | MAP_FIXED)
    # split at both ends: two ->open, then ->close on the replaced middle
    assert (obj.opens, obj.closes) == (2, 1)
    assert obj.closed_ranges == [(a + P, a + 2 * P, p.pid)]
    assert dev.pool[1].mapcount == 0 and dev.pool[1].refcount == 1
    dev.check_pieces()
    k.check_invariants()


def test_map_fixed_noreplace_eexist_changes_nothing(k: Kernel, p: Process) -> None:
    """``do_mmap``: MAP_FIXED_NOREPLACE over an existing mapping is EEXIST, and nothing is
    unmapped."""
    a = p.mmap(None, 4 * P, RW, ANON)
    p.write(a, b"keep")
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mmap(a + 3 * P, 2 * P, RW, ANON | MAP_FIXED_NOREPLACE)
    assert ei.value.errno == errno.EEXIST
    assert_unchanged(before, snapshot(k))
    assert p.read(a, 4) == b"keep"


def test_map_fixed_noreplace_in_a_hole_maps_there(p: Process) -> None:
    """``do_mmap``: MAP_FIXED_NOREPLACE behaves as MAP_FIXED when the range is free."""
    a = p.mmap(None, 4 * P, RW, ANON)
    p.munmap(a + P, 2 * P)
    assert p.mmap(a + P, 2 * P, PROT_READ, ANON | MAP_FIXED_NOREPLACE) == a + P


def test_map_fixed_unaligned_and_out_of_range(k: Kernel, p: Process) -> None:
    """``__get_unmapped_area``: MAP_FIXED returns the address as is; unaligned → EINVAL,
    past TASK_SIZE → ENOMEM."""
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mmap(0x1000_0001, P, RW, ANON | MAP_FIXED)
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as ei:
        p.mmap(TASK_SIZE - P, 2 * P, RW, ANON | MAP_FIXED)
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))
    assert p.mmap(TASK_SIZE - P, P, RW, ANON | MAP_FIXED) == TASK_SIZE - P


# -- device mappings ------------------------------------------------------------------------------


def test_device_mmap_inserts_pages(k: Kernel, p: Process) -> None:
    """``__mmap_region`` → ``mmap_file``: the driver's ``->mmap`` runs on the unlinked VMA;
    ``vm_insert_page`` sets VM_MIXEDMAP and maps each page with a reference and a mapcount;
    no ``->open`` for the initial VMA."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 3 * P, PROT_READ, MAP_SHARED, fd, 2 * P)
    v = vma_at(p, a)
    assert v.vm_flags & VM_MIXEDMAP
    assert v.vm_flags & VM_SHARED and v.vm_flags & VM_MAYWRITE  # opened O_RDWR
    assert v.vm_pgoff == 2
    assert v.vm_ops is dev.vm_ops
    assert v.vm_file is not None and v.vm_file.f_count == 2  # fd + VMA
    for i in range(3):
        pg = dev.pool[2 + i]
        assert (pg.refcount, pg.mapcount) == (2, 1)
        assert p.read(a + i * P, 4) == f"dev{2 + i}".encode()[:4]
    assert p.mm.rss_file == 3
    assert dev.objs[0].opens == 0
    assert dev.mmap_calls == 1
    dev.check_pieces()
    k.check_invariants()


def test_device_shared_write_reaches_the_device_page(k: Kernel, p: Process) -> None:
    """MAP_SHARED|PROT_WRITE: ``insert_page`` builds the PTE from ``vm_page_prot``
    (writable), so stores land in the driver's page."""
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, RW, MAP_SHARED, fd)
    p.write(a, b"user")
    assert dev.pool[0].read(0, 4) == b"user"


def test_device_private_write_copies(k: Kernel, p: Process) -> None:
    """MAP_PRIVATE: the inserted PTE is read-only (``PAGE_COPY``); a store faults into
    ``do_wp_page`` → ``wp_page_copy`` and the device page is untouched."""
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, RW, MAP_PRIVATE, fd)
    p.write(a, b"mine")
    assert dev.pool[0].read(0, 4) == b"dev0"
    assert p.read(a, 4) == b"mine"
    assert dev.pool[0].mapcount == 0
    assert p.mm.rss_anon == 1 and p.mm.rss_file == 0
    k.check_invariants()


def test_device_readonly_fd_shared_mapping(k: Kernel, p: Process) -> None:
    """``do_mmap``: MAP_SHARED on an fd without FMODE_WRITE: PROT_WRITE → EACCES; otherwise
    VM_SHARED and VM_MAYWRITE are cleared (so a later mprotect(PROT_WRITE) fails)."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t", O_RDONLY)
    with pytest.raises(KernelError) as ei:
        p.mmap(None, P, RW, MAP_SHARED, fd)
    assert ei.value.errno == errno.EACCES
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    v = vma_at(p, a)
    assert v.vm_flags & VM_MAYSHARE
    assert not v.vm_flags & (VM_SHARED | VM_MAYWRITE)
    with pytest.raises(KernelError) as ei:
        p.mprotect(a, P, RW)
    assert ei.value.errno == errno.EACCES


def test_device_refusal_undoes_everything(k: Kernel, p: Process) -> None:
    """``__mmap_region`` ``unmap_and_free_file_vma``: when ``->mmap`` fails, the pages it
    inserted are zapped, the file reference is dropped, the VMA is freed, the error is
    returned, and no ``->close`` runs."""
    dev = TestDevice(k, "/dev/t", hooks=True, refuse=errno.EPERM)
    fd = p.open("/dev/t")
    p.mmap(None, 2 * P, RW, ANON)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    assert ei.value.errno == errno.EPERM
    assert dev.mmap_calls == 1
    assert_unchanged(before, snapshot(k))
    assert all(pg.refcount == 1 and pg.mapcount == 0 for pg in dev.pool)
    k.check_invariants()


def test_device_refusal_over_map_fixed_leaves_a_hole(k: Kernel, p: Process) -> None:
    """``__mmap_region``: the replaced mapping is torn down (``vms_clean_up_area``) before
    ``->mmap``; when ``->mmap`` then fails, ``vms_abort_munmap_vmas`` leaves a gap."""
    TestDevice(k, "/dev/t", refuse=errno.ENODEV)
    fd = p.open("/dev/t")
    a = p.mmap(None, 6 * P, RW, ANON)
    p.write(a + 2 * P, b"gone")
    with pytest.raises(KernelError) as ei:
        p.mmap(a + 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    assert ei.value.errno == errno.ENODEV
    assert layout(p) == [(a, a + 2 * P, 0x73), (a + 4 * P, a + 6 * P, 0x73)]
    k.check_invariants()


def test_device_mmap_out_of_pool_is_refused(k: Kernel, p: Process) -> None:
    """A driver refusing in ``->mmap`` (``vm_map_pages`` style ENXIO): its errno is returned
    and nothing stays mapped."""
    TestDevice(k, "/dev/t", npages=4)
    fd = p.open("/dev/t")
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd, 3 * P)
    assert ei.value.errno == errno.ENXIO
    assert_unchanged(before, snapshot(k))


def test_device_without_mmap_is_enodev(k: Kernel, p: Process) -> None:
    """``do_mmap``: a file without ``f_op->mmap`` → ENODEV."""
    from safemm.model import FileOperationsStruct

    k.register_device("/dev/nommap", FileOperationsStruct("nommap"))
    fd = p.open("/dev/nommap")
    with pytest.raises(KernelError) as ei:
        p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    assert ei.value.errno == errno.ENODEV


def test_driver_set_flags_prevent_merging(k: Kernel, p: Process) -> None:
    """``vma_merge_new_range``: VM_SPECIAL VMAs (here VM_MIXEDMAP from vm_insert_page) never
    merge, even with contiguous offsets of the same file."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd, 2 * P)
    b = p.mmap(a - 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
    assert b == a - 2 * P
    assert p.mm.map_count == 2


def test_file_mapping_merges_before_mmap_hook(k: Kernel, p: Process) -> None:
    """``__mmap_region`` tries ``vma_merge_new_range`` before allocating a VMA: a mapping of
    the next offsets of the same file with equal flags extends the existing VMA, and the
    driver's ``->mmap`` is not called at all."""
    dev = TestDevice(k, "/dev/t", insert=False, hooks=True, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd, 0)
    b = p.mmap(a + 2 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 2 * P)
    assert b == a + 2 * P
    assert p.mm.map_count == 1
    assert dev.mmap_calls == 1
    assert p.read(a + 3 * P, 4) == b"dev3"
    dev.check_pieces()
    k.check_invariants()


def test_driver_flags_dontexpand(k: Kernel, p: Process) -> None:
    """``->mmap`` may set flags with ``vm_flags_set`` on the VMA under setup."""
    TestDevice(k, "/dev/t", set_flags=VM_DONTEXPAND, clear_flags=VM_MAYWRITE)
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    v = vma_at(p, a)
    assert v.vm_flags & VM_DONTEXPAND
    assert not v.vm_flags & VM_MAYWRITE


# -- limits ---------------------------------------------------------------------------------------


def test_max_map_count(p: Process) -> None:
    """``do_mmap``: ENOMEM once ``map_count > sysctl_max_map_count`` — note ``>``: a mapping
    made at exactly the limit succeeds and takes the mm one above it."""
    k = Kernel(max_map_count=4)
    q = k.spawn()
    base = 0x1000_0000
    for i in range(4):
        q.mmap(base + 2 * i * P, P, RW, ANON | MAP_FIXED)
    assert q.mm.map_count == 4
    q.mmap(base + 8 * P, P, RW, ANON | MAP_FIXED)  # map_count 4 is not > 4
    assert q.mm.map_count == 5
    k.check_invariants()
    before = snapshot(k)
    with pytest.raises(KernelError) as ei:
        q.mmap(base + 10 * P, P, RW, ANON | MAP_FIXED)
    assert ei.value.errno == errno.ENOMEM
    assert_unchanged(before, snapshot(k))
    # a merging mapping is refused too: the check comes before any merge
    with pytest.raises(KernelError):
        q.mmap(base + P, P, RW, ANON | MAP_FIXED)


def test_mmap_exec_and_anonymous_flags(p: Process) -> None:
    """``calc_vm_prot_bits``: PROT_EXEC → VM_EXEC."""
    a = p.mmap(None, P, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS)
    assert vma_at(p, a).vm_flags & 0x7 == 0x5


def test_zero_page_backs_anon_reads(k: Kernel, p: Process) -> None:
    """``do_anonymous_page``: a read of untouched anonymous memory maps the zero page."""
    a = p.mmap(None, P, RW, ANON)
    assert p.read(a, 8) == bytes(8)
    pte = p.mm.pgtables.lookup(a >> PAGE_SHIFT)
    assert pte is not None and pte.special and pte.pfn == 0 and not pte.write
    assert k.pages.pages[0].kind is PageKind.ZERO
