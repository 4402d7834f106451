"""Locking memory: the model's mm/mlock.c.

Mirrors ``do_mlock`` (``mlock``/``mlock2``), ``munlock``, ``apply_vma_lock_flags`` (the walk:
the range must start in a VMA, ENOMEM otherwise; a hole stops the walk with ENOMEM after the
VMAs before it were changed) and ``mlock_fixup`` (VM_SPECIAL, hugetlb and VM_DROPPABLE VMAs
are skipped silently; the others are split out or merged through ``vma_modify``, so
VM_LOCKED takes part in merging like any flag), then the population of the locked range by
``__mm_populate`` (mm/gup.c), whose EFAULT becomes ENOMEM and ENOMEM becomes EAGAIN
(``__mlock_posix_error_return``): so mlock of a PROT_NONE range sets VM_LOCKED and still
fails with ENOMEM, as Linux does.

Simplifications: no RLIMIT_MEMLOCK, ``mm->locked_vm`` or CAP_IPC_LOCK (``can_do_mlock`` and
the limit check never refuse), no mlockall, no page-level mlock state (``mlock_folio``: the
model does not reclaim user pages, so a locked page and an unlocked one behave alike).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .gup import mm_populate
from .mman import MLOCK_ONFAULT, PAGE_MASK, PAGE_SIZE
from .mmap_lock import mmap_assert_write_locked, vma_start_write
from .vm_flags import (
    VM_DROPPABLE,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_LOCKONFAULT,
    VM_SPECIAL,
)
from .vm_flags_update import vm_flags_reset
from .vma import vma_modify

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = [
    "apply_vma_lock_flags",
    "mlock_fixup",
    "mlock_populate",
    "mlock_range",
    "vma_supports_mlock",
]

_MLOCK_C = "mm/mlock.c:"
ULONG_MAX = (1 << 64) - 1


def vma_supports_mlock(vma: Vma) -> bool:
    """``vma_supports_mlock``: never VM_SPECIAL, hugetlb or VM_DROPPABLE VMAs (no DAX, gate
    or secretmem VMAs in the model)."""
    return not vma.vm_flags & (VM_SPECIAL | VM_HUGETLB | VM_DROPPABLE)


def mlock_fixup(vma: Vma, prev: Vma | None, start: int, end: int, newflags: int) -> Vma:
    """``mlock_fixup``: give ``[start, end)`` of ``vma`` the new VM_LOCKED/VM_LOCKONFAULT
    bits; returns the VMA that now covers the range (the walk's next ``prev``).

    Unchanged flags and VMAs that cannot be locked are left alone (no error). Otherwise
    ``vma_modify_flags`` splits or merges, then the flags are written (``mlock_vma_pages_range``
    would also mark the present pages mlocked).

    Raises:
        KernelError: ENOMEM (``max_map_count``), or a driver's ``->may_split`` error.
    """
    if newflags == vma.vm_flags or not vma_supports_mlock(vma):
        return vma
    vma = vma_modify(vma, prev, start, end, newflags, vma.vm_userfaultfd_ctx)
    vma_start_write(vma, _MLOCK_C + "mlock_fixup")
    vm_flags_reset(vma, newflags)
    return vma


def apply_vma_lock_flags(mm: MmStruct, start: int, length: int, flags: int) -> None:
    """``apply_vma_lock_flags``: set ``flags`` (within VM_LOCKED_MASK) on every VMA of
    ``[start, start + length)``; the caller holds the mmap write lock.

    Raises:
        KernelError: EINVAL (the range wraps), ENOMEM (no VMA at ``start``, or a hole: the
            VMAs before the hole keep their new flags), or :func:`mlock_fixup`'s error.
    """
    mmap_assert_write_locked(mm, _MLOCK_C + "apply_vma_lock_flags")
    end = start + length
    if end > ULONG_MAX:
        raise KernelError(errno.EINVAL, f"mlock: {start:#x}+{length:#x} wraps around")
    if end == start:
        return
    vma = mm.mm_mt.load(start)
    if vma is None:
        raise KernelError(errno.ENOMEM, f"mlock: no mapping at {start:#x}")
    pr = mm.mm_mt.prev(start)
    prev = pr[2] if pr is not None else None
    if start > vma.vm_start:
        prev = vma
    nstart = start
    tmp = vma.vm_start
    while True:
        if vma.vm_start != tmp:
            raise KernelError(errno.ENOMEM, f"mlock: hole at {tmp:#x}")
        newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | flags
        tmp = min(vma.vm_end, end)
        vma = mlock_fixup(vma, prev, nstart, tmp, newflags)
        prev = vma
        # vma_iter_end(): the end of the VMA that now covers nstart.
        tmp = nstart = vma.vm_end
        if tmp >= end:
            return
        nr = mm.mm_mt.next_after(tmp)
        if nr is None or nr[0] >= end:
            raise KernelError(errno.ENOMEM, f"mlock: hole at {tmp:#x}")
        vma = nr[2]


def mlock_range(start: int, len_in: int) -> tuple[int, int]:
    """The range ``mlock``/``munlock`` work on: ``start`` rounded down to its page and
    ``PAGE_ALIGN(len + offset_in_page(start))``, in ``unsigned long`` arithmetic (so a length
    near 2**64 wraps to a short or empty range, as in C)."""
    length = (len_in + (start & ~PAGE_MASK) + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MAX
    return start & PAGE_MASK, length


def mlock2_flags(flags: int) -> int:
    """``mlock2``'s flags → VM bits: EINVAL for anything but MLOCK_ONFAULT.

    Raises:
        KernelError: EINVAL.
    """
    if flags & ~MLOCK_ONFAULT:
        raise KernelError(errno.EINVAL, f"mlock2: unknown flags {flags:#x}")
    return VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0)


def mlock_populate(mm: MmStruct, start: int, length: int) -> None:
    """The second half of ``do_mlock``: ``__mm_populate`` (the caller holds the mmap lock;
    the kernel dropped the write lock and populates under the read lock), with
    ``__mlock_posix_error_return``: EFAULT → ENOMEM, ENOMEM → EAGAIN.

    Raises:
        KernelError: ENOMEM or EAGAIN.
    """
    try:
        mm_populate(mm, start, length, ignore_errors=False)
    except KernelError as exc:
        if exc.errno == errno.EFAULT:
            raise KernelError(errno.ENOMEM, f"mlock: {exc.strerror}") from exc
        if exc.errno == errno.ENOMEM:
            raise KernelError(errno.EAGAIN, f"mlock: {exc.strerror}") from exc
        raise
