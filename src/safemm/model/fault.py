"""User-space memory accesses and the page-fault entry: arch/x86/mm/fault.c.

``user_access`` is what a load or store in user space does: use the PTE if it allows the
access, otherwise take a page fault (``do_user_addr_fault``): first under the per-VMA lock
(``lock_vma_under_rcu``), retrying under the mmap read lock when the VMA lock cannot be used,
and deliver SIGSEGV (no VMA: SEGV_MAPERR; access not allowed: SEGV_ACCERR) or SIGBUS
(``VM_FAULT_SIGBUS``) exactly where the kernel does.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import SEGV_ACCERR, SEGV_MAPERR, BusError, KernelError, SegmentationFault
from .memory import handle_mm_fault
from .mm_types import (
    FAULT_FLAG_USER,
    FAULT_FLAG_VMA_LOCK,
    FAULT_FLAG_WRITE,
    VM_FAULT_OOM,
    VM_FAULT_RETRY,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
)
from .mman import HPAGE_SHIFT, PAGE_SHIFT, TASK_SIZE
from .mmap_lock import lock_vma_under_rcu, mmap_read_lock, mmap_read_unlock, vma_end_read
from .printk import SplatKind
from .vm_flags import VM_WRITE, vma_flags_accessible

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma
    from .pgtable import HugePmd, Pte
    from .sched import Task

__all__ = ["do_user_addr_fault", "user_access"]

#: A fault that "succeeds" without mapping anything is retried; after this many the model
#: reports the handler instead of spinning forever as the kernel would.
MAX_FAULT_RETRIES = 4


def access_error(write: bool, vma: Vma) -> bool:
    """``access_error`` (x86): writes need VM_WRITE; reads need any access bit."""
    if write:
        return not vma.vm_flags & VM_WRITE
    return not vma_flags_accessible(vma.vm_flags)


def _deliver(mm: MmStruct, addr: int, fault: int, vma: Vma) -> None:
    """``mm_fault_error``: turn a failed fault into a signal (VM_FAULT_OOM: the model has no
    OOM killer, so ENOMEM; VM_FAULT_SIGBUS: SIGBUS; VM_FAULT_SIGSEGV: SIGSEGV with
    SEGV_MAPERR, as ``bad_area_nosemaphore`` sends)."""
    if fault & VM_FAULT_OOM:
        raise KernelError(
            errno.ENOMEM,
            f"page fault at {addr:#x} ran out of memory (the kernel would run the OOM killer)",
        )
    if fault & VM_FAULT_SIGBUS:
        raise BusError(addr, f"the fault handler of {vma!r} returned VM_FAULT_SIGBUS")
    if fault & VM_FAULT_SIGSEGV:
        # x86 mm_fault_error: bad_area_nosemaphore(), i.e. SEGV_MAPERR.
        raise SegmentationFault(addr, SEGV_MAPERR, f"fault handler refused {addr:#x}")


def do_user_addr_fault(mm: MmStruct, addr: int, write: bool) -> None:
    """``do_user_addr_fault``: resolve a user fault or raise the signal the kernel sends."""
    k = mm.kernel
    if addr >= TASK_SIZE:
        raise SegmentationFault(addr, SEGV_MAPERR, f"{addr:#x} is outside user space")
    flags = FAULT_FLAG_USER | (FAULT_FLAG_WRITE if write else 0)
    vma = lock_vma_under_rcu(mm, addr)
    if vma is not None:
        if access_error(write, vma):
            vma_end_read(vma)
            raise SegmentationFault(
                addr, SEGV_ACCERR, f"{'write' if write else 'read'} not allowed by {vma!r}"
            )
        fault = handle_mm_fault(vma, addr, flags | FAULT_FLAG_VMA_LOCK)
        if not fault & VM_FAULT_RETRY:
            vma_end_read(vma)
            _deliver(mm, addr, fault, vma)
            return
        k.counters.vma_lock_retry += 1
    mmap_read_lock(mm)
    try:
        vma = mm.mm_mt.find(addr)
        if vma is None or vma.vm_start > addr:
            raise SegmentationFault(addr, SEGV_MAPERR, f"no mapping at {addr:#x}")
        if access_error(write, vma):
            raise SegmentationFault(
                addr, SEGV_ACCERR, f"{'write' if write else 'read'} not allowed by {vma!r}"
            )
        fault = handle_mm_fault(vma, addr, flags)
    finally:
        mmap_read_unlock(mm)
    _deliver(mm, addr, fault, vma)


def _ok(pte: Pte | None, write: bool) -> bool:
    return pte is not None and not pte.protnone and (pte.write or not write)


def user_access(mm: MmStruct, task: Task, addr: int, write: bool) -> Pte | HugePmd:
    """The PTE (or huge PMD) a user load/store at ``addr`` goes through, faulting it in first
    if the hardware would fault."""
    pt = mm.pgtables
    k = mm.kernel
    for _ in range(MAX_FAULT_RETRIES):
        if pt.huge:
            hp = pt.huge.get(addr >> HPAGE_SHIFT)
            if hp is not None and (hp.write or not write):
                return hp
        pte = pt.lookup(addr >> PAGE_SHIFT)
        if _ok(pte, write):
            assert pte is not None
            # The MMU sets the accessed bit on every access through the PTE (reclaim's
            # folio_referenced reads and clears it).
            pte.young = True
            return pte
        with k.enter(task, "page fault"):
            do_user_addr_fault(mm, addr, write)
    k.report(
        SplatKind.BUG,
        "fault-progress",
        f"the fault at {addr:#x} succeeded {MAX_FAULT_RETRIES} times without mapping it",
        "arch/x86/mm/fault.c:do_user_addr_fault",
        title="BUG: page fault loop (the fault handler never maps the page)",
    )
    raise AssertionError("unreachable")
