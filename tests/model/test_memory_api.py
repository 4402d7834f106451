"""The raw kernel API drivers call: include/linux/mm.h ``vma_lookup``/``find_vma`` and
``vm_flags_*``; mm/memory.c ``vm_insert_page`` (``insert_page``,
``validate_page_before_insert``, ``insert_page_into_pte_locked``), ``vm_insert_pages``,
``vm_map_pages``, ``vmf_insert_pfn_prot``, ``vmf_insert_mixed``, ``remap_pfn_range``,
``zap_page_range_single``, ``unmap_mapping_range``; and the trylock variant proposed in the
review."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, Page, Process
from safemm.model.memory import (
    InsertPagesError,
    remap_pfn_range,
    unmap_mapping_range,
    unmap_mapping_range_trylock,
    vm_insert_page,
    vm_insert_pages,
    vm_map_pages,
    vmf_insert_mixed,
    vmf_insert_pfn,
    zap_page_range_single,
)
from safemm.model.mm_types import VM_FAULT_NOPAGE, VM_FAULT_SIGBUS
from safemm.model.mman import (
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SHIFT,
    PROT_READ,
    PROT_WRITE,
)
from safemm.model.mmap_lock import (
    find_vma,
    lock_vma_under_rcu,
    mmap_read_lock,
    mmap_read_unlock,
    vma_end_read,
    vma_lookup,
)
from safemm.model.page_alloc import GFP_KERNEL, PageKind
from safemm.model.pgtable import Pte
from safemm.model.vm_flags import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_IO,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
)
from safemm.model.vm_flags_update import vm_flags_clear, vm_flags_mod, vm_flags_reset, vm_flags_set
from safemm.testing import SplatKind, expect_splat

from .strategies import (
    ANON,
    RW,
    P,
    TestDevice,
    assert_unchanged,
    in_task,
    locked,
    pte_at,
    snapshot,
    vma_at,
)


def pte(p: Process, addr: int) -> Pte | None:
    return p.mm.pgtables.lookup(addr >> PAGE_SHIFT)


def new_page(k: Kernel, kind: PageKind = PageKind.KERNEL) -> Page:
    return k.pages.alloc_page(int(GFP_KERNEL), kind)


def plain_device(k: Kernel, p: Process, npages: int = 4, prot: int = PROT_READ) -> int:
    """A shared mapping of a device that inserts nothing and sets no flags."""
    TestDevice(k, "/dev/plain", insert=False)
    fd = p.open("/dev/plain")
    return p.mmap(None, npages * P, prot, MAP_SHARED, fd)


# -- lookup ---------------------------------------------------------------------------------------


def test_vma_lookup_and_find_vma(k: Kernel, p: Process) -> None:
    """``vma_lookup``: the VMA containing addr or NULL; ``find_vma``: the first VMA ending
    above addr (maybe starting above it). Both through the maple tree."""
    a = p.mmap(0x2000_0000, 2 * P, RW, ANON)
    b = p.mmap(0x2000_8000, P, PROT_READ, ANON)
    with locked(p, write=False) as mm:
        assert vma_lookup(mm, a + P) is vma_at(p, a)
        assert vma_lookup(mm, a + 2 * P) is None
        assert find_vma(mm, a + 2 * P) is vma_at(p, b)
        assert find_vma(mm, b + P) is None
        assert vma_lookup(mm, a - 1) is None
        assert find_vma(mm, 0) is vma_at(p, a)


def test_lookup_without_the_mmap_lock_warns(k: Kernel, p: Process) -> None:
    """``vma_lookup`` → ``mmap_assert_locked``: lockdep complains without the mmap lock."""
    a = p.mmap(None, P, RW, ANON)
    with expect_splat("mmap-lock-held", SplatKind.WARNING), in_task(p):
        vma_lookup(p.mm, a)


# -- vm_insert_page: every check in order ---------------------------------------------------------


def test_insert_outside_the_vma_is_efault_first(k: Kernel, p: Process) -> None:
    """``vm_insert_page`` check 1: addr outside [vm_start, vm_end) → EFAULT, before the
    VM_MIXEDMAP BUG_ONs (so even with only the read lock)."""
    a = plain_device(k, p)
    pg = new_page(k)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei, locked(p, write=False):
        vm_insert_page(vma_at(p, a), a + 4 * P, pg)
    assert ei.value.errno == errno.EFAULT
    assert_unchanged(before, snapshot(k))


@pytest.mark.parametrize("strict", [True, False])
def test_insert_without_mixedmap_under_read_lock_is_bug(strict: bool) -> None:
    """``vm_insert_page`` check 2 (H1): without VM_MIXEDMAP, ``BUG_ON(mmap_read_trylock())``
    fires when only the read lock is held (strict mode reports it whatever the trylock
    does)."""
    k = Kernel(strict=strict)
    p = k.spawn()
    a = plain_device(k, p)
    with expect_splat("insert-needs-mixedmap", SplatKind.BUG), locked(p, write=False):
        vm_insert_page(vma_at(p, a), a, new_page(k))


def test_insert_with_queued_writer_slips_past_the_bug_on() -> None:
    """H1, the kernel's blind spot: with a writer queued, the read trylock fails, so the
    BUG_ON passes; ``vm_flags_set`` → ``vma_start_write`` then only WARNs (lockdep) and the
    flag is written without the write lock."""
    k = Kernel(strict=False, panic_on_warn=False)
    p = k.spawn()
    a = plain_device(k, p)
    pg = new_page(k)
    with locked(p, write=False) as mm:
        mm.mmap_lock.queued_writers = 1
        vm_insert_page(vma_at(p, a), a, pg)
        mm.mmap_lock.queued_writers = 0
    assert vma_at(p, a).vm_flags & VM_MIXEDMAP
    assert pte(p, a) is not None
    assert any("mmap_lock" in line and "write lock is required" in line for line in k.dmesg)


def test_insert_into_pfnmap_is_bug(k: Kernel, p: Process) -> None:
    """``vm_insert_page`` check 3 (H2): ``BUG_ON(vma->vm_flags & VM_PFNMAP)`` when VM_MIXEDMAP
    is not set."""
    TestDevice(k, "/dev/pfn", insert=False, set_flags=VM_PFNMAP | VM_IO)
    fd = p.open("/dev/pfn")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    with expect_splat("insert-pfnmap", SplatKind.BUG), locked(p):
        vm_insert_page(vma_at(p, a), a, new_page(k))


def test_insert_sets_mixedmap_even_when_the_page_is_refused(k: Kernel, p: Process) -> None:
    """``vm_insert_page``: ``vm_flags_set(vma, VM_MIXEDMAP)`` happens before
    ``validate_page_before_insert``, so a refused page still leaves the VMA VM_MIXEDMAP."""
    a = plain_device(k, p)
    pg = new_page(k)
    k.pages.put_page(pg)  # now free: refcount 0
    with pytest.raises(KernelError) as ei, locked(p):
        vm_insert_page(vma_at(p, a), a, pg)
    assert ei.value.errno == errno.EINVAL
    assert vma_at(p, a).vm_flags & VM_MIXEDMAP
    assert pte(p, a) is None


@pytest.mark.parametrize("kind", [PageKind.ANON, PageKind.SLAB, PageKind.PAGETABLE])
def test_insert_refuses_anon_and_typed_pages(k: Kernel, p: Process, kind: PageKind) -> None:
    """``validate_page_before_insert``: ``folio_test_anon`` or ``page_has_type`` → EINVAL."""
    a = plain_device(k, p)
    pg = new_page(k, kind)
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_MIXEDMAP)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei, locked(p):
        vm_insert_page(vma_at(p, a), a, pg)
    assert ei.value.errno == errno.EINVAL
    assert_unchanged(before, snapshot(k))


def test_zero_page_rules(k: Kernel, p: Process) -> None:
    """``vm_mixed_zeropage_allowed``: the zero page may go into a COW mapping or one without
    VM_WRITE|VM_MAYWRITE, not into a shared writable-capable one (EINVAL); it is mapped with
    a special PTE and no reference."""
    zero = k.pages.zero_page
    a = plain_device(k, p)  # shared, VM_MAYWRITE (fd is O_RDWR)
    with pytest.raises(KernelError) as ei, locked(p):
        vm_insert_page(vma_at(p, a), a, zero)
    assert ei.value.errno == errno.EINVAL
    fd = p.open("/dev/plain")
    b = p.mmap(None, P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd)  # COW
    with locked(p):
        vm_insert_page(vma_at(p, b), b, zero)
        v = vma_at(p, a)
        vm_flags_clear(v, VM_MAYWRITE)
        vm_insert_page(v, a, zero)
    for addr in (a, b):
        e = pte(p, addr)
        assert e is not None and e.special and e.pfn == 0 and e.page is None
    assert p.read(b, 2) == bytes(2)
    k.check_invariants()


def test_insert_into_occupied_pte_is_ebusy(k: Kernel, p: Process) -> None:
    """``insert_page_into_pte_locked``: a present PTE is never overwritten → EBUSY."""
    a = plain_device(k, p)
    pg1, pg2 = new_page(k), new_page(k)
    with locked(p):
        vm_insert_page(vma_at(p, a), a, pg1)
    before = snapshot(k)
    with pytest.raises(KernelError) as ei, locked(p):
        vm_insert_page(vma_at(p, a), a, pg2)
    assert ei.value.errno == errno.EBUSY
    assert_unchanged(before, snapshot(k))


def test_insert_success_accounting(k: Kernel, p: Process) -> None:
    """``insert_page_into_pte_locked``: ``folio_get`` (+1 ref), file rmap (+1 mapcount),
    ``inc_mm_counter(MM_FILEPAGES)``, PTE from ``vm_page_prot``: read-only here, writable for
    a shared writable mapping."""
    a = plain_device(k, p)
    fd = p.open("/dev/plain")
    b = p.mmap(None, P, RW, MAP_SHARED, fd)
    pg = new_page(k)
    pg.write(0, b"kernel")
    with locked(p):
        vm_insert_page(vma_at(p, a), a + P, pg)
        vm_insert_page(vma_at(p, b), b, pg)
    assert (pg.refcount, pg.mapcount) == (3, 2)
    assert p.mm.rss_file == 2
    ea, eb = pte(p, a + P), pte(p, b)
    assert ea is not None and not ea.write and not ea.special and ea.page is pg
    assert eb is not None and eb.write
    assert p.read(a + P, 6) == b"kernel"
    p.write(b, b"K")
    assert pg.read(0, 1) == b"K"
    k.check_invariants()


def test_insert_under_vma_lock_with_mixedmap(k: Kernel, p: Process) -> None:
    """With VM_MIXEDMAP already set, the VMA read lock (``lock_vma_under_rcu``) suffices."""
    a = plain_device(k, p)
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_MIXEDMAP)
    pg = new_page(k)
    with in_task(p):
        v = lock_vma_under_rcu(p.mm, a)
        assert v is not None
        vm_insert_page(v, a, pg)
        vma_end_read(v)
    assert pte(p, a) is not None


def test_insert_unlocked_vma_is_reported_in_strict_mode(k: Kernel, p: Process) -> None:
    """Strict (H12): a VMA used without its locks."""
    a = plain_device(k, p)
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_MIXEDMAP)
    with expect_splat("vma-locked", SplatKind.STRICT), in_task(p):
        vm_insert_page(vma_at(p, a), a, new_page(k))


# -- vm_insert_pages / vm_map_pages ---------------------------------------------------------------


def test_insert_pages_stops_at_the_first_error(k: Kernel, p: Process) -> None:
    """``insert_pages``: stops at the first failing page, returns its error with ``*num`` =
    pages not inserted; the pages before it stay mapped."""
    a = plain_device(k, p)
    good = [new_page(k) for _ in range(2)]
    bad = new_page(k, PageKind.ANON)
    with pytest.raises(InsertPagesError) as ei, locked(p):
        vm_insert_pages(vma_at(p, a), a, [good[0], good[1], bad, new_page(k)])
    assert ei.value.errno == errno.EINVAL and ei.value.not_inserted == 2
    assert [pte(p, a + i * P) is not None for i in range(4)] == [True, True, False, False]
    k.check_invariants()


def test_insert_pages_range_check(k: Kernel, p: Process) -> None:
    """``vm_insert_pages``: the whole range must be in the VMA → EFAULT, nothing inserted."""
    a = plain_device(k, p)
    pages = [new_page(k) for _ in range(3)]
    before = snapshot(k)
    with pytest.raises(KernelError) as ei, locked(p):
        vm_insert_pages(vma_at(p, a), a + 2 * P, pages)
    assert ei.value.errno == errno.EFAULT
    assert_unchanged(before, snapshot(k))
    with locked(p):
        assert vm_insert_pages(vma_at(p, a), a + P, pages) == 0


def test_vm_map_pages(k: Kernel, p: Process) -> None:
    """``__vm_map_pages``: ``vm_pgoff >= num`` or a VMA larger than the rest of the object →
    ENXIO; otherwise every page of the VMA is inserted from ``pages[vm_pgoff]`` on."""
    TestDevice(k, "/dev/plain", insert=False)
    fd = p.open("/dev/plain")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd, P)
    pages = [new_page(k) for _ in range(3)]
    for i, pg in enumerate(pages):
        pg.write(0, bytes([65 + i]))
    with locked(p):
        vm_map_pages(vma_at(p, a), pages)
    assert p.read(a, 1) == b"B" and p.read(a + P, 1) == b"C"
    b = p.mmap(None, 3 * P, PROT_READ, MAP_SHARED, fd, P)
    c = p.mmap(None, P, PROT_READ, MAP_SHARED, fd, 3 * P)
    before = snapshot(k)
    for addr in (b, c):
        with pytest.raises(KernelError) as ei, locked(p):
            vm_map_pages(vma_at(p, addr), pages)
        assert ei.value.errno == errno.ENXIO
    assert_unchanged(before, snapshot(k))


# -- pfn insertion --------------------------------------------------------------------------------


def pfn_device(k: Kernel, p: Process, flags: int, mapflags: int = MAP_SHARED) -> int:
    TestDevice(k, "/dev/pfn", insert=False, set_flags=flags)
    fd = p.open("/dev/pfn")
    return p.mmap(None, 2 * P, PROT_READ, mapflags, fd)


IOMEM = 1 << 20  # a pfn beyond RAM: device memory without a struct page


def test_vmf_insert_pfn_special_pte(k: Kernel, p: Process) -> None:
    """``vmf_insert_pfn_prot`` → ``insert_pfn``: a special PTE, no reference; a present PTE
    is left alone (still VM_FAULT_NOPAGE); outside the VMA → VM_FAULT_SIGBUS."""
    a = pfn_device(k, p, VM_PFNMAP | VM_IO)
    with locked(p, write=False):
        v = vma_at(p, a)
        assert vmf_insert_pfn(v, a, IOMEM) == VM_FAULT_NOPAGE
        assert vmf_insert_pfn(v, a, IOMEM + 1) == VM_FAULT_NOPAGE
        assert vmf_insert_pfn(v, a + 2 * P, IOMEM) == VM_FAULT_SIGBUS
    e = pte(p, a)
    assert e is not None and e.special and e.pfn == IOMEM and e.page is None
    k.pages.iomem[IOMEM] = bytearray(b"mmio" + bytes(P - 4))
    assert p.read(a, 4) == b"mmio"
    k.check_invariants()


@pytest.mark.parametrize(
    ("flags", "mapflags", "pfn"),
    [
        (0, MAP_SHARED, IOMEM),  # neither PFNMAP nor MIXEDMAP
        (VM_PFNMAP | VM_IO, MAP_PRIVATE, IOMEM),  # PFNMAP on a COW mapping
        (VM_MIXEDMAP, MAP_SHARED, 5),  # MIXEDMAP and pfn_valid
    ],
)
def test_vmf_insert_pfn_bug_ons(
    k: Kernel, p: Process, flags: int, mapflags: int, pfn: int
) -> None:
    """``vmf_insert_pfn_prot``: the BUG_ONs on the VMA's flags and the pfn."""
    a = pfn_device(k, p, flags, mapflags)
    with expect_splat("pfn-insert-flags", SplatKind.BUG), locked(p, write=False):
        vmf_insert_pfn(vma_at(p, a), a, pfn)


def test_vmf_insert_pfn_both_flags_bug() -> None:
    """``vmf_insert_pfn_prot``: ``BUG_ON`` when both VM_PFNMAP and VM_MIXEDMAP are set
    (setting both is itself a WARN)."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    a = pfn_device(k, p, VM_PFNMAP | VM_IO)
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_MIXEDMAP)
    assert any("mixedmap-pfnmap-exclusive" in d for d in k.dmesg)
    with expect_splat("pfn-insert-flags", SplatKind.BUG), locked(p, write=False):
        vmf_insert_pfn(vma_at(p, a), a, IOMEM)


def test_vmf_insert_mixed(k: Kernel, p: Process) -> None:
    """``vmf_insert_mixed`` → ``vm_mixed_ok``: needs VM_MIXEDMAP (else SIGBUS) unless it is
    the zero pfn and the zero page is allowed; on x86 (pte_special) even a RAM pfn gets a
    special, unreferenced PTE."""
    a = pfn_device(k, p, 0)
    pg = new_page(k)
    with locked(p, write=False):
        assert vmf_insert_mixed(vma_at(p, a), a, pg.pfn) == VM_FAULT_SIGBUS
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_MIXEDMAP)
    with locked(p, write=False):
        v = vma_at(p, a)
        assert vmf_insert_mixed(v, a, pg.pfn) == VM_FAULT_NOPAGE
        assert vmf_insert_mixed(v, a + P, 0) == VM_FAULT_SIGBUS  # shared + MAYWRITE
        assert vmf_insert_mixed(v, a + 2 * P, pg.pfn) == VM_FAULT_SIGBUS  # outside
    e = pte(p, a)
    assert e is not None and e.special and e.page is None
    assert pg.refcount == 1 and pg.mapcount == 0 and pg.special_maps == 1


def test_remap_pfn_range_in_mmap(k: Kernel, p: Process) -> None:
    """``remap_pfn_range_internal``: sets VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP and maps
    special PTEs; a COW mapping remapped whole gets ``vm_pgoff = pfn``."""
    dev = TestDevice(k, "/dev/pfn", insert=False, pfnmap=True)
    fd = p.open("/dev/pfn")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    v = vma_at(p, a)
    want = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP
    assert v.vm_flags & want == want
    assert v.vm_pgoff == 0
    assert all(pte_at(p, a + i * P).special for i in range(2))
    assert dev.pool[0].refcount == 1 and dev.pool[0].special_maps == 1
    b = p.mmap(None, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd)
    assert vma_at(p, b).vm_pgoff == dev.pool[0].pfn
    k.check_invariants()


def test_remap_pfn_range_partial_cow_is_einval(k: Kernel, p: Process) -> None:
    """``remap_pfn_range_internal``: a COW mapping must be remapped whole → EINVAL."""
    a = pfn_device(k, p, 0, MAP_PRIVATE)
    with pytest.raises(KernelError) as ei, locked(p):
        remap_pfn_range(vma_at(p, a), a, IOMEM, P)
    assert ei.value.errno == errno.EINVAL
    assert not vma_at(p, a).vm_flags & VM_PFNMAP


def test_remap_pfn_range_over_a_present_pte_is_bug(k: Kernel, p: Process) -> None:
    """``remap_pte_range``: ``BUG_ON(!pte_none(ptep_get(pte)))``."""
    a = pfn_device(k, p, VM_PFNMAP | VM_IO)
    with locked(p):
        remap_pfn_range(vma_at(p, a), a, IOMEM, P)
    with expect_splat("pfn-insert-flags", SplatKind.BUG), locked(p):
        remap_pfn_range(vma_at(p, a), a, IOMEM, 2 * P)


# -- zapping --------------------------------------------------------------------------------------


def test_zap_page_range_single(k: Kernel, p: Process) -> None:
    """``zap_page_range_single``: clears the PTEs of the range (clipped to the VMA); inserted
    pages lose their mapping reference; the next access faults (here SIGBUS: no ->fault)."""
    from safemm.model import BusError

    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    with locked(p, write=False):
        zap_page_range_single(vma_at(p, a), a + P, 8 * P)
    assert pte(p, a) is not None and pte(p, a + P) is None and pte(p, a + 3 * P) is None
    assert (dev.pool[1].refcount, dev.pool[1].mapcount) == (1, 0)
    assert p.mm.rss_file == 1
    with pytest.raises(BusError):
        p.read(a + 2 * P, 1)
    k.check_invariants()


def test_zap_is_a_sleeping_operation(k: Kernel, p: Process) -> None:
    """``zap_page_range_single`` may sleep (mmu notifiers, ``cond_resched``): under a spinlock
    it is "sleeping function called from invalid context"."""
    from safemm.model.locking import SpinLock

    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    lock = SpinLock("test_lock")
    with locked(p, write=False):
        lock.lock(k)
        try:
            with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP):
                zap_page_range_single(vma_at(p, a), a, P)
        finally:
            lock.unlock(k)
    assert "BUG: sleeping function called from invalid context" in k.dmesg[-1]


def test_unmap_mapping_range_reaches_every_mapper(k: Kernel, p: Process) -> None:
    """``unmap_mapping_range`` → ``unmap_mapping_range_tree``: every VMA of the file in
    ``i_mmap`` whose pgoff range overlaps is zapped — in every process, after splits, mremap
    moves and fork — and only those VMAs are visited."""
    dev = TestDevice(k, "/dev/t", insert=False, hooks=True, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(0x2000_0000, 8 * P, PROT_READ, MAP_SHARED, fd, 0)
    p.mprotect(a + 2 * P, 2 * P, 0)  # split: [0,2) [2,4) [4,8)
    p.mprotect(a + 2 * P, 2 * P, PROT_READ)  # still split: ->close VMAs are not merged away?
    moved = p.mremap(a + 4 * P, 2 * P, 2 * P, 3, 0x3000_0000)  # pgoff 4,5 now elsewhere
    c = p.fork()
    q = k.spawn("other")
    qfd = q.open("/dev/t")
    b = q.mmap(None, 4 * P, PROT_READ, MAP_SHARED, qfd, 4 * P)  # pgoff 4..7
    for proc, base, n in ((p, a, 4), (p, moved, 2), (p, a + 6 * P, 2), (c, moved, 2), (q, b, 4)):
        for i in range(n):
            proc.read(base + i * P, 1)
    zaps = k.counters.zap_calls
    mapping = p.fds[fd].f_mapping
    with in_task(q):
        unmap_mapping_range(mapping, 5 * P, 2 * P)  # pgoffs 5 and 6
    # overlapping VMAs: p's moved [4,6), p's [6,8), c's moved [4,6), c's [6,8), q's [4,8)
    assert k.counters.zap_calls - zaps == 5
    assert pte(p, moved) is not None and pte(p, moved + P) is None
    assert pte(c, moved) is not None and pte(c, moved + P) is None
    assert pte(p, a + 6 * P) is None and pte(p, a + 7 * P) is not None
    assert pte(c, a + 6 * P) is None
    assert [pte(q, b + i * P) is None for i in range(4)] == [False, True, True, False]
    assert all(pte(p, a + i * P) is not None for i in range(4))
    assert dev.pool[5].mapcount == 0 and dev.pool[6].mapcount == 0
    k.check_invariants()


def test_unmap_mapping_range_to_end_of_file(k: Kernel, p: Process) -> None:
    """``unmap_mapping_range``: ``holelen == 0`` means to the end of the file."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    with in_task(p):
        unmap_mapping_range(p.fds[fd].f_mapping, 2 * P, 0)
    assert [pte(p, a + i * P) is None for i in range(4)] == [False, False, True, True]


def test_unmap_mapping_range_trylock_fails_when_write_held(k: Kernel, p: Process) -> None:
    """The trylock variant (review): ``i_mmap_rwsem`` write-held by another task → returns
    False without touching anything; it succeeds once the writer is gone."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    mapping = p.fds[fd].f_mapping
    q = k.spawn("writer")
    before = snapshot(k)
    with in_task(q):
        mapping.i_mmap_rwsem.down_write(k, "test: i_mmap_lock_write")
        with in_task(p):
            assert not unmap_mapping_range_trylock(mapping, 0, 0)
        mapping.i_mmap_rwsem.up_write(k, "test: i_mmap_unlock_write")
    assert_unchanged(before, snapshot(k))
    assert k.counters.unmap_mapping_range_trylock_failed == 1
    with in_task(p):
        assert unmap_mapping_range_trylock(mapping, 0, 0)
    assert pte(p, a) is None


def test_unmap_mapping_range_sleeps_but_trylock_does_not(k: Kernel, p: Process) -> None:
    """``unmap_mapping_range`` takes ``i_mmap_rwsem`` with a sleeping ``down_read``: reported
    under a spinlock; the trylock variant is fine there."""
    from safemm.model.locking import SpinLock

    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    mapping = p.fds[fd].f_mapping
    lock = SpinLock("lru_lock")
    with in_task(p):
        lock.lock(k)
        try:
            assert unmap_mapping_range_trylock(mapping, 0, 0)
            with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP):
                unmap_mapping_range(mapping, 0, 0)
        finally:
            lock.unlock(k)


# -- vm_flags_* -----------------------------------------------------------------------------------


def test_vm_flags_set_clear_mod_need_the_write_lock(k: Kernel, p: Process) -> None:
    """``vm_flags_set``/``vm_flags_clear``/``vm_flags_mod`` call ``vma_start_write``, which
    asserts the mmap write lock; under the write lock they work."""
    a = p.mmap(None, P, RW, ANON)
    v = vma_at(p, a)
    with expect_splat("mmap-write-lock-held", SplatKind.WARNING), locked(p, write=False):
        vm_flags_set(v, VM_DONTCOPY)
    with expect_splat("mmap-write-lock-held", SplatKind.WARNING), locked(p, write=False):
        vm_flags_clear(v, VM_DONTCOPY)
    with expect_splat("mmap-write-lock-held", SplatKind.WARNING), locked(p, write=False):
        vm_flags_mod(v, VM_DONTCOPY, 0)
    assert not v.vm_flags & VM_DONTCOPY
    with locked(p):
        vm_flags_set(v, VM_DONTCOPY)
        vm_flags_mod(v, VM_DONTDUMP, VM_DONTCOPY)
    assert v.vm_flags & (VM_DONTCOPY | VM_DONTDUMP) == VM_DONTDUMP


def test_vm_flags_reset_needs_a_write_locked_vma(k: Kernel, p: Process) -> None:
    """``vm_flags_reset`` → ``vma_assert_write_locked``: the caller must have called
    ``vma_start_write`` in this write-lock epoch; the epoch ends with ``mmap_write_unlock``."""
    from safemm.model.mmap_lock import vma_start_write

    a = p.mmap(None, P, RW, ANON)
    v = vma_at(p, a)
    with expect_splat("vma-write-locked", SplatKind.WARNING), locked(p):
        vm_flags_reset(v, v.vm_flags & ~VM_READ)
    with locked(p):
        vma_start_write(v)
        vm_flags_reset(v, v.vm_flags & ~VM_READ)
    assert not v.vm_flags & VM_READ


def test_vm_flags_without_panic_on_warn_only_log() -> None:
    """With ``panic_on_warn`` off, the lockdep assertion only goes to dmesg and the
    (unsynchronised) write happens, as on a production kernel."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    a = p.mmap(None, P, RW, ANON)
    n = len(k.dmesg)
    with locked(p, write=False):
        vm_flags_set(vma_at(p, a), VM_DONTCOPY)
    assert vma_at(p, a).vm_flags & VM_DONTCOPY
    assert len(k.dmesg) > n and "WARNING" in k.dmesg[n]


def test_read_lock_taken_by_driver_and_released(k: Kernel, p: Process) -> None:
    """Plain ``mmap_read_lock``/``mmap_read_unlock`` inside one kernel entry."""
    a = p.mmap(0x2000_0000, P, RW, ANON)
    p.mmap(a + P, P, RW, ANON | MAP_FIXED)
    with in_task(p):
        mmap_read_lock(p.mm)
        assert vma_lookup(p.mm, a + P) is vma_at(p, a)
        mmap_read_unlock(p.mm)
    k.check_invariants()
