"""Resizing and moving mappings: the model's mm/mremap.c.

Mirrors the ``mremap`` syscall body, ``vma_to_resize``, ``vma_expandable``/
``vma_merge_extend`` (grow in place), ``mremap_to`` (MREMAP_FIXED / MREMAP_DONTUNMAP: the
destination is unmapped first, so a later failure leaves it unmapped, as in Linux) and
``move_vma`` (``->may_split`` at both ends, ``copy_vma`` with ``->open`` on a new copy,
``move_page_tables``, the ``->mremap`` veto that moves the PTEs back and unmaps the new range,
then the munmap of the old range, which runs ``->close`` on it).

Simplifications: no mlock, no userfaultfd events, no accounting (the VM_ACCOUNT flag dance in
``move_vma`` leaves the flags as they were, so it is not replayed).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .mman import (
    HPAGE_SIZE,
    MAP_FIXED,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    TASK_SIZE,
)
from .mmap import get_unmapped_area
from .mmap_lock import vma_start_write
from .pgtable import PMD_SHIFT
from .vm_flags import VM_DONTEXPAND, VM_HUGETLB, VM_MAYSHARE, VM_PFNMAP, VM_SEALED, VM_SHARED
from .vma import VmaMergeStruct, copy_vma, do_vmi_munmap, vma_merge_new_range

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["do_mremap"]

_R = "mm/mremap.c:"


def _page_align(x: int) -> int:
    return (x + PAGE_SIZE - 1) & PAGE_MASK


def vma_to_resize(mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int) -> Vma:
    """``vma_to_resize``: the VMA at ``addr``, checked for the resize."""
    vma = mm.mm_mt.load(addr)
    if vma is None:
        raise KernelError(errno.EFAULT, f"mremap: no mapping at {addr:#x}")
    if old_len == 0 and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        raise KernelError(errno.EINVAL, "mremap: old_len 0 duplicates only shared mappings")
    if flags & MREMAP_DONTUNMAP and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise KernelError(errno.EINVAL, "mremap: MREMAP_DONTUNMAP on VM_DONTEXPAND/VM_PFNMAP")
    if old_len > vma.vm_end - addr:
        raise KernelError(errno.EFAULT, f"mremap: old range crosses the end of {vma!r}")
    if new_len == old_len:
        return vma
    pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
    if pgoff + (new_len >> PAGE_SHIFT) >= 1 << 64:
        raise KernelError(errno.EINVAL, "mremap: offset overflows")
    if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise KernelError(
            errno.EFAULT, f"mremap: {vma!r} is VM_DONTEXPAND or VM_PFNMAP and cannot grow"
        )
    return vma


def move_page_tables(vma: Vma, old_addr: int, new_vma: Vma, new_addr: int, length: int) -> int:
    """``move_page_tables``: move the PTEs of ``[old_addr, +length)`` to ``new_addr``; pages
    stay mapped (no reference changes). Returns the length moved."""
    mm = vma.vm_mm
    pt = mm.pgtables
    shift = (new_addr - old_addr) >> PAGE_SHIFT
    moved = pt.range(old_addr >> PAGE_SHIFT, (old_addr + length) >> PAGE_SHIFT)
    for vpn, _ in moved:
        pt.clear(vpn)
    for vpn, pte in moved:
        pt.set(vpn + shift, pte)
    if pt.huge:
        hshift = (new_addr - old_addr) >> (PAGE_SHIFT + PMD_SHIFT)
        for idx, hp in pt.huge_range(old_addr >> PAGE_SHIFT, (old_addr + length) >> PAGE_SHIFT):
            del pt.huge[idx]
            pt.huge[idx + hshift] = hp
    return length


def move_vma(
    vma: Vma, old_addr: int, old_len: int, new_len: int, new_addr: int, flags: int
) -> int:
    """``move_vma``: copy the VMA to ``new_addr``, move its PTEs, let ``->mremap`` veto, then
    unmap the old range (unless MREMAP_DONTUNMAP)."""
    mm = vma.vm_mm
    k = mm.kernel
    if mm.map_count >= k.max_map_count - 3:
        raise KernelError(errno.ENOMEM, "mremap: too many VMAs")
    ops = vma.vm_ops
    if ops is not None and ops.may_split is not None:
        with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->may_split"):
            if vma.vm_start != old_addr:
                ops.may_split(vma, old_addr)
            if vma.vm_end != old_addr + old_len:
                ops.may_split(vma, old_addr + old_len)
    vma_start_write(vma, _R + "move_vma")
    new_pgoff = vma.vm_pgoff + ((old_addr - vma.vm_start) >> PAGE_SHIFT)
    new_vma = copy_vma(vma, new_addr, new_len, new_pgoff)
    moved = move_page_tables(vma, old_addr, new_vma, new_addr, old_len)
    err: KernelError | None = None
    if ops is not None and ops.mremap is not None:
        try:
            with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->mremap"):
                ops.mremap(new_vma)
        except KernelError as e:
            err = e
    if err is not None:
        move_page_tables(new_vma, new_addr, vma, old_addr, moved)
        do_vmi_munmap(mm, new_addr, new_len, unlock=False)
        raise err
    if flags & MREMAP_DONTUNMAP:
        return new_addr
    do_vmi_munmap(mm, old_addr, old_len, unlock=False)
    return new_addr


def _mremap_to(
    mm: MmStruct, addr: int, old_len: int, new_addr: int, new_len: int, flags: int
) -> int:
    """``mremap_to``: MREMAP_FIXED (destination unmapped first) or MREMAP_DONTUNMAP."""
    k = mm.kernel
    if new_addr & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"mremap: new address {new_addr:#x} is not aligned")
    if new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len:
        raise KernelError(errno.EINVAL, "mremap: new range exceeds TASK_SIZE")
    if addr + old_len > new_addr and new_addr + new_len > addr:
        raise KernelError(errno.EINVAL, "mremap: old and new ranges overlap")
    if mm.map_count + 2 >= k.max_map_count - 3:
        raise KernelError(errno.ENOMEM, "mremap: too many VMAs")
    if flags & MREMAP_FIXED:
        do_vmi_munmap(mm, new_addr, new_len, unlock=False)
    if old_len > new_len:
        do_vmi_munmap(mm, addr + new_len, old_len - new_len, unlock=False)
        old_len = new_len
    vma = vma_to_resize(mm, addr, old_len, new_len, flags)
    map_flags = MAP_FIXED if flags & MREMAP_FIXED else 0
    if vma.vm_flags & VM_MAYSHARE:
        map_flags |= MAP_SHARED
    pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
    ret = get_unmapped_area(mm, vma.vm_file, new_addr, new_len, pgoff, map_flags)
    if not flags & MREMAP_FIXED:
        new_addr = ret
    return move_vma(vma, addr, old_len, new_len, new_addr, flags)


def _vma_expandable(vma: Vma, delta: int) -> bool:
    """``vma_expandable``: the ``delta`` bytes after the VMA are free and below TASK_SIZE."""
    end = vma.vm_end + delta
    nr = vma.vm_mm.mm_mt.next_after(vma.vm_end)
    if nr is not None and nr[0] < end:
        return False
    return end <= TASK_SIZE


def do_mremap(
    mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int, new_addr: int
) -> int:
    """The ``mremap`` syscall body; the caller holds the mmap write lock.

    EINVAL for bad flags, an unaligned address or a zero new length; EFAULT when there is no
    VMA at ``addr``, the old range crosses its end, or a VM_DONTEXPAND/VM_PFNMAP VMA would
    grow; ENOMEM when it cannot grow in place and may not move (or a VM_SPECIAL VMA cannot be
    extended in place: ``vma_merge_extend`` refuses special VMAs). Shrinking always works (it
    unmaps the tail, whatever is mapped there).
    """
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        raise KernelError(errno.EINVAL, f"mremap: unknown flags {flags:#x}")
    if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
        raise KernelError(errno.EINVAL, "mremap: MREMAP_FIXED needs MREMAP_MAYMOVE")
    if flags & MREMAP_DONTUNMAP and (not flags & MREMAP_MAYMOVE or old_len != new_len):
        raise KernelError(errno.EINVAL, "mremap: MREMAP_DONTUNMAP needs MAYMOVE and no resize")
    if addr & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"mremap: address {addr:#x} is not page aligned")
    old_len = _page_align(old_len)
    new_len = _page_align(new_len)
    if new_len == 0:
        raise KernelError(errno.EINVAL, "mremap: zero new length")
    vma = mm.mm_mt.load(addr)
    if vma is None:
        raise KernelError(errno.EFAULT, f"mremap: no mapping at {addr:#x}")
    if vma.vm_flags & VM_SEALED:
        raise KernelError(errno.EPERM, f"mremap: {vma!r} is sealed")
    if vma.vm_flags & VM_HUGETLB:
        old_len = (old_len + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1)
        new_len = (new_len + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1)
        if addr & (HPAGE_SIZE - 1) or new_addr & (HPAGE_SIZE - 1) or new_len > old_len:
            raise KernelError(
                errno.EINVAL, "mremap: hugetlb ranges must be 2 MiB aligned and cannot grow"
            )
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return _mremap_to(mm, addr, old_len, new_addr, new_len, flags)
    if old_len >= new_len:
        if old_len > new_len:
            do_vmi_munmap(mm, addr + new_len, old_len - new_len, unlock=False)
        return addr
    vma = vma_to_resize(mm, addr, old_len, new_len, flags)
    if old_len == vma.vm_end - addr:
        delta = new_len - old_len
        if _vma_expandable(vma, delta):
            nr = mm.mm_mt.next_after(vma.vm_end)
            vmg = VmaMergeStruct(
                mm,
                vma,
                nr[2] if nr is not None else None,
                None,
                vma.vm_end,
                vma.vm_end + delta,
                vma.linear_page_index(vma.vm_end),
                vma.vm_flags,
                vma.vm_file,
                vma.anon_vma,
                vma.vm_userfaultfd_ctx,
            )
            if vma_merge_new_range(vmg) is None:
                raise KernelError(errno.ENOMEM, f"mremap: {vma!r} cannot be extended in place")
            return addr
    if not flags & MREMAP_MAYMOVE:
        raise KernelError(errno.ENOMEM, "mremap: cannot grow in place and MREMAP_MAYMOVE not set")
    map_flags = MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0
    pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
    target = get_unmapped_area(mm, vma.vm_file, 0, new_len, pgoff, map_flags)
    return move_vma(vma, addr, old_len, new_len, target, flags)
