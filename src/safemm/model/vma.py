"""VMA tree surgery: the model's mm/vma.c (split, merge, modify, munmap, copy).

Mirrors torvalds/linux mm/vma.c (v6.12 layout, read for this model): ``__split_vma`` and
``split_vma``; the merge logic of ``vma_merge_new_range`` / ``vma_merge_existing_range`` /
``vma_expand`` / ``commit_merge`` with ``is_mergeable_vma``, ``is_mergeable_anon_vma`` and
``can_merge_remove_vma`` (a VMA with ``->close`` is never deleted by a merge); ``vma_modify``;
the munmap path ``do_vmi_munmap`` → ``vms_gather_munmap_vmas`` → ``vms_complete_munmap_vmas``
(with the downgrade to the read lock before zapping); ``remove_vma``; ``copy_vma`` for mremap.
The ``vm_flags_*`` writers of include/linux/mm.h are in :mod:`safemm.model.vm_flags_update`.

Simplifications: no mempolicy, no anon_vma names, no mseal (``VM_SEALED`` is honoured where
checked but nothing sets it); allocation of VMAs and maple-tree nodes never fails.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .fs import fput, get_file
from .memory import zap_pte_range
from .mm_types import Vma
from .mman import PAGE_MASK, PAGE_SHIFT, TASK_SIZE
from .mmap_lock import (
    mmap_assert_write_locked,
    mmap_read_unlock,
    mmap_write_downgrade,
    mmap_write_unlock,
    vma_start_write,
)
from .printk import SplatKind
from .sched import might_sleep
from .vm_flags import (
    VM_IGNORE_MERGE,
    VM_SEALED,
    VM_SPECIAL,
)

if TYPE_CHECKING:
    from .mm_types import AnonVma, MmStruct
    from .userfaultfd import UserfaultfdCtx

__all__ = [
    "copy_vma",
    "do_vmi_munmap",
    "split_vma",
    "vma_link",
    "vma_merge_new_range",
    "vma_modify",
]

_VMA_C = "mm/vma.c:"


# --------------------------------------------------------------------------------------------
# linking


def _i_mmap_range(vma: Vma) -> tuple[int, int]:
    return vma.vm_pgoff, vma.vm_pgoff + vma.pages - 1


def vma_link_file(vma: Vma) -> None:
    """``vma_link_file``: put a file VMA into ``f_mapping->i_mmap``."""
    f = vma.vm_file
    if f is not None:
        first, last = _i_mmap_range(vma)
        f.f_mapping.i_mmap.insert(vma, first, last)


def unlink_file_vma(vma: Vma) -> None:
    """``unlink_file_vma``: take a file VMA out of ``i_mmap``."""
    f = vma.vm_file
    if f is not None and vma in f.f_mapping.i_mmap:
        f.f_mapping.i_mmap.remove(vma)


def vma_link(mm: MmStruct, vma: Vma) -> None:
    """``vma_link``: insert a new VMA into the tree and ``i_mmap``, write-locked, attached."""
    vma_start_write(vma, _VMA_C + "vma_link")
    mm.mm_mt.store(vma.vm_start, vma.vm_end, vma)
    vma.detached = False
    vma.in_setup = False
    vma_link_file(vma)


def vma_set_range(vma: Vma, start: int, end: int, pgoff: int) -> None:
    """``vma_set_range`` plus the tree and ``i_mmap`` updates of ``vma_prepare``/``vma_complete``.

    The caller orders updates so the new range never overlaps another attached VMA.
    """
    if not vma.detached:
        vma.vm_mm.mm_mt.set_range(vma.vm_start, start, end)
    vma.vm_start = start
    vma.vm_end = end
    vma.vm_pgoff = pgoff
    f = vma.vm_file
    if f is not None and vma in f.f_mapping.i_mmap:
        first, last = _i_mmap_range(vma)
        f.f_mapping.i_mmap.update(vma, first, last)


def vm_area_dup(vma: Vma) -> Vma:
    """``vm_area_dup``: a shallow copy (same flags, vm_ops, private data, file, anon_vma)."""
    new = Vma(vma.vm_mm, vma.vm_start, vma.vm_end, vma.vm_pgoff, vma.vm_flags)
    new.vm_ops = vma.vm_ops
    new.vm_file = vma.vm_file
    new.vm_private_data = vma.vm_private_data
    new.anon_vma = vma.anon_vma
    new.anon_vma_chain = vma.anon_vma_chain
    new.vm_userfaultfd_ctx = vma.vm_userfaultfd_ctx
    return new


def call_vm_open(vma: Vma) -> None:
    """Call ``vma->vm_ops->open(vma)`` if the driver provided it."""
    ops = vma.vm_ops
    if ops is not None and ops.open is not None:
        with vma.vm_mm.kernel.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->open"):
            ops.open(vma)


def call_vm_close(vma: Vma) -> None:
    """Call ``vma->vm_ops->close(vma)`` once, if the driver provided it."""
    ops = vma.vm_ops
    if vma.closed:
        return
    vma.closed = True
    if ops is not None and ops.close is not None:
        with vma.vm_mm.kernel.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->close"):
            ops.close(vma)


# --------------------------------------------------------------------------------------------
# split


def __split_vma(vma: Vma, addr: int, new_below: bool) -> Vma:
    """``__split_vma``: split at ``addr`` (no map_count check). Returns the new piece.

    ``->may_split`` may veto (its error is raised as is); the new piece gets ``->open``, no
    ``->close`` runs; both pieces are write-locked; page tables are untouched.
    """
    mm = vma.vm_mm
    k = mm.kernel
    where = _VMA_C + "__split_vma"
    if not vma.vm_start < addr < vma.vm_end:
        k.report(
            SplatKind.WARNING,
            "split-range",
            f"split of {vma!r} at {addr:#x}, not strictly inside",
            where,
        )
    ops = vma.vm_ops
    if ops is not None and ops.may_split is not None:
        with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->may_split"):
            ops.may_split(vma, addr)
    new = vm_area_dup(vma)
    if new_below:
        new.vm_end = addr
    else:
        new.vm_start = addr
        new.vm_pgoff += (addr - vma.vm_start) >> PAGE_SHIFT
    if new.vm_file is not None:
        get_file(new.vm_file)
    call_vm_open(new)
    vma_start_write(vma, where)
    vma_start_write(new, where)
    if new_below:
        vma_set_range(vma, addr, vma.vm_end, vma.vm_pgoff + ((addr - new.vm_start) >> PAGE_SHIFT))
    else:
        vma_set_range(vma, vma.vm_start, addr, vma.vm_pgoff)
    mm.mm_mt.store(new.vm_start, new.vm_end, new)
    new.detached = False
    vma_link_file(new)
    return new


def split_vma(vma: Vma, addr: int, new_below: bool) -> Vma:
    """``split_vma``: ENOMEM when the mm is at ``max_map_count``."""
    mm = vma.vm_mm
    if mm.map_count >= mm.kernel.max_map_count:
        raise KernelError(
            errno.ENOMEM,
            f"split: mm already has {mm.map_count} VMAs (max_map_count {mm.kernel.max_map_count})",
        )
    return __split_vma(vma, addr, new_below)


# --------------------------------------------------------------------------------------------
# merge


class VmaMergeStruct:
    """``struct vma_merge_struct``: the proposed range and its properties.

    ``vma`` is the kernel's ``vmg->middle`` (the existing VMA being changed, or None for a
    new range); ``copied_from`` is the VMA an mremap copy comes from (``copy_vma``).
    """

    __slots__ = (
        "anon_vma",
        "copied_from",
        "end",
        "file",
        "flags",
        "mm",
        "next",
        "pgoff",
        "prev",
        "start",
        "uffd_ctx",
        "vma",
    )

    def __init__(
        self,
        mm: MmStruct,
        prev: Vma | None,
        next_: Vma | None,
        vma: Vma | None,
        start: int,
        end: int,
        pgoff: int,
        flags: int,
        file: object,
        anon_vma: AnonVma | None,
        uffd_ctx: UserfaultfdCtx | None,
    ) -> None:
        self.mm = mm
        self.prev = prev
        self.next = next_
        self.vma = vma
        self.start = start
        self.end = end
        self.pgoff = pgoff
        self.flags = flags
        self.file = file
        self.anon_vma = anon_vma
        self.uffd_ctx = uffd_ctx
        self.copied_from: Vma | None = None


def is_mergeable_vma(vmg: VmaMergeStruct, merge_next: bool) -> bool:
    """``is_mergeable_vma``: same flags (but soft-dirty), file and userfaultfd context."""
    vma = vmg.next if merge_next else vmg.prev
    assert vma is not None
    if (vma.vm_flags ^ vmg.flags) & ~VM_IGNORE_MERGE:
        return False
    if vma.vm_file is not vmg.file:
        return False
    return vma.vm_userfaultfd_ctx is vmg.uffd_ctx


def vma_is_fork_child(vma: Vma | None) -> bool:
    """``vma_is_fork_child`` (mm/vma.c): the VMA has an anon_vma and its chain is not
    singular, i.e. it was cloned by fork and may share CoW pages with a parent."""
    return vma is not None and vma.anon_vma is not None and vma.anon_vma_chain > 1


def is_mergeable_anon_vma(vmg: VmaMergeStruct, merge_next: bool) -> bool:
    """``is_mergeable_anon_vma`` (mm/vma.c, since 6.16): may the range's anon_vma and the
    target's (``vmg.next`` or ``vmg.prev``) go together?

    Case 1, only the range has one (it will be duplicated into the target): not if the
    VMA it comes from — ``vmg->middle``, or ``vmg->copied_from`` for an mremap copy — is a
    fork child. Case 2, only the target has one: not if the target is a fork child.
    Case 3: both or neither, and the same.
    """
    tgt = vmg.next if merge_next else vmg.prev
    assert tgt is not None
    tgt_anon, src_anon = tgt.anon_vma, vmg.anon_vma
    if tgt_anon is None and src_anon is not None:
        return not vma_is_fork_child(vmg.vma) and not vma_is_fork_child(vmg.copied_from)
    if tgt_anon is not None and src_anon is None:
        return not vma_is_fork_child(tgt)
    return src_anon is tgt_anon


def can_vma_merge_before(vmg: VmaMergeStruct) -> bool:
    """``can_vma_merge_before``: the range can be merged in front of ``vmg.next``."""
    nxt = vmg.next
    assert nxt is not None
    pglen = (vmg.end - vmg.start) >> PAGE_SHIFT
    return (
        is_mergeable_vma(vmg, True)
        and is_mergeable_anon_vma(vmg, True)
        and nxt.vm_pgoff == vmg.pgoff + pglen
    )


def can_vma_merge_after(vmg: VmaMergeStruct) -> bool:
    """``can_vma_merge_after``: the range can be merged behind ``vmg.prev``."""
    prev = vmg.prev
    assert prev is not None
    return (
        is_mergeable_vma(vmg, False)
        and is_mergeable_anon_vma(vmg, False)
        and prev.vm_pgoff + prev.pages == vmg.pgoff
    )


def can_vma_merge_left(vmg: VmaMergeStruct) -> bool:
    """``can_vma_merge_left``."""
    return vmg.prev is not None and vmg.prev.vm_end == vmg.start and can_vma_merge_after(vmg)


def can_vma_merge_right(vmg: VmaMergeStruct, can_merge_left: bool) -> bool:
    """``can_vma_merge_right``: also requires prev and next anon_vmas to be compatible."""
    nxt = vmg.next
    if nxt is None or vmg.end != nxt.vm_start or not can_vma_merge_before(vmg):
        return False
    if not can_merge_left:
        return True
    prev = vmg.prev
    assert prev is not None
    return prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma is nxt.anon_vma


def can_merge_remove_vma(vma: Vma) -> bool:
    """``can_merge_remove_vma``: a VMA with ``->close`` is never deleted by a merge."""
    return vma.vm_ops is None or vma.vm_ops.close is None


def dup_anon_vma(dst: Vma, src: Vma) -> None:
    """``dup_anon_vma``: the expanding VMA takes the shrinking one's anon_vma."""
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        dst.anon_vma_chain = src.anon_vma_chain


def _remove_merged(vma: Vma) -> None:
    """``vma_complete`` for a VMA a merge deleted: unlink, fput, free — no ``->close``."""
    mm = vma.vm_mm
    mm.mm_mt.erase(vma.vm_start)
    unlink_file_vma(vma)
    vma.detached = True
    if vma.vm_file is not None:
        fput(vma.vm_file)
    _free_vma(vma)


def commit_merge(
    vmg: VmaMergeStruct,
    adjust: Vma | None,
    remove: Vma | None,
    remove2: Vma | None,
    adj_start: int,
) -> None:
    """``commit_merge``: apply the merge decided by the caller."""
    vma = vmg.vma
    assert vma is not None
    for r in (remove, remove2):
        if r is not None:
            _remove_merged(r)
    if adjust is not None and adj_start > 0:
        vma_set_range(
            adjust,
            adjust.vm_start + adj_start,
            adjust.vm_end,
            adjust.vm_pgoff + (adj_start >> PAGE_SHIFT),
        )
    vma_set_range(vma, vmg.start, vmg.end, vmg.pgoff)
    if adjust is not None and adj_start < 0:
        vma_set_range(
            adjust,
            adjust.vm_start + adj_start,
            adjust.vm_end,
            adjust.vm_pgoff + (adj_start >> PAGE_SHIFT),
        )


def vma_expand(vmg: VmaMergeStruct) -> None:
    """``vma_expand``: grow ``vmg.vma`` to ``[vmg.start, vmg.end)``, deleting ``vmg.next`` if
    the new end reaches its end."""
    mmap_assert_write_locked(vmg.mm, _VMA_C + "vma_expand")
    vma = vmg.vma
    assert vma is not None
    nxt = vmg.next
    vma_start_write(vma, _VMA_C + "vma_expand")
    remove_next = nxt is not None and nxt is not vma and vmg.end == nxt.vm_end
    if remove_next:
        assert nxt is not None
        vma_start_write(nxt, _VMA_C + "vma_expand")
        dup_anon_vma(vma, nxt)
    commit_merge(vmg, None, nxt if remove_next else None, None, 0)


def vma_merge_new_range(vmg: VmaMergeStruct) -> Vma | None:
    """``vma_merge_new_range``: merge a new range ``[start, end)`` into its neighbours."""
    mmap_assert_write_locked(vmg.mm, _VMA_C + "vma_merge_new_range")
    prev, nxt = vmg.prev, vmg.next
    start, end, pgoff = vmg.start, vmg.end, vmg.pgoff
    pglen = (end - start) >> PAGE_SHIFT
    if vmg.flags & VM_SPECIAL or (prev is None and nxt is None):
        return None
    left = can_vma_merge_left(vmg)
    right = can_vma_merge_right(vmg, left)
    if right:
        assert nxt is not None
        vmg.end = nxt.vm_end
        vmg.vma = nxt
        vmg.pgoff = nxt.vm_pgoff - pglen
    if left:
        assert prev is not None
        vmg.start = prev.vm_start
        vmg.vma = prev
        vmg.pgoff = prev.vm_pgoff
        if right and nxt is not None and not can_merge_remove_vma(nxt):
            vmg.end = end
    if vmg.vma is not None:
        vma_expand(vmg)
        return vmg.vma
    vmg.start, vmg.end, vmg.pgoff = start, end, pgoff
    return None


def vma_merge_existing_range(vmg: VmaMergeStruct) -> Vma | None:
    """``vma_merge_existing_range``: after a change to part of ``vmg.vma``, merge that part
    with a neighbour that now matches (mprotect, uffd registration)."""
    mmap_assert_write_locked(vmg.mm, _VMA_C + "vma_merge_existing_range")
    vma = vmg.vma
    assert vma is not None
    prev = vmg.prev
    start, end = vmg.start, vmg.end
    left_side = start == vma.vm_start
    right_side = end == vma.vm_end
    if vmg.flags & VM_SPECIAL or (not left_side and not right_side):
        return None
    merge_left = can_vma_merge_left(vmg) if left_side else False
    nxt: Vma | None = None
    if right_side:
        nr = vmg.mm.mm_mt.next_after(vma.vm_end)
        nxt = vmg.next = nr[2] if nr is not None else None
        merge_right = can_vma_merge_right(vmg, merge_left)
    else:
        merge_right = False
    if not merge_left and not merge_right:
        return None
    merge_both = merge_left and merge_right
    delete_vma = left_side and right_side
    if delete_vma and not can_merge_remove_vma(vma):
        return None
    delete_next = merge_both
    if delete_next and nxt is not None and not can_merge_remove_vma(nxt):
        delete_next = merge_right = merge_both = False
    vma_start_write(vma, _VMA_C + "vma_merge_existing_range")
    if merge_left and prev is not None:
        vma_start_write(prev, _VMA_C + "vma_merge_existing_range")
    if merge_right and nxt is not None:
        vma_start_write(nxt, _VMA_C + "vma_merge_existing_range")
    adjust: Vma | None = None
    adj_start = 0
    if merge_both:
        assert prev is not None
        assert nxt is not None
        vmg.vma = prev
        vmg.start, vmg.end, vmg.pgoff = prev.vm_start, nxt.vm_end, prev.vm_pgoff
        dup_anon_vma(prev, nxt if nxt.anon_vma is not None else vma)
    elif merge_left:
        assert prev is not None
        vmg.vma = prev
        vmg.start, vmg.pgoff = prev.vm_start, prev.vm_pgoff
        if not delete_vma:
            adjust = vma
            adj_start = vmg.end - vma.vm_start
        dup_anon_vma(prev, vma)
    else:
        assert nxt is not None
        pglen = (vmg.end - vmg.start) >> PAGE_SHIFT
        if delete_vma:
            vmg.vma = nxt
            vmg.end = nxt.vm_end
            vmg.pgoff = nxt.vm_pgoff - pglen
        else:
            vmg.start, vmg.end, vmg.pgoff = vma.vm_start, start, vma.vm_pgoff
            adjust = nxt
            adj_start = -(vma.vm_end - start)
        dup_anon_vma(nxt, vma)
    commit_merge(vmg, adjust, vma if delete_vma else None, nxt if delete_next else None, adj_start)
    return prev if merge_left else nxt


def vma_modify(
    vma: Vma, prev: Vma | None, start: int, end: int, flags: int, uffd_ctx: UserfaultfdCtx | None
) -> Vma:
    """``vma_modify``: merge the changed range with a neighbour, or split it out of ``vma``.

    Returns the VMA that now covers ``[start, end)`` (its flags are not changed here).
    """
    vmg = VmaMergeStruct(
        vma.vm_mm,
        prev,
        None,
        vma,
        start,
        end,
        vma.linear_page_index(start),
        flags,
        vma.vm_file,
        vma.anon_vma,
        uffd_ctx,
    )
    merged = vma_merge_existing_range(vmg)
    if merged is not None:
        return merged
    if vma.vm_start < start:
        split_vma(vma, start, new_below=True)
    if vma.vm_end > end:
        split_vma(vma, end, new_below=False)
    return vma


# --------------------------------------------------------------------------------------------
# removal and munmap


def _free_vma(vma: Vma) -> None:
    """``vm_area_free``: the VMA is freed after an RCU grace period (per-VMA locks)."""
    vma.detached = True

    def free() -> None:
        vma.freed = True

    vma.vm_mm.kernel.rcu.call_rcu(free)


def remove_vma(vma: Vma, closed: bool = False) -> None:
    """``remove_vma``: ``->close`` (unless already closed), ``fput``, free. May sleep."""
    might_sleep(vma.vm_mm.kernel, _VMA_C + "remove_vma")
    if not closed:
        call_vm_close(vma)
    if vma.vm_file is not None:
        fput(vma.vm_file)
    _free_vma(vma)


class MunmapState:
    """``struct vma_munmap_struct``: the VMAs gathered for one munmap."""

    __slots__ = ("closed_vm_ops", "detached", "end", "mm", "start", "unlock")

    def __init__(self, mm: MmStruct, start: int, end: int, unlock: bool) -> None:
        self.mm = mm
        self.start = start
        self.end = end
        self.unlock = unlock
        self.detached: list[Vma] = []
        self.closed_vm_ops = False


def _reattach(vms: MunmapState) -> None:
    """``reattach_vmas``."""
    for v in vms.detached:
        v.detached = False
    vms.detached = []


def vms_gather_munmap_vmas(vms: MunmapState, vma: Vma) -> None:
    """``vms_gather_munmap_vmas``: split the ends, write-lock and detach every VMA in range.

    On failure, VMAs already detached are reattached, but splits already made stay split.
    """
    mm = vms.mm
    k = mm.kernel
    if vms.start > vma.vm_start:
        if vms.end < vma.vm_end and mm.map_count >= k.max_map_count:
            raise KernelError(errno.ENOMEM, f"munmap would split {vma!r} beyond max_map_count")
        if vma.vm_flags & VM_SEALED:
            raise KernelError(errno.EPERM, f"{vma!r} is sealed")
        __split_vma(vma, vms.start, new_below=True)
    try:
        for _, _, nxt in list(mm.mm_mt.iter_range(vms.start, vms.end)):
            if nxt.vm_flags & VM_SEALED:
                raise KernelError(errno.EPERM, f"{nxt!r} is sealed")
            if nxt.vm_end > vms.end:
                __split_vma(nxt, vms.end, new_below=False)
            vma_start_write(nxt, _VMA_C + "vms_gather_munmap_vmas")
            nxt.detached = True
            vms.detached.append(nxt)
    except KernelError:
        _reattach(vms)
        raise


def vms_clear_ptes(vms: MunmapState) -> None:
    """``vms_clear_ptes``: zap the detached VMAs and unlink them from ``i_mmap``
    (``unmap_vmas`` + ``free_pgtables``)."""
    for v in vms.detached:
        zap_pte_range(v, v.vm_start, v.vm_end)
    for v in vms.detached:
        unlink_file_vma(v)


def vms_clean_up_area(vms: MunmapState) -> None:
    """``vms_clean_up_area``: clear PTEs and run ``->close`` before a MAP_FIXED replacement's
    ``->mmap`` (after this, a failed mmap cannot restore the old mapping)."""
    if not vms.detached:
        return
    vms_clear_ptes(vms)
    for v in vms.detached:
        call_vm_close(v)
    vms.closed_vm_ops = True


def vms_clear_tree(vms: MunmapState) -> None:
    """``vma_iter_clear_gfp``: remove the detached VMAs from the tree."""
    for v in vms.detached:
        vms.mm.mm_mt.erase(v.vm_start)


def vms_complete_munmap_vmas(vms: MunmapState) -> None:
    """``vms_complete_munmap_vmas``: optionally downgrade to the read lock, zap, close, free."""
    mm = vms.mm
    if vms.unlock:
        mmap_write_downgrade(mm)
    if not vms.closed_vm_ops:
        vms_clear_ptes(vms)
    for v in vms.detached:
        remove_vma(v, closed=vms.closed_vm_ops)
    if vms.unlock:
        mmap_read_unlock(mm)


def do_vmi_munmap(mm: MmStruct, start: int, length: int, unlock: bool) -> None:
    """``do_vmi_munmap``: unmap ``[start, start+length)``; the caller holds the write lock.

    EINVAL for an unaligned start, a range past TASK_SIZE or a zero length; no VMA in range is
    success. With ``unlock`` the lock is downgraded to read before zapping and released on
    success (as ``munmap(2)`` does); on error the write lock is still held.
    """
    if start & ~PAGE_MASK or start > TASK_SIZE or length > TASK_SIZE - start:
        raise KernelError(errno.EINVAL, f"munmap: bad range {start:#x}+{length:#x}")
    end = start + ((length + ~PAGE_MASK) & PAGE_MASK)
    if end == start:
        raise KernelError(errno.EINVAL, "munmap: zero length")
    vma = mm.mm_mt.find_intersection(start, end)
    if vma is None:
        if unlock:
            mmap_write_unlock(mm)
        return
    vms = MunmapState(mm, start, end, unlock)
    vms_gather_munmap_vmas(vms, vma)
    vms_clear_tree(vms)
    vms_complete_munmap_vmas(vms)


# --------------------------------------------------------------------------------------------
# mremap support


def copy_vma(vma: Vma, addr: int, length: int, pgoff: int) -> Vma:
    """``copy_vma``: the VMA at the mremap destination, merged into a neighbour or new.

    A new copy gets ``->open``. Returns the destination VMA (possibly ``vma`` itself if an
    unfaulted anonymous VMA merged with its own copy).
    """
    mm = vma.vm_mm
    if vma.is_anonymous() and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
    pr = mm.mm_mt.prev(addr)
    nr = mm.mm_mt.next_after(addr + length)
    vmg = VmaMergeStruct(
        mm,
        pr[2] if pr is not None else None,
        nr[2] if nr is not None else None,
        None,
        addr,
        addr + length,
        pgoff,
        vma.vm_flags,
        vma.vm_file,
        vma.anon_vma,
        vma.vm_userfaultfd_ctx,
    )
    # vma_merge_copied_range: the source is not the middle of the merge but where it is
    # copied from (is_mergeable_anon_vma refuses a fork child's anon_vma either way).
    vmg.copied_from = vma
    merged = vma_merge_new_range(vmg)
    if merged is not None:
        return merged
    new = vm_area_dup(vma)
    new.vm_start, new.vm_end, new.vm_pgoff = addr, addr + length, pgoff
    if new.vm_file is not None:
        get_file(new.vm_file)
    call_vm_open(new)
    vma_link(mm, new)
    return new
