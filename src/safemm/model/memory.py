"""Inserting, zapping and faulting PTEs: the model's mm/memory.c.

Each function names the kernel function it mirrors and follows its checks in the kernel's
order, with the kernel's errno values: ``vm_insert_page`` (and its BUG_ONs),
``vm_insert_pages``, ``vm_map_pages``, ``vmf_insert_pfn``, ``vmf_insert_mixed``,
``remap_pfn_range``, ``zap_page_range_single``, ``zap_vma_ptes``, ``unmap_mapping_range`` (and
the trylock variant Jann Horn proposed for reclaim), ``copy_page_range`` for fork and
``handle_mm_fault`` with the anonymous, file, copy-on-write and write-protect fault paths.

Beyond the kernel, in strict mode (``Kernel(strict=True)``, the default) the model also reports
a driver inserting into or zapping a VMA that is not its own (H3), a 4K page inserted into a
hugetlb VMA (H3c), VM_MIXEDMAP set on a VMA with a userfaultfd context (H8, through
``vm_flags_set``), a driver page made writable by a write fault (H9), a VMA used without its
locks (H12) and a ``zap_vma_ptes`` that silently does nothing (H13).

Simplifications: no swap, no THP, no page cache readahead or writeback; dirty bits are tracked
but never written back; TLB flushes are implicit.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .mm_types import (
    FAULT_FLAG_VMA_LOCK,
    FAULT_FLAG_WRITE,
    VM_FAULT_DONE_COW,
    VM_FAULT_ERROR,
    VM_FAULT_LOCKED,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_RETRY,
    VM_FAULT_SIGBUS,
    VmFault,
)
from .mman import HPAGE_SHIFT, PAGE_SHIFT, PAGE_SIZE
from .mmap_lock import (
    mmap_read_trylock,
    mmap_read_unlock,
    vma_assert_locked,
    vma_end_read,
)
from .page_alloc import GFP_HIGHUSER, UNINSERTABLE, Gfp, Page, PageKind
from .pgtable import PMD_SHIFT, HugePmd, Pte
from .printk import SplatKind
from .rmap import anon_vma_prepare
from .sched import might_sleep
from .vm_flags import (
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_HUGETLB,
    VM_IO,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_SHARED,
    VM_WRITE,
    is_cow_mapping,
    pte_writable_for,
    vma_flags_accessible,
)
from .vm_flags_update import vm_flags_set

if TYPE_CHECKING:
    from .fs import AddressSpace
    from .kernel import Kernel
    from .mm_types import MmStruct, Vma

__all__ = [
    "handle_mm_fault",
    "remap_pfn_range",
    "unmap_mapping_range",
    "unmap_mapping_range_trylock",
    "vm_insert_page",
    "vm_insert_pages",
    "vm_map_pages",
    "vm_normal_page",
    "vmf_insert_mixed",
    "vmf_insert_pfn",
    "zap_page_range_single",
    "zap_vma_ptes",
]

_MEMORY_C = "mm/memory.c:"
ULONG_MAX = (1 << 64) - 1
_GFP_ANON = int(GFP_HIGHUSER | Gfp.ZERO)


# --------------------------------------------------------------------------------------------
# helpers


def _kernel(vma: Vma) -> Kernel:
    return vma.vm_mm.kernel


def vm_normal_page(vma: Vma, pte: Pte) -> Page | None:
    """``vm_normal_page``: the refcounted page behind a PTE, or None for a special PTE."""
    return None if pte.special else pte.page


def _rss_add(mm: MmStruct, page: Page, n: int) -> None:
    """``inc_mm_counter``/``dec_mm_counter`` with ``mm_counter(folio)``."""
    if page.kind is PageKind.ANON:
        mm.rss_anon += n
    elif page.mapping is not None and page.mapping.host.kind == "shmem":
        mm.rss_shmem += n
    else:
        mm.rss_file += n


def check_vma_owner(vma: Vma, what: str, where: str) -> None:
    """Strict mode (H3): report a driver touching a VMA whose file is not its own.

    The kernel checks nothing here; Rust binder's ``check_vma`` is the driver-side remedy. The
    running driver is the one whose hook, ioctl or shrinker the model entered.
    """
    k = _kernel(vma)
    owner = k.driver_owner()
    if owner is None or not k.strict:
        return
    f = vma.vm_file
    vm_owner = vma.vm_ops.owner if vma.vm_ops is not None else None
    file_owner = f.f_op.owner if f is not None and f.f_op is not None else None
    if vm_owner is owner or file_owner is owner:
        return
    if f is None:
        kind = "an anonymous VMA"
    elif vma.vm_flags & VM_HUGETLB:
        kind = "a hugetlb VMA"
    else:
        kind = f"a VMA of {f.path}"
    k.report(
        SplatKind.STRICT,
        "foreign-vma",
        f"{k.driver_name()} {what} {vma!r}, which is {kind}, not one of its own "
        f"(flags {vma.vm_flags:#x}); a different VMA now sits at that address",
        where,
    )


def vm_mixed_zeropage_allowed(vma: Vma) -> bool:
    """``vm_mixed_zeropage_allowed``: may the shared zero page be mapped here?"""
    flags = vma.vm_flags
    if is_cow_mapping(flags):
        return True
    if not flags & (VM_WRITE | VM_MAYWRITE):
        return True
    ops = vma.vm_ops
    return ops is not None and ops.pfn_mkwrite is not None and bool(flags & VM_IO)


def vma_wants_writenotify(vma: Vma) -> bool:
    """``vma_wants_writenotify`` (mm/mmap.c), for the cases the model has: a shared writable
    VMA whose vm_ops ask to be told of the first write (``->page_mkwrite`` or
    ``->pfn_mkwrite``) gets read-only PTEs (``vma_set_page_prot``), so that write faults
    (``do_wp_page``)."""
    if vma.vm_flags & (VM_WRITE | VM_SHARED) != VM_WRITE | VM_SHARED:
        return False
    ops = vma.vm_ops
    return ops is not None and (ops.page_mkwrite is not None or ops.pfn_mkwrite is not None)


def pte_write_for_vma(vma: Vma) -> bool:
    """Whether a PTE built from ``vma->vm_page_prot`` is writable: a shared writable mapping
    (``pte_writable_for``) without write notification (``vma_wants_writenotify``)."""
    return pte_writable_for(vma.vm_flags) and not vma_wants_writenotify(vma)


def _get_locked_pte_check(vma: Vma, addr: int, where: str) -> None:
    """``get_locked_pte`` → ``walk_to_pmd``: refuse a 4K table over a huge PMD (H3c)."""
    k = _kernel(vma)
    if vma.vm_flags & VM_HUGETLB and k.strict:
        k.report(
            SplatKind.STRICT,
            "insert-hugetlb",
            f"a 4K PTE is being installed at {addr:#x} inside hugetlb {vma!r}; hugetlb page "
            "tables cannot hold 4K pages (type confusion on unmap)",
            where,
        )
    if (addr >> PAGE_SHIFT >> PMD_SHIFT) in vma.vm_mm.pgtables.huge:
        k.report(
            SplatKind.BUG,
            "insert-hugetlb",
            f"walk_to_pmd found a huge PMD at {addr:#x} (VM_BUG_ON(pmd_trans_huge(*pmd)))",
            where,
            title=f"kernel BUG at {_MEMORY_C}walk_to_pmd!",
        )


def _mixedmap_bug_checks(vma: Vma, where: str) -> None:
    """The BUG_ONs of ``vm_insert_page``'s branch for a VMA without VM_MIXEDMAP."""
    k = _kernel(vma)
    mm = vma.vm_mm
    t = k.current
    write_locked = mm.mmap_lock.writer is t
    if k.strict:
        if not write_locked:
            held = (
                "a VMA read lock"
                if t in vma.readers
                else ("the mmap read lock" if t in mm.mmap_lock.readers else "no lock")
            )
            k.report(
                SplatKind.BUG,
                "insert-needs-mixedmap",
                f"vm_insert_page on {vma!r} without VM_MIXEDMAP while holding {held}: setting "
                "VM_MIXEDMAP needs the mmap write lock (caught every time; the kernel's "
                "BUG_ON(mmap_read_trylock()) only fires when no writer is queued)",
                where,
                title=f"kernel BUG at {where}!",
            )
    elif mmap_read_trylock(mm):
        # BUG_ON(mmap_read_trylock(vma->vm_mm)): the read lock is leaked, as in the kernel.
        k.report(
            SplatKind.BUG,
            "insert-needs-mixedmap",
            f"vm_insert_page on {vma!r} without VM_MIXEDMAP and without the mmap write lock",
            where,
            title=f"kernel BUG at {where}!",
        )
    if vma.vm_flags & VM_PFNMAP:
        k.report(
            SplatKind.BUG,
            "insert-pfnmap",
            f"vm_insert_page into VM_PFNMAP {vma!r} (BUG_ON(vma->vm_flags & VM_PFNMAP))",
            where,
            title=f"kernel BUG at {where}!",
        )


def _do_set_mixedmap(vma: Vma, where: str) -> None:
    """``vm_flags_set(vma, VM_MIXEDMAP)`` at the end of ``vm_insert_page``'s slow branch
    (strict mode reports it on a VMA with a userfaultfd context: H8, in ``vm_flags_set``)."""
    vm_flags_set(vma, VM_MIXEDMAP)


# --------------------------------------------------------------------------------------------
# insertion


def _insert_page(vma: Vma, addr: int, page: Page, where: str) -> None:
    """``insert_page``: validate, find the PTE, refuse an occupied one, map the page."""
    k = _kernel(vma)
    # validate_page_before_insert
    if page.refcount == 0 and page.kind is not PageKind.ZERO:
        raise KernelError(errno.EINVAL, f"vm_insert_page: page pfn {page.pfn:#x} is not in use")
    if page.kind is PageKind.ZERO:
        if not vm_mixed_zeropage_allowed(vma):
            raise KernelError(errno.EINVAL, "vm_insert_page: zero page into a writable mapping")
    elif page.kind in UNINSERTABLE:
        raise KernelError(
            errno.EINVAL, f"vm_insert_page: {page.kind.value} pages cannot be inserted"
        )
    _get_locked_pte_check(vma, addr, where)
    mm = vma.vm_mm
    vpn = addr >> PAGE_SHIFT
    if mm.pgtables.lookup(vpn) is not None:
        raise KernelError(errno.EBUSY, f"vm_insert_page: {addr:#x} is already mapped")
    # mk_pte(page, vma->vm_page_prot): PAGE_NONE for a PROT_NONE VMA (present, inaccessible)
    none = not vma_flags_accessible(vma.vm_flags)
    if page.kind is PageKind.ZERO:
        mm.pgtables.set(vpn, Pte(page.pfn, None, write=False, special=True, protnone=none))
    else:
        page.refcount += 1
        page.mapcount += 1
        _rss_add(mm, page, 1)
        pte = Pte(page.pfn, page, write=pte_write_for_vma(vma), special=False, protnone=none)
        mm.pgtables.set(vpn, pte)
    k.counters.insert_page += 1


def vm_insert_page(vma: Vma, addr: int, page: Page) -> None:
    """``vm_insert_page``: map a driver page into a user VMA (mm/memory.c).

    Checks, in the kernel's order: ``addr`` inside the VMA (EFAULT); without VM_MIXEDMAP the
    caller must hold the mmap write lock (BUG; H1) and the VMA must not be VM_PFNMAP (BUG; H2),
    then VM_MIXEDMAP is set; the page must be live, not anonymous and not typed (EINVAL); the
    PTE must be empty (EBUSY). The PTE takes a page reference and a mapcount.
    """
    where = _MEMORY_C + "vm_insert_page"
    vma_assert_locked(vma, where)
    if not vma.vm_start <= addr < vma.vm_end:
        raise KernelError(
            errno.EFAULT,
            f"vm_insert_page: {addr:#x} is outside {vma!r} [{vma.vm_start:#x}, {vma.vm_end:#x})",
        )
    set_mixedmap = not vma.vm_flags & VM_MIXEDMAP
    if set_mixedmap:
        _mixedmap_bug_checks(vma, where)
    check_vma_owner(vma, "inserts a page into", where)
    if set_mixedmap:
        _do_set_mixedmap(vma, where)
    _insert_page(vma, addr, page, where)


class InsertPagesError(KernelError):
    """``vm_insert_pages`` stopped early: ``not_inserted`` pages (from the failing one on)
    were not mapped; the earlier ones stay mapped."""

    def __init__(self, err: int, message: str, not_inserted: int) -> None:
        super().__init__(err, message)
        self.not_inserted = not_inserted


def vm_insert_pages(vma: Vma, addr: int, pages: list[Page]) -> int:
    """``vm_insert_pages``: insert consecutive pages; returns how many were NOT inserted.

    The whole range must lie in the VMA (EFAULT). Insertion stops at the first error, which is
    raised as :class:`InsertPagesError`; pages inserted before it stay mapped, as in C.
    """
    where = _MEMORY_C + "vm_insert_pages"
    vma_assert_locked(vma, where)
    end = addr + len(pages) * PAGE_SIZE
    if addr < vma.vm_start or end > vma.vm_end or end < addr:
        raise KernelError(
            errno.EFAULT, f"vm_insert_pages: range {addr:#x}+{len(pages)} pages is outside {vma!r}"
        )
    set_mixedmap = not vma.vm_flags & VM_MIXEDMAP
    if set_mixedmap:
        _mixedmap_bug_checks(vma, where)
    check_vma_owner(vma, "inserts pages into", where)
    if set_mixedmap:
        _do_set_mixedmap(vma, where)
    for i, page in enumerate(pages):
        try:
            _insert_page(vma, addr + i * PAGE_SIZE, page, where)
        except KernelError as e:
            raise InsertPagesError(e.errno or errno.EINVAL, e.message, len(pages) - i) from e
    return 0


def vm_map_pages(vma: Vma, pages: list[Page]) -> None:
    """``vm_map_pages``: map ``pages[vm_pgoff:]`` over the whole VMA (ENXIO if too small)."""
    count = len(pages)
    off = vma.vm_pgoff
    if off >= count or vma.pages > count - off:
        raise KernelError(errno.ENXIO, f"vm_map_pages: {count} pages cannot back {vma!r}")
    vm_insert_pages(vma, vma.vm_start, pages[off : off + vma.pages])


def _insert_pfn(vma: Vma, addr: int, pfn: int) -> int:
    """``insert_pfn``: a special PTE, no reference; an existing PTE is left alone."""
    mm = vma.vm_mm
    k = mm.kernel
    _get_locked_pte_check(vma, addr, _MEMORY_C + "insert_pfn")
    vpn = addr >> PAGE_SHIFT
    if mm.pgtables.lookup(vpn) is not None:
        return VM_FAULT_NOPAGE
    page: Page | None = None
    if k.pages.pfn_valid(pfn) and pfn != 0:
        page = k.pages.pfn_to_page(pfn)
        page.special_maps += 1
    none = not vma_flags_accessible(vma.vm_flags)  # pfn_pte(pfn, vm_page_prot)
    mm.pgtables.set(vpn, Pte(pfn, None, write=pte_write_for_vma(vma), special=True, protnone=none))
    k.counters.insert_pfn += 1
    return VM_FAULT_NOPAGE


def vmf_insert_pfn(vma: Vma, addr: int, pfn: int) -> int:
    """``vmf_insert_pfn``/``vmf_insert_pfn_prot``: map a raw pfn with a special PTE.

    BUG unless exactly one of VM_PFNMAP/VM_MIXEDMAP is set, on a COW VM_PFNMAP mapping, and on
    a struct-page pfn in a VM_MIXEDMAP VMA; an address outside the VMA is VM_FAULT_SIGBUS.
    Returns ``VM_FAULT_NOPAGE``. No reference is taken (H11: the driver must zap before it
    frees the memory).
    """
    where = _MEMORY_C + "vmf_insert_pfn_prot"
    k = _kernel(vma)
    vma_assert_locked(vma, where)
    flags = vma.vm_flags
    bad = None
    if not flags & (VM_PFNMAP | VM_MIXEDMAP):
        bad = "neither VM_PFNMAP nor VM_MIXEDMAP is set"
    elif flags & VM_PFNMAP and flags & VM_MIXEDMAP:
        bad = "both VM_PFNMAP and VM_MIXEDMAP are set"
    elif flags & VM_PFNMAP and is_cow_mapping(flags):
        bad = "VM_PFNMAP on a copy-on-write mapping"
    elif flags & VM_MIXEDMAP and k.pages.pfn_valid(pfn):
        bad = f"pfn {pfn:#x} has a struct page in a VM_MIXEDMAP VMA (use vm_insert_page)"
    if bad is not None:
        k.report(
            SplatKind.BUG,
            "pfn-insert-flags",
            f"{vma!r}: {bad}",
            where,
            title=f"kernel BUG at {where}!",
        )
    if not vma.vm_start <= addr < vma.vm_end:
        return VM_FAULT_SIGBUS
    check_vma_owner(vma, "inserts a pfn into", where)
    return _insert_pfn(vma, addr, pfn)


def vmf_insert_mixed(vma: Vma, addr: int, pfn: int) -> int:
    """``vmf_insert_mixed``: a pfn in a VM_MIXEDMAP VMA (special PTE on x86, even for RAM)."""
    where = _MEMORY_C + "vmf_insert_mixed"
    vma_assert_locked(vma, where)
    if pfn == 0:
        if not vm_mixed_zeropage_allowed(vma):
            return VM_FAULT_SIGBUS
    elif not vma.vm_flags & VM_MIXEDMAP:
        return VM_FAULT_SIGBUS
    if not vma.vm_start <= addr < vma.vm_end:
        return VM_FAULT_SIGBUS
    check_vma_owner(vma, "inserts a pfn into", where)
    return _insert_pfn(vma, addr, pfn)


def remap_pfn_range(vma: Vma, addr: int, pfn: int, size: int) -> None:
    """``remap_pfn_range``: map ``size`` bytes of raw pfns; sets VM_IO|VM_PFNMAP|
    VM_DONTEXPAND|VM_DONTDUMP. "Only safe if the mm semaphore is held" (write, in ->mmap).

    A COW mapping must be remapped whole (EINVAL) and gets ``vm_pgoff = pfn``. An occupied PTE
    is a BUG, as in ``remap_pte_range``.
    """
    where = _MEMORY_C + "remap_pfn_range"
    k = _kernel(vma)
    end = addr + ((size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if addr & (PAGE_SIZE - 1) or end <= addr or addr < vma.vm_start or end > vma.vm_end:
        raise KernelError(errno.EINVAL, f"remap_pfn_range: bad range {addr:#x}+{size:#x}")
    if is_cow_mapping(vma.vm_flags):
        if addr != vma.vm_start or end != vma.vm_end:
            raise KernelError(errno.EINVAL, "remap_pfn_range: COW mapping must be remapped whole")
        vma.vm_pgoff = pfn
    if vma.vm_flags & VM_MIXEDMAP:
        k.report(
            SplatKind.WARNING,
            "mixedmap-pfnmap-exclusive",
            f"remap_pfn_range on VM_MIXEDMAP {vma!r}",
            where,
        )
    check_vma_owner(vma, "remaps pfns into", where)
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP)
    mm = vma.vm_mm
    for i in range((end - addr) >> PAGE_SHIFT):
        if mm.pgtables.lookup((addr >> PAGE_SHIFT) + i) is not None:
            k.report(
                SplatKind.BUG,
                "pfn-insert-flags",
                "remap_pte_range over a present PTE",
                where,
                title=f"kernel BUG at {_MEMORY_C}remap_pte_range!",
            )
        _insert_pfn(vma, addr + i * PAGE_SIZE, pfn + i)


# --------------------------------------------------------------------------------------------
# zapping


def zap_pte_range(vma: Vma, start: int, end: int, even_cows: bool = True) -> int:
    """``unmap_single_vma``/``zap_pte_range``: clear the PTEs of ``[start, end)`` in ``vma``.

    The range is clipped to the VMA. Normal pages lose a mapcount and a reference (the last
    reference frees them); special PTEs are just cleared. With ``even_cows`` false, anonymous
    (COWed) pages in private mappings are kept (``zap_details.even_cows``). Returns the number
    of PTEs cleared.
    """
    start = max(start, vma.vm_start)
    end = min(end, vma.vm_end)
    if start >= end:
        return 0
    mm = vma.vm_mm
    k = mm.kernel
    pt = mm.pgtables
    if vma.vm_flags & VM_HUGETLB or pt.huge:
        _zap_huge(vma, start, end)
    n = 0
    for vpn, pte in pt.range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        page = pte.page
        if page is not None and not even_cows and page.kind is PageKind.ANON:
            continue
        pt.clear(vpn)
        n += 1
        if page is None:
            if pte.pfn and k.pages.pfn_valid(pte.pfn):
                k.pages.pfn_to_page(pte.pfn).special_maps -= 1
            continue
        _rss_add(mm, page, -1)
        if page.mapcount <= 0:
            k.report(
                SplatKind.BUG,
                "page-refcount",
                f"mapcount underflow on {page!r}",
                _MEMORY_C + "zap_present_ptes",
                title=f"kernel BUG at {_MEMORY_C}zap_present_ptes!",
            )
        page.mapcount -= 1
        k.pages.put_page(page, _MEMORY_C + "zap_present_ptes")
    k.counters.ptes_zapped += n
    return n


def _zap_huge(vma: Vma, start: int, end: int) -> None:
    """``__unmap_hugepage_range``: clear the huge PMDs whose 2 MiB lie inside the range."""
    mm = vma.vm_mm
    for idx, hp in mm.pgtables.huge_range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        base = idx << (PMD_SHIFT + PAGE_SHIFT)
        if base < start or base + (1 << HPAGE_SHIFT) > end:
            continue
        del mm.pgtables.huge[idx]
        hp.page.mapcount -= 1
        mm.kernel.pages.put_hugepage(hp.page)


def zap_page_range_single(vma: Vma, addr: int, size: int) -> None:
    """``zap_page_range_single`` (``zap_vma_range`` since 2026): remove the user PTEs of one
    range of one VMA, under the mmap or VMA read lock.

    May sleep (``mmu_notifier_invalidate_range_start`` calls ``might_sleep``; the PMD loop
    calls ``cond_resched``). The range is clipped to the VMA, as ``unmap_single_vma`` does.
    """
    where = _MEMORY_C + "zap_page_range_single"
    k = _kernel(vma)
    vma_assert_locked(vma, where)
    might_sleep(k, where)
    check_vma_owner(vma, "zaps", where)
    k.counters.zap_calls += 1
    zap_pte_range(vma, addr, addr + size)


def zap_vma_ptes(vma: Vma, addr: int, size: int) -> None:
    """``zap_vma_ptes`` (6.12; ``zap_special_vma_range`` since 2026): zap the PTEs of a
    VM_PFNMAP range.

    As in the kernel it silently does nothing unless the range lies inside the VMA and the
    VMA is VM_PFNMAP: on a VM_MIXEDMAP VMA the pages stay mapped (H13). Strict mode reports
    that no-op.
    """
    where = _MEMORY_C + "zap_vma_ptes"
    k = _kernel(vma)
    inside = vma.vm_start <= addr and addr + size <= vma.vm_end and size >= 0
    if not inside or not vma.vm_flags & VM_PFNMAP:
        if k.strict:
            why = (
                f"[{addr:#x}, {addr + size:#x}) is not inside it"
                if not inside
                else "it is not VM_PFNMAP"
                + (" (it is VM_MIXEDMAP)" if vma.vm_flags & VM_MIXEDMAP else "")
            )
            k.report(
                SplatKind.STRICT,
                "zap-vma-ptes",
                f"zap_vma_ptes on {vma!r} does nothing because {why}: every PTE stays mapped",
                where,
            )
        return
    zap_page_range_single(vma, addr, size)


def _unmap_mapping_tree(mapping: AddressSpace, first: int, last: int, even_cows: bool) -> None:
    """``unmap_mapping_range_tree``: zap every VMA of ``mapping`` overlapping the pgoffs."""
    for vma in list(mapping.i_mmap.iter_overlapping(first, last)):
        vba = vma.vm_pgoff
        vea = vba + vma.pages - 1
        zba = max(first, vba)
        zea = min(last, vea)
        start = ((zba - vba) << PAGE_SHIFT) + vma.vm_start
        end = ((zea - vba + 1) << PAGE_SHIFT) + vma.vm_start
        vma.vm_mm.kernel.counters.zap_calls += 1
        zap_pte_range(vma, start, end, even_cows)


def _pgoff_range(holebegin: int, holelen: int) -> tuple[int, int]:
    """The inclusive page-offset range of ``unmap_mapping_range``'s byte range."""
    hba = holebegin >> PAGE_SHIFT
    hlen = (holelen + PAGE_SIZE - 1) >> PAGE_SHIFT
    if holelen == 0:
        return hba, ULONG_MAX
    last = hba + hlen - 1
    return hba, min(last, ULONG_MAX)


def unmap_mapping_range(
    mapping: AddressSpace, holebegin: int, holelen: int, even_cows: bool = True
) -> None:
    """``unmap_mapping_range``: zap the range of the file in every VMA that maps it.

    Walks ``mapping.i_mmap`` (only the VMAs overlapping the range are visited) in every mm,
    wherever split, mremap or fork put them; takes no mmap lock and no mm reference, but takes
    ``i_mmap_rwsem`` for read, so it may sleep. ``holelen == 0`` means to the end of the file.
    """
    k = mapping.host.kernel
    where = _MEMORY_C + "unmap_mapping_range"
    if holebegin < 0 or holelen < 0:
        raise KernelError(errno.EINVAL, "unmap_mapping_range: negative offset or length")
    k.counters.unmap_mapping_range += 1
    first, last = _pgoff_range(holebegin, holelen)
    mapping.i_mmap_rwsem.down_read(k, "mm/memory.c:unmap_mapping_pages (i_mmap_lock_read)")
    try:
        might_sleep(k, where)
        _unmap_mapping_tree(mapping, first, last, even_cows)
    finally:
        mapping.i_mmap_rwsem.up_read(k, "mm/memory.c:unmap_mapping_pages")


def unmap_mapping_range_trylock(
    mapping: AddressSpace, holebegin: int, holelen: int, even_cows: bool = True
) -> bool:
    """A non-sleeping ``unmap_mapping_range`` for reclaim: False if ``i_mmap_rwsem`` is busy.

    Not in mainline: Jann Horn proposed "a trylock version of unmap_mapping_range()" for
    binder's shrinker (review). It takes ``i_mmap_rwsem`` with a trylock and zaps with a
    non-blocking MMU-notifier range, so it is safe in atomic context.
    """
    k = mapping.host.kernel
    if holebegin < 0 or holelen < 0:
        raise KernelError(errno.EINVAL, "unmap_mapping_range_trylock: negative offset or length")
    k.counters.trylock += 1
    if not mapping.i_mmap_rwsem.down_read_trylock(k, _MEMORY_C + "unmap_mapping_range_trylock"):
        k.counters.trylock_failed += 1
        k.counters.unmap_mapping_range_trylock_failed += 1
        return False
    try:
        k.counters.unmap_mapping_range += 1
        first, last = _pgoff_range(holebegin, holelen)
        _unmap_mapping_tree(mapping, first, last, even_cows)
    finally:
        mapping.i_mmap_rwsem.up_read(k, _MEMORY_C + "unmap_mapping_range_trylock")
    return True


# --------------------------------------------------------------------------------------------
# fork


def vma_needs_copy(dst: Vma, src: Vma) -> bool:
    """``vma_needs_copy``: copy page tables for PFN/MIXEDMAP VMAs and anon-backed VMAs."""
    if src.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
        return True
    if src.vm_flags & VM_HUGETLB:
        return True
    return src.anon_vma is not None


def copy_page_range(dst: Vma, src: Vma) -> None:
    """``copy_page_range``/``copy_present_ptes``: give the child the parent's PTEs.

    Normal pages gain a reference and a mapcount; special PTEs are copied verbatim (no
    reference, H11); in a COW mapping writable PTEs are write-protected in both parent and
    child; in a shared mapping the child's PTEs are clean.
    """
    if not vma_needs_copy(dst, src):
        return
    smm, dmm = src.vm_mm, dst.vm_mm
    k = smm.kernel
    cow = is_cow_mapping(src.vm_flags)
    shared = bool(src.vm_flags & VM_SHARED)
    for vpn, pte in smm.pgtables.range(src.vm_start >> PAGE_SHIFT, src.vm_end >> PAGE_SHIFT):
        page = pte.page
        if page is not None:
            page.refcount += 1
            page.mapcount += 1
            _rss_add(dmm, page, 1)
        elif pte.pfn and k.pages.pfn_valid(pte.pfn):
            k.pages.pfn_to_page(pte.pfn).special_maps += 1
        write = pte.write
        if cow and write:
            pte.write = False
            write = False
        child = Pte(
            pte.pfn,
            page,
            write=write,
            special=pte.special,
            dirty=pte.dirty and not shared,
            protnone=pte.protnone,
        )
        child.young = False
        dmm.pgtables.set(vpn, child)
    if src.vm_flags & VM_HUGETLB:
        for idx, hp in smm.pgtables.huge_range(
            src.vm_start >> PAGE_SHIFT, src.vm_end >> PAGE_SHIFT
        ):
            hp.page.refcount += 1
            hp.page.mapcount += 1
            dmm.pgtables.huge[idx] = HugePmd(hp.page, hp.write)


# --------------------------------------------------------------------------------------------
# faults


def _vmf_anon_prepare(vmf: VmFault) -> int:
    """``vmf_anon_prepare``/``__vmf_anon_prepare``: an anon_vma is needed. Under a VMA lock
    ``__anon_vma_prepare`` (which looks at the neighbours) needs the mmap lock too: it is
    taken with ``mmap_read_trylock``, and only if that fails is the VMA lock dropped and the
    fault retried (VM_FAULT_RETRY)."""
    vma = vmf.vma
    if vma.anon_vma is not None:
        return 0
    vma_locked = bool(vmf.flags & FAULT_FLAG_VMA_LOCK)
    if vma_locked and not mmap_read_trylock(vma.vm_mm):
        vma_end_read(vma)
        return VM_FAULT_RETRY
    anon_vma_prepare(vma)
    if vma_locked:
        mmap_read_unlock(vma.vm_mm)
    return 0


def _alloc_anon(vma: Vma) -> Page | None:
    try:
        return _kernel(vma).pages.alloc_page(_GFP_ANON, PageKind.ANON)
    except KernelError:
        return None


def _map_new_anon(vmf: VmFault, page: Page) -> None:
    """``folio_add_new_anon_rmap`` + ``set_pte_at`` for a fresh anonymous page."""
    vma = vmf.vma
    mm = vma.vm_mm
    page.mapcount = 1
    mm.rss_anon += 1
    mm.pgtables.set(
        vmf.address >> PAGE_SHIFT,
        Pte(page.pfn, page, write=bool(vma.vm_flags & VM_WRITE), special=False, dirty=True),
    )


def do_anonymous_page(vmf: VmFault) -> int:
    """``do_anonymous_page``: read → the shared zero page; write → a new zeroed page."""
    vma = vmf.vma
    mm = vma.vm_mm
    k = mm.kernel
    if vma.vm_flags & VM_SHARED:
        return VM_FAULT_SIGBUS
    k.counters.pgfault_anon += 1
    if not vmf.write:
        mm.pgtables.set(vmf.address >> PAGE_SHIFT, Pte(0, None, write=False, special=True))
        return 0
    ret = _vmf_anon_prepare(vmf)
    if ret:
        return ret
    page = _alloc_anon(vma)
    if page is None:
        return VM_FAULT_OOM
    _map_new_anon(vmf, page)
    return 0


def _call_fault(vmf: VmFault) -> int:
    """``__do_fault``: call the driver's ``->fault`` (in its context)."""
    vma = vmf.vma
    ops = vma.vm_ops
    assert ops is not None
    assert ops.fault is not None
    k = _kernel(vma)
    with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->fault"):
        ret = ops.fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW):
        if vmf.page is not None and not ret & VM_FAULT_NOPAGE:
            if ret & VM_FAULT_LOCKED:
                k.pages.unlock_page(vmf.page)
            k.pages.put_page(vmf.page)
            vmf.page = None
        return ret
    if vmf.page is None:
        k.report(
            SplatKind.BUG,
            "page-refcount",
            f"{ops.name}->fault returned 0 without a page",
            _MEMORY_C + "__do_fault",
            title=f"kernel BUG at {_MEMORY_C}__do_fault!",
        )
    return ret


def _finish_fault(vmf: VmFault, page: Page, anon: bool, locked: bool = False) -> int:
    """``finish_fault``/``set_pte_range``: map the page ``->fault`` returned (or a COW copy).

    The PTE takes over the reference the fault handler took. ``locked``: the handler returned
    ``VM_FAULT_LOCKED``, so the page stays locked until the PTE is in and is unlocked here
    (``do_read_fault``/``do_shared_fault``: ``finish_fault`` then ``folio_unlock``).
    """
    vma = vmf.vma
    mm = vma.vm_mm
    k = mm.kernel
    vpn = vmf.address >> PAGE_SHIFT
    if mm.pgtables.lookup(vpn) is not None:
        if locked:
            k.pages.unlock_page(page)
        k.pages.put_page(page)
        return VM_FAULT_NOPAGE
    if anon:
        _map_new_anon(vmf, page)
        return 0
    write = pte_write_for_vma(vma) or (vmf.write and bool(vma.vm_flags & VM_WRITE))
    page.mapcount += 1
    _rss_add(mm, page, 1)
    mm.pgtables.set(vpn, Pte(page.pfn, page, write=write, special=False, dirty=vmf.write))
    if locked:
        k.pages.unlock_page(page)
    return 0


def do_fault(vmf: VmFault) -> int:
    """``do_fault``: a missing PTE in a VMA with vm_ops (read, COW or shared fault)."""
    vma = vmf.vma
    k = _kernel(vma)
    ops = vma.vm_ops
    assert ops is not None
    k.counters.pgfault_file += 1
    if ops.fault is None:
        return VM_FAULT_SIGBUS
    # vmf_can_call_fault: without ->map_pages, ->fault runs only under the mmap lock.
    if vmf.flags & FAULT_FLAG_VMA_LOCK and not ops.map_pages:
        vma_end_read(vma)
        return VM_FAULT_RETRY
    if not vmf.write:
        ret = _call_fault(vmf)
        if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
            return ret
        assert vmf.page is not None
        return _finish_fault(vmf, vmf.page, anon=False, locked=bool(ret & VM_FAULT_LOCKED))
    if not vma.vm_flags & VM_SHARED:
        # do_cow_fault
        ret = _vmf_anon_prepare(vmf)
        if ret:
            return ret
        cow = _alloc_anon(vma)
        if cow is None:
            return VM_FAULT_OOM
        ret = _call_fault(vmf)
        if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW):
            k.pages.put_page(cow)
            return ret
        assert vmf.page is not None
        cow.copy_from(vmf.page)
        k.counters.cow_fault += 1
        if ret & VM_FAULT_LOCKED:
            k.pages.unlock_page(vmf.page)
        ret = _finish_fault(vmf, cow, anon=True)
        k.pages.put_page(vmf.page)
        return ret | VM_FAULT_DONE_COW
    # do_shared_fault
    ret = _call_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret
    assert vmf.page is not None
    if ops.page_mkwrite is not None:
        with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->page_mkwrite"):
            mk = ops.page_mkwrite(vmf)
        if mk & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            if ret & VM_FAULT_LOCKED:
                k.pages.unlock_page(vmf.page)
            k.pages.put_page(vmf.page)
            return mk
    return _finish_fault(vmf, vmf.page, anon=False, locked=bool(ret & VM_FAULT_LOCKED))


def _driver_page_made_writable(vma: Vma, pte: Pte, where: str) -> None:
    """Strict mode (H9): a write fault makes a driver's page or pfn writable."""
    k = _kernel(vma)
    if k.strict and vma.vm_flags & (VM_MIXEDMAP | VM_PFNMAP):
        what = f"page pfn {pte.pfn:#x}"
        k.report(
            SplatKind.STRICT,
            "access-after-insert",
            f"a write fault makes the driver's {what} writable in shared {vma!r}; user space "
            "can now write memory the driver inserted read-only",
            where,
        )


def do_wp_page(vmf: VmFault, pte: Pte) -> int:
    """``do_wp_page``: a write to a present, write-protected PTE.

    Shared mappings make the PTE writable (after ``->page_mkwrite``/``->pfn_mkwrite``);
    private ones reuse an exclusive anonymous page or copy (``wp_page_copy``).
    """
    vma = vmf.vma
    mm = vma.vm_mm
    k = mm.kernel
    page = vm_normal_page(vma, pte)
    if vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        ops = vma.vm_ops
        hook = None if ops is None else (ops.page_mkwrite if page is not None else ops.pfn_mkwrite)
        if ops is not None and hook is not None:
            with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->mkwrite"):
                ret = hook(vmf)
            if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
                return ret
        if page is None or page.kind is PageKind.KERNEL:
            _driver_page_made_writable(vma, pte, _MEMORY_C + "wp_page_reuse")
        pte.write = True
        pte.dirty = True
        k.counters.wp_reuse += 1
        return 0
    if page is not None and page.kind is PageKind.ANON and page.refcount == 1:
        pte.write = True
        pte.dirty = True
        k.counters.wp_reuse += 1
        return 0
    # wp_page_copy
    ret = _vmf_anon_prepare(vmf)
    if ret:
        return ret
    new = _alloc_anon(vma)
    if new is None:
        return VM_FAULT_OOM
    if page is not None:
        new.copy_from(page)
    elif pte.pfn:
        new.data = bytearray(read_pfn(k, pte.pfn, 0, PAGE_SIZE))
    k.counters.cow_fault += 1
    vpn = vmf.address >> PAGE_SHIFT
    mm.pgtables.clear(vpn)
    if page is not None:
        _rss_add(mm, page, -1)
        page.mapcount -= 1
        k.pages.put_page(page, _MEMORY_C + "wp_page_copy")
    elif pte.pfn and k.pages.pfn_valid(pte.pfn):
        k.pages.pfn_to_page(pte.pfn).special_maps -= 1
    _map_new_anon(vmf, new)
    return 0


def hugetlb_fault(vmf: VmFault) -> int:
    """``hugetlb_fault``: map a 2 MiB page from the pool (VM_FAULT_SIGBUS when empty).

    Simplification: private hugetlb pages are not copied on write after fork.
    """
    vma = vmf.vma
    mm = vma.vm_mm
    idx = vmf.address >> HPAGE_SHIFT
    hp = mm.pgtables.huge.get(idx)
    if hp is None:
        try:
            page = mm.kernel.pages.alloc_hugepage()
        except KernelError:
            return VM_FAULT_SIGBUS
        page.mapcount = 1
        mm.pgtables.huge[idx] = HugePmd(page, bool(vma.vm_flags & VM_WRITE))
    elif vmf.write and vma.vm_flags & VM_WRITE:
        hp.write = True
    return 0


def handle_mm_fault(vma: Vma, address: int, flags: int) -> int:
    """``handle_mm_fault``: resolve a fault at ``address`` in ``vma``; returns VM_FAULT_* bits.

    The caller holds the mmap read lock, or (``FAULT_FLAG_VMA_LOCK``) the VMA's read lock, in
    which case ``VM_FAULT_RETRY`` means the VMA lock was dropped and the fault must be retried
    under the mmap lock.
    """
    k = _kernel(vma)
    k.counters.pgfault += 1
    vmf = VmFault(vma, address, flags)
    if vma.vm_flags & VM_HUGETLB:
        return hugetlb_fault(vmf)
    pte = vma.vm_mm.pgtables.lookup(vmf.address >> PAGE_SHIFT)
    if pte is None:
        if vma.vm_ops is None:
            return do_anonymous_page(vmf)
        return do_fault(vmf)
    if pte.protnone:
        return 0
    if flags & FAULT_FLAG_WRITE and not pte.write:
        return do_wp_page(vmf, pte)
    pte.young = True
    if flags & FAULT_FLAG_WRITE:
        pte.dirty = True
    return 0


def read_pfn(k: Kernel, pfn: int, offset: int, length: int) -> bytes:
    """The bytes of frame ``pfn`` (RAM, zero page or device memory)."""
    if k.pages.pfn_valid(pfn):
        return k.pages.pfn_to_page(pfn).read(offset, length)
    mem = k.pages.iomem.get(pfn)
    return bytes(length) if mem is None else bytes(mem[offset : offset + length])


def write_pfn(k: Kernel, pfn: int, offset: int, data: bytes) -> None:
    """Store ``data`` into frame ``pfn``."""
    if k.pages.pfn_valid(pfn):
        k.pages.pfn_to_page(pfn).write(offset, data)
        return
    mem = k.pages.iomem.get(pfn)
    if mem is None:
        mem = k.pages.iomem[pfn] = bytearray(PAGE_SIZE)
    mem[offset : offset + len(data)] = data
