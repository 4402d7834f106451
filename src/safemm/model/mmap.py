"""Creating mappings and tearing address spaces down: the model's mm/mmap.c.

Mirrors ``do_mmap`` (argument checks, flag translation, the file checks), the x86
``arch_get_unmapped_area_topdown`` / ``__get_unmapped_area`` address choice (top-down from
``mmap_base``, hint honoured when free, 2 MiB alignment for large anonymous mappings as THP
does), ``mmap_region`` (unmap what MAP_FIXED replaces, merge with a neighbour or allocate a
VMA, call the driver's ``->mmap`` on the VMA under setup and undo everything if it refuses),
and ``exit_mmap``. MAP_LOCKED sets VM_LOCKED (cleared again on VM_SPECIAL and hugetlb VMAs, as
``__mmap_complete`` does); MAP_LOCKED and MAP_POPULATE (without MAP_NONBLOCK) fault the new
range in (``mm_populate``, errors ignored).

Simplifications: no RLIMIT_AS/RLIMIT_MEMLOCK (``mlock_future_ok``, ``can_do_mlock`` never
refuse), no overcommit accounting (VM_ACCOUNT is tracked as a flag because it affects
merging), no uprobes. The population runs before the mmap write lock is released (the kernel
populates after ``vm_mmap_pgoff`` dropped it, under the read lock).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .fs import FMODE_READ, FMODE_WRITE, File, fput, get_file, shmem_file_setup
from .gup import mm_populate
from .memory import zap_pte_range
from .mm_types import VM_FAULT_OOM, VM_FAULT_SIGBUS, Vma, VmFault, VmOperationsStruct
from .mman import (
    HPAGE_SIZE,
    LEGACY_MAP_MASK,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MAP_TYPE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    TASK_SIZE,
)
from .mmap_lock import mmap_read_lock, mmap_read_unlock, mmap_write_lock, mmap_write_unlock
from .page_alloc import GFP_HIGHUSER, Gfp, PageKind
from .printk import SplatKind
from .vm_flags import (
    VM_ACCOUNT,
    VM_DONTEXPAND,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NORESERVE,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_SPECIAL,
    VM_WRITE,
)
from .vma import (
    MunmapState,
    VmaMergeStruct,
    remove_vma,
    unlink_file_vma,
    vma_link,
    vma_merge_new_range,
    vms_clean_up_area,
    vms_clear_tree,
    vms_complete_munmap_vmas,
    vms_gather_munmap_vmas,
)

if TYPE_CHECKING:
    from .mm_types import MmStruct

__all__ = ["do_mmap", "exit_mmap", "get_unmapped_area"]

_MMAP_C = "mm/mmap.c:"
VM_NOHUGEPAGE = 0x40000000


def calc_vm_prot_bits(prot: int) -> int:
    """``calc_vm_prot_bits``: PROT_* → VM_READ/WRITE/EXEC."""
    flags = 0
    if prot & PROT_READ:
        flags |= VM_READ
    if prot & PROT_WRITE:
        flags |= VM_WRITE
    if prot & PROT_EXEC:
        flags |= VM_EXEC
    return flags


def calc_vm_flag_bits(flags: int) -> int:
    """``calc_vm_flag_bits``: MAP_GROWSDOWN/LOCKED/STACK → VM_* bits."""
    out = 0
    if flags & MAP_GROWSDOWN:
        out |= VM_GROWSDOWN
    if flags & MAP_LOCKED:
        out |= VM_LOCKED
    if flags & MAP_STACK:
        out |= VM_NOHUGEPAGE
    return out


def arch_validate_prot(prot: int) -> bool:
    """``arch_validate_prot`` (generic): only R/W/X/SEM bits."""
    return prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) == 0


def get_unmapped_area(
    mm: MmStruct, file: File | None, addr: int, length: int, pgoff: int, flags: int
) -> int:
    """``__get_unmapped_area`` + ``arch_get_unmapped_area_topdown`` (x86).

    MAP_FIXED returns ``addr`` (checked for alignment and range); a free page-aligned hint is
    honoured; otherwise the highest free gap below ``mmap_base`` is used (bottom-up from
    ``mmap_min_addr`` if none). Large anonymous mappings without a hint are 2 MiB aligned.
    """
    if length > TASK_SIZE:
        raise KernelError(errno.ENOMEM, f"mmap: length {length:#x} exceeds TASK_SIZE")
    if flags & MAP_FIXED:
        chosen = addr
    else:
        chosen = -1
        if addr:
            addr &= PAGE_MASK
            if addr <= TASK_SIZE - length and addr >= mm.mmap_min_addr:
                nxt = mm.mm_mt.find(addr)
                if nxt is None or addr + length <= mm.mm_mt.range_of(nxt.vm_start)[0]:
                    chosen = addr
        if chosen < 0:
            align = PAGE_SIZE
            if file is None and not addr and length % HPAGE_SIZE == 0 and not flags & MAP_SHARED:
                align = HPAGE_SIZE
            found = mm.mm_mt.unmapped_area_topdown(length, PAGE_SIZE, mm.mmap_base, align)
            if found is None and align != PAGE_SIZE:
                found = mm.mm_mt.unmapped_area_topdown(length, PAGE_SIZE, mm.mmap_base, PAGE_SIZE)
            if found is None:
                found = mm.mm_mt.unmapped_area(length, mm.mmap_min_addr, TASK_SIZE, PAGE_SIZE)
            if found is None:
                raise KernelError(errno.ENOMEM, f"mmap: no free range of {length:#x} bytes")
            chosen = found
    if chosen > TASK_SIZE - length:
        raise KernelError(errno.ENOMEM, f"mmap: {chosen:#x}+{length:#x} exceeds TASK_SIZE")
    if chosen & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"mmap: address {chosen:#x} is not page aligned")
    return chosen


def do_mmap(
    mm: MmStruct, file: File | None, addr: int, length: int, prot: int, flags: int, pgoff: int
) -> int:
    """``do_mmap``: validate and create a mapping; the caller holds the mmap write lock.

    Errors, in the kernel's order: EINVAL (zero length), ENOMEM (length overflows), EOVERFLOW
    (pgoff overflow), ENOMEM (``map_count`` over ``max_map_count``), the address choice's
    EINVAL/ENOMEM, EEXIST (MAP_FIXED_NOREPLACE over a mapping), EOPNOTSUPP (unknown flags with
    MAP_SHARED_VALIDATE), EACCES (file mode), ENODEV (no ``->mmap``), EINVAL (bad map type).
    """
    if length == 0:
        raise KernelError(errno.EINVAL, "mmap: zero length")
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if not flags & MAP_FIXED and addr and addr < mm.mmap_min_addr:
        addr = (mm.mmap_min_addr + PAGE_SIZE - 1) & PAGE_MASK
    length = (length + PAGE_SIZE - 1) & PAGE_MASK
    if length == 0 or length > 1 << 64:
        raise KernelError(errno.ENOMEM, "mmap: length overflows")
    if pgoff + (length >> PAGE_SHIFT) >= 1 << 64:
        raise KernelError(errno.EOVERFLOW, "mmap: offset overflows")
    if mm.map_count > mm.kernel.max_map_count:
        raise KernelError(errno.ENOMEM, f"mmap: {mm.map_count} VMAs exceed max_map_count")
    vm_flags = calc_vm_prot_bits(prot) | calc_vm_flag_bits(flags)
    vm_flags |= VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    addr = get_unmapped_area(mm, file, addr, length, pgoff, flags)
    if flags & MAP_FIXED_NOREPLACE and mm.mm_mt.find_intersection(addr, addr + length):
        raise KernelError(errno.EEXIST, f"mmap: MAP_FIXED_NOREPLACE over a mapping at {addr:#x}")
    hugetlb = bool(flags & MAP_HUGETLB)
    if file is not None and not hugetlb:
        mtype = flags & MAP_TYPE
        if mtype in (MAP_SHARED, MAP_SHARED_VALIDATE):
            if mtype == MAP_SHARED:
                flags &= LEGACY_MAP_MASK
            if flags & ~LEGACY_MAP_MASK:
                raise KernelError(errno.EOPNOTSUPP, f"mmap: unsupported flags {flags:#x}")
            if prot & PROT_WRITE and not file.f_mode & FMODE_WRITE:
                raise KernelError(errno.EACCES, f"mmap: {file.path} is not open for writing")
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.f_mode & FMODE_WRITE:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        elif mtype != MAP_PRIVATE:
            raise KernelError(errno.EINVAL, f"mmap: bad mapping type {mtype:#x}")
        if not file.f_mode & FMODE_READ:
            raise KernelError(errno.EACCES, f"mmap: {file.path} is not open for reading")
        if file.f_op is None or file.f_op.mmap is None:
            raise KernelError(errno.ENODEV, f"mmap: {file.path} does not support mmap")
        if vm_flags & VM_GROWSDOWN:
            raise KernelError(errno.EINVAL, "mmap: MAP_GROWSDOWN on a file")
    else:
        mtype = flags & MAP_TYPE
        if mtype == MAP_SHARED:
            if vm_flags & VM_GROWSDOWN:
                raise KernelError(errno.EINVAL, "mmap: MAP_GROWSDOWN with MAP_SHARED")
            pgoff = 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
        elif mtype == MAP_PRIVATE:
            pgoff = addr >> PAGE_SHIFT
        else:
            raise KernelError(errno.EINVAL, f"mmap: bad mapping type {mtype:#x}")
        if hugetlb:
            if addr & (HPAGE_SIZE - 1) or length & (HPAGE_SIZE - 1):
                raise KernelError(errno.EINVAL, "mmap: MAP_HUGETLB range not 2 MiB aligned")
            vm_flags |= VM_HUGETLB | VM_DONTEXPAND
            pgoff = 0
    if flags & MAP_NORESERVE:
        vm_flags |= VM_NORESERVE
    addr = mmap_region(mm, file, addr, length, vm_flags, pgoff, hugetlb)
    if vm_flags & VM_LOCKED or flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE:
        # vm_mmap_pgoff: mm_populate(ret, populate), errors ignored.
        mm_populate(mm, addr, length, ignore_errors=True)
    return addr


def _accountable(file: File | None, vm_flags: int) -> bool:
    """``accountable_mapping``: private writable (non-hugetlb) mappings are charged."""
    if vm_flags & VM_HUGETLB:
        return False
    return vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE


def _hugetlb_vm_ops() -> VmOperationsStruct:
    def may_split(vma: Vma, addr: int) -> None:
        if addr & (HPAGE_SIZE - 1):
            raise KernelError(errno.EINVAL, "hugetlb VMAs split only at 2 MiB boundaries")

    return VmOperationsStruct("hugetlb_vm_ops", may_split=may_split, map_pages=True)


def _shmem_vm_ops() -> VmOperationsStruct:
    """``shmem_anon_vm_ops``: ``shmem_fault`` → ``shmem_get_folio_gfp`` finds or allocates
    the page cache page at ``pgoff``; a page at or past the file's ``i_size`` is
    VM_FAULT_SIGBUS (``-EINVAL`` for SGP_CACHE), so growing a shared anonymous mapping with
    mremap gives a tail that cannot be touched (its file keeps the size it had at mmap)."""

    def fault(vmf: object) -> int:
        assert isinstance(vmf, VmFault)
        f = vmf.vma.vm_file
        assert f is not None
        if vmf.pgoff << PAGE_SHIFT >= f.f_inode.i_size:
            return VM_FAULT_SIGBUS
        mapping = f.f_mapping
        page = mapping.pages.get(vmf.pgoff)
        if page is None:
            pages = vmf.vma.vm_mm.kernel.pages
            try:
                page = pages.alloc_page(GFP_HIGHUSER | Gfp.ZERO, PageKind.FILE)
            except KernelError:
                return VM_FAULT_OOM
            page.mapping = mapping
            page.index = vmf.pgoff
            mapping.pages[vmf.pgoff] = page
        page.refcount += 1
        vmf.page = page
        return 0

    return VmOperationsStruct("shmem_anon_vm_ops", fault=fault, map_pages=True)


SHMEM_VM_OPS = _shmem_vm_ops()
HUGETLB_VM_OPS = _hugetlb_vm_ops()


def mmap_region(
    mm: MmStruct,
    file: File | None,
    addr: int,
    length: int,
    vm_flags: int,
    pgoff: int,
    hugetlb: bool = False,
) -> int:
    """``mmap_region``/``__mmap_region``: install ``[addr, addr+length)``.

    Existing VMAs in the range are gathered and, once PTEs are cleared (``vms_clean_up_area``,
    which also runs their ``->close``), replaced; if ``->mmap`` then fails the old mapping is
    gone and a hole remains, as in Linux. A new anonymous range may merge with a neighbour;
    otherwise a VMA is allocated and, for a file, handed to the driver's ``->mmap`` *before* it
    is linked (``VmAreaNew``). A refusal zaps whatever the driver inserted and frees the VMA.
    """
    k = mm.kernel
    end = addr + length
    vms = MunmapState(mm, addr, end, unlock=False)
    first = mm.mm_mt.find_intersection(addr, end)
    if first is not None:
        vms_gather_munmap_vmas(vms, first)
    pr = mm.mm_mt.prev(addr)
    nr = mm.mm_mt.next_after(end)
    prev = pr[2] if pr is not None else None
    nxt = nr[2] if nr is not None else None
    if _accountable(file, vm_flags):
        vm_flags |= VM_ACCOUNT
    vms_clean_up_area(vms)
    vms_clear_tree(vms)
    vma: Vma | None = None
    if not hugetlb:
        vmg = VmaMergeStruct(mm, prev, nxt, None, addr, end, pgoff, vm_flags, file, None, None)
        vma = vma_merge_new_range(vmg)
    if vma is None:
        vma = Vma(mm, addr, end, pgoff, vm_flags)
        if file is not None:
            vma.vm_file = get_file(file)
            try:
                _call_mmap(file, vma)
            except BaseException:
                _undo_failed_mmap(vma)
                vms_complete_munmap_vmas(vms)
                raise
        elif hugetlb:
            vma.vm_file = shmem_file_setup(k, "hugetlbfs", length)
            vma.vm_ops = HUGETLB_VM_OPS
        elif vm_flags & VM_SHARED:
            vma.vm_file = shmem_file_setup(k, "shmem", length)
            vma.vm_ops = SHMEM_VM_OPS
        retried = None
        # "If vm_flags changed after mmap_file(), we should try merge vma again".
        if file is not None and vma.vm_flags != vm_flags and not vma.vm_flags & VM_SPECIAL:
            vmg = VmaMergeStruct(
                mm, prev, nxt, None, addr, end, vma.vm_pgoff, vma.vm_flags, vma.vm_file, None, None
            )
            retried = vma_merge_new_range(vmg)
        if retried is not None:
            if vma.vm_file is not None:
                fput(vma.vm_file)
            vma = retried
        else:
            vma_link(mm, vma)
    vms_complete_munmap_vmas(vms)
    vma.vm_flags |= VM_SOFTDIRTY
    if vma.vm_flags & VM_LOCKED and vma.vm_flags & (VM_SPECIAL | VM_HUGETLB):
        # __mmap_complete: special and hugetlb VMAs are never locked.
        vma.vm_flags &= ~VM_LOCKED_MASK
    return addr


def _call_mmap(file: File, vma: Vma) -> None:
    """``mmap_file`` → ``f_op->mmap``, with the post-call checks of ``__mmap_region``."""
    k = vma.vm_mm.kernel
    fops = file.f_op
    assert fops is not None
    assert fops.mmap is not None
    start, flags = vma.vm_start, vma.vm_flags
    vma.in_setup = True
    try:
        with k.driver_hook(fops.owner, file, f"{fops.name}->mmap"):
            fops.mmap(file, vma)
    finally:
        vma.in_setup = False
    if vma.vm_start != start:
        k.report(
            SplatKind.WARNING,
            "mmap-hook",
            f"{fops.name}->mmap moved the VMA from {start:#x} to {vma.vm_start:#x}",
            _MMAP_C + "mmap_region",
        )
    if not flags & VM_MAYWRITE and vma.vm_flags & VM_MAYWRITE:
        k.report(
            SplatKind.WARNING,
            "mmap-hook",
            f"{fops.name}->mmap added VM_MAYWRITE to {vma!r}",
            _MMAP_C + "mmap_region",
        )


def _undo_failed_mmap(vma: Vma) -> None:
    """``unmap_and_free_file_vma``: drop the file, zap what the driver inserted, free."""
    f = vma.vm_file
    vma.vm_file = None
    zap_pte_range(vma, vma.vm_start, vma.vm_end)
    if f is not None:
        fput(f)
    vma.freed = True


def exit_mmap(mm: MmStruct) -> None:
    """``exit_mmap``: zap everything under the read lock, then close and free every VMA under
    the write lock (``->close`` runs in the context of whoever dropped the last mm_users)."""
    with mm.kernel.kernel_section("exit_mmap"):
        _exit_mmap(mm)


def _exit_mmap(mm: MmStruct) -> None:
    mmap_read_lock(mm)
    vmas = mm.vmas()
    for v in vmas:
        zap_pte_range(v, v.vm_start, v.vm_end)
    mmap_read_unlock(mm)
    mmap_write_lock(mm)
    try:
        for v in vmas:
            unlink_file_vma(v)
        for v in vmas:
            mm.mm_mt.erase(v.vm_start)
            v.detached = True
            remove_vma(v)
    finally:
        mmap_write_unlock(mm)
    mm.exited = True
