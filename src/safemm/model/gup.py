"""Faulting pages in on behalf of the kernel: the model's mm/gup.c (population only).

Mirrors ``populate_vma_page_range`` and ``__mm_populate``, which ``mlock``, ``MAP_LOCKED`` and
``MAP_POPULATE`` use to fault a range in, and ``check_vma_flags``' refusals that they meet.

Simplifications: no ``struct page`` pins (``get_user_pages`` is not modelled; population only
faults pages in), no ``FOLL_*`` flags beyond the write/force choice, no stack expansion; the
mmap lock is never dropped during a fault (``FOLL_UNLOCKABLE`` retries do not happen).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .memory import handle_mm_fault
from .mm_types import FAULT_FLAG_WRITE, VM_FAULT_ERROR, VM_FAULT_OOM
from .mman import HPAGE_SHIFT, PAGE_SHIFT, PAGE_SIZE
from .mmap_lock import mmap_assert_locked
from .vm_flags import (
    VM_IO,
    VM_LOCKONFAULT,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    vma_flags_accessible,
)

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["mm_populate", "populate_vma_page_range"]

_GUP_C = "mm/gup.c:"


def _present(mm: MmStruct, addr: int, write: bool) -> bool:
    """``follow_page_mask``: is ``addr`` mapped (writably, for a write) already?"""
    pt = mm.pgtables
    if pt.huge:
        hp = pt.huge.get(addr >> HPAGE_SHIFT)
        if hp is not None and (hp.write or not write):
            return True
    pte = pt.lookup(addr >> PAGE_SHIFT)
    return pte is not None and not pte.protnone and (pte.write or not write)


def populate_vma_page_range(vma: Vma, start: int, end: int) -> None:
    """``populate_vma_page_range``: fault ``[start, end)`` of ``vma`` in; the caller holds the
    mmap lock.

    VM_LOCKONFAULT VMAs are left alone. Private writable mappings are faulted for write (to
    break COW: a new anonymous page, and an anon_vma, for every page), everything else for
    read, with ``FOLL_FORCE`` only if the VMA is accessible: so a PROT_NONE VMA is refused
    by ``check_vma_flags`` (EFAULT). A fault that fails (SIGBUS past the end of a shmem
    object, SIGSEGV) is EFAULT too; running out of memory is ENOMEM.

    Raises:
        KernelError: EFAULT or ENOMEM, as ``__get_user_pages`` returns them.
    """
    mm = vma.vm_mm
    mmap_assert_locked(mm, _GUP_C + "populate_vma_page_range")
    flags = vma.vm_flags
    if flags & VM_LOCKONFAULT:
        return
    write = flags & (VM_WRITE | VM_SHARED) == VM_WRITE
    force = vma_flags_accessible(flags)
    # check_vma_flags: a read needs VM_READ unless FOLL_FORCE (which needs VM_MAYREAD).
    if not write and not flags & VM_READ and not force:
        raise KernelError(
            errno.EFAULT, f"populate: {vma!r} is PROT_NONE (check_vma_flags refuses it)"
        )
    for addr in range(start, end, PAGE_SIZE):
        if _present(mm, addr, write):
            continue
        fault = handle_mm_fault(vma, addr, FAULT_FLAG_WRITE if write else 0)
        if fault & VM_FAULT_OOM:
            raise KernelError(errno.ENOMEM, f"populate: out of memory at {addr:#x}")
        if fault & VM_FAULT_ERROR:
            raise KernelError(errno.EFAULT, f"populate: the fault at {addr:#x} failed")


def mm_populate(mm: MmStruct, start: int, length: int, ignore_errors: bool) -> None:
    """``__mm_populate``: fault in every VMA of ``[start, start + length)``; the caller holds
    the mmap lock (the kernel takes the read lock itself, after the write lock of the call
    that set the range up was dropped).

    VM_IO and VM_PFNMAP VMAs are skipped, holes are stepped over. With ``ignore_errors``
    (``mm_populate`` after ``mmap``), a VMA that cannot be populated is skipped; without it
    (``mlock``) the first error is raised.

    Raises:
        KernelError: EFAULT/ENOMEM from :func:`populate_vma_page_range` (not ignoring).
    """
    end = start + length
    nstart = start
    while nstart < end:
        vma = mm.mm_mt.find_intersection(nstart, end)
        if vma is None:
            return
        nend = min(end, vma.vm_end)
        if not vma.vm_flags & (VM_IO | VM_PFNMAP):
            try:
                populate_vma_page_range(vma, max(nstart, vma.vm_start), nend)
            except KernelError:
                if not ignore_errors:
                    raise
        nstart = nend
