"""Changing protections: the model's mm/mprotect.c.

Mirrors ``do_mprotect_pkey`` (argument checks; the walk over the VMAs of the range, which
applies the change VMA by VMA and stops at the first error — so, as in Linux, a range with a
hole or a VMA whose ``VM_MAY*`` ceiling forbids the change is changed up to that point and
then fails), ``mprotect_fixup`` (VM_ACCOUNT, ``vma_modify_flags``, ``vm_flags_reset``) and
``change_protection`` (existing PTEs are rewritten to the new protection); a private
VM_LOCKED VMA made writable is populated for write, as ``mprotect_fixup`` does.

Strict mode adds H9: a driver VMA (VM_MIXEDMAP/VM_PFNMAP) that already maps pages gaining
VM_WRITE or VM_EXEC is reported.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .gup import populate_vma_page_range
from .memory import vma_wants_writenotify
from .mman import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PROT_GROWSDOWN, PROT_GROWSUP
from .mmap import arch_validate_prot, calc_vm_prot_bits
from .mmap_lock import vma_start_write
from .printk import SplatKind
from .vm_flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_LOCKED,
    VM_MIXEDMAP,
    VM_NORESERVE,
    VM_PFNMAP,
    VM_SEALED,
    VM_SHARED,
    VM_WRITE,
    pte_writable_for,
    vma_flags_accessible,
)
from .vm_flags_update import vm_flags_reset
from .vma import vma_modify

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["do_mprotect", "mprotect_fixup"]

_MPROTECT_C = "mm/mprotect.c:"
ULONG_MAX = (1 << 64) - 1


def change_protection(vma: Vma, start: int, end: int) -> None:
    """``change_protection``: rewrite the present PTEs of ``[start, end)`` for the VMA's flags.

    PROT_NONE makes them inaccessible; shared writable mappings get writable PTEs (with write
    notification, ``vma_wants_writenotify``, only the dirty ones: ``can_change_pte_writable``;
    the others fault through ``do_wp_page``); in private mappings only exclusive anonymous
    pages are made writable directly (``MM_CP_TRY_CHANGE_WRITABLE``), the rest keep
    copy-on-write protection.
    """
    flags = vma.vm_flags
    accessible = vma_flags_accessible(flags)
    shared_w = pte_writable_for(flags)
    notify = shared_w and vma_wants_writenotify(vma)
    private_w = bool(flags & VM_WRITE) and not flags & VM_SHARED
    for _, pte in vma.vm_mm.pgtables.range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        pte.protnone = not accessible
        if shared_w:
            pte.write = pte.dirty or not notify
        elif private_w:
            page = pte.page
            pte.write = bool(
                page is not None
                and page.kind.value == "anon"
                and page.refcount == 1
                and pte.write | pte.dirty
            )
        else:
            pte.write = False
    if flags & VM_HUGETLB:
        for _, hp in vma.vm_mm.pgtables.huge_range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            hp.write = bool(flags & VM_WRITE)


def _check_h9(vma: Vma, start: int, end: int, newflags: int) -> None:
    k = vma.vm_mm.kernel
    if not k.strict or not vma.vm_flags & (VM_MIXEDMAP | VM_PFNMAP):
        return
    gained = newflags & ~vma.vm_flags & (VM_WRITE | VM_EXEC)
    if not gained:
        return
    ptes = vma.vm_mm.pgtables.range(start >> PAGE_SHIFT, end >> PAGE_SHIFT)
    if ptes:
        what = "VM_WRITE" if gained & VM_WRITE else "VM_EXEC"
        k.report(
            SplatKind.STRICT,
            "access-after-insert",
            f"mprotect gives driver {vma!r} {what} while {len(ptes)} inserted page(s) are "
            "mapped; the driver never cleared VM_MAY" + what[3:],
            _MPROTECT_C + "mprotect_fixup",
        )


def mprotect_fixup(vma: Vma, prev: Vma | None, start: int, end: int, newflags: int) -> Vma:
    """``mprotect_fixup``: apply ``newflags`` to ``[start, end)`` of ``vma``; returns the VMA
    now covering the range (the new ``prev``)."""
    oldflags = vma.vm_flags
    if oldflags & VM_SEALED:
        raise KernelError(errno.EPERM, f"mprotect: {vma!r} is sealed")
    if newflags == oldflags:
        return vma
    if newflags & VM_WRITE:
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
    _check_h9(vma, start, end, newflags)
    vma = vma_modify(vma, prev, start, end, newflags, vma.vm_userfaultfd_ctx)
    vma_start_write(vma, _MPROTECT_C + "mprotect_fixup")
    vm_flags_reset(vma, newflags)
    change_protection(vma, start, end)
    if oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED) == VM_LOCKED and newflags & VM_WRITE:
        # A private VM_LOCKED VMA becoming writable: break COW now (populate_vma_page_range,
        # its result ignored), so it gains its anonymous pages and anon_vma here.
        try:
            populate_vma_page_range(vma, start, end)
        except KernelError:
            pass
    return vma


def do_mprotect(mm: MmStruct, start: int, length: int, prot: int) -> None:
    """``do_mprotect_pkey`` without pkeys; the caller holds the mmap write lock.

    EINVAL: unaligned start, both GROWSDOWN and GROWSUP, unknown prot bits, PROT_GROWSDOWN on
    a VMA without VM_GROWSDOWN (with it, the change starts at the VMA's start), PROT_GROWSUP
    (x86 has no VM_GROWSUP). ENOMEM: the range wraps (in unsigned long arithmetic), starts in
    a hole, or has a hole (after changing what precedes it). EACCES: a
    ``VM_MAY*`` ceiling forbids the change (after changing the VMAs before it). A driver's
    ``->mprotect`` may veto.
    """
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
    if grows == PROT_GROWSDOWN | PROT_GROWSUP:
        raise KernelError(errno.EINVAL, "mprotect: both PROT_GROWSDOWN and PROT_GROWSUP")
    if start & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"mprotect: start {start:#x} is not page aligned")
    if length == 0:
        return
    # unsigned long arithmetic: PAGE_ALIGN(len) and start + len wrap at 2**64.
    length = (length + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MAX
    end = (start + length) & ULONG_MAX
    if end <= start or length == 0:
        raise KernelError(errno.ENOMEM, "mprotect: range wraps around")
    if not arch_validate_prot(prot):
        raise KernelError(errno.EINVAL, f"mprotect: unknown prot bits {prot:#x}")
    vma = mm.mm_mt.find_intersection(start, end)
    if vma is None:
        raise KernelError(errno.ENOMEM, f"mprotect: no mapping in {start:#x}-{end:#x}")
    if grows & PROT_GROWSDOWN:
        # The change runs from the start of a VM_GROWSDOWN VMA.
        start = vma.vm_start
        if not vma.vm_flags & VM_GROWSDOWN:
            raise KernelError(errno.EINVAL, f"mprotect: PROT_GROWSDOWN on {vma!r}")
    else:
        if vma.vm_start > start:
            raise KernelError(errno.ENOMEM, f"mprotect: no mapping at {start:#x}")
        if grows & PROT_GROWSUP:
            # x86 has no VM_GROWSUP (it is VM_NONE), so no VMA can grow up.
            raise KernelError(errno.EINVAL, f"mprotect: PROT_GROWSUP on {vma!r}")
    pr = mm.mm_mt.prev(start)
    prev = pr[2] if pr is not None else None
    if start > vma.vm_start:
        prev = vma
    nstart = start
    tmp = vma.vm_start
    newprot = calc_vm_prot_bits(prot)
    while True:
        if vma.vm_start != tmp:
            raise KernelError(errno.ENOMEM, f"mprotect: hole at {tmp:#x}")
        newflags = newprot | (vma.vm_flags & ~VM_ACCESS_FLAGS)
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
            raise KernelError(
                errno.EACCES,
                f"mprotect: {vma!r} may not become {prot:#x} (VM_MAY* ceiling "
                f"{(vma.vm_flags >> 4) & VM_ACCESS_FLAGS:#x})",
            )
        tmp = min(vma.vm_end, end)
        ops = vma.vm_ops
        if ops is not None and ops.mprotect is not None:
            with mm.kernel.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->mprotect"):
                ops.mprotect(vma, nstart, tmp, newflags)
        vma = mprotect_fixup(vma, prev, nstart, tmp, newflags)
        prev = vma
        # vma_iter_end(): the end of the VMA that now covers nstart (a merge may reach past
        # the VMA this iteration started with).
        nstart = tmp = min(vma.vm_end, end)
        if nstart >= end:
            return
        nxt = mm.mm_mt.next_after(nstart)
        if nxt is None or nxt[0] >= end:
            raise KernelError(errno.ENOMEM, f"mprotect: hole at {nstart:#x}")
        vma = nxt[2]
