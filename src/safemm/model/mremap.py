"""Resizing and moving mappings: the model's mm/mremap.c, as in Linux 6.17/6.18.

Mirrors the structure Lorenzo Stoakes' 2025 rework gave mm/mremap.c (read for this model:
the 6.17+ file with ``struct vma_remap_struct``, ``check_mremap_params``, ``check_prep_vma``,
``remap_move``): every call is one :class:`VmaRemapStruct` threaded through

* ``do_mremap``: ``PAGE_ALIGN`` both lengths (``unsigned long``: they wrap to 0 near 2**64),
  ``check_mremap_params`` (all argument checks that need no VMA, including the TASK_SIZE
  bounds and the overlap of the old and new ranges), then either
* ``remap_move`` for a pure move (MREMAP_FIXED and ``old_len == new_len``, 6.17+): every VMA
  of ``[addr, addr + old_len)`` is moved, one after the other, keeping the gaps between them
  (no gap allowed at the start of the range), or
* ``check_prep_vma`` on the VMA at ``addr`` (EFAULT/EPERM/EINVAL before anything changes) and
  ``mremap_to`` (MREMAP_FIXED / MREMAP_DONTUNMAP: the destination is unmapped first, so a
  later failure leaves it unmapped, as in Linux) or ``mremap_at`` (same size: nothing;
  shrink: ``shrink_vma``; grow: ``expand_vma`` — in place through ``vma_merge_extend`` or
  moved with MREMAP_MAYMOVE);
* ``move_vma``: ``prep_move_vma`` (``->may_split`` at both ends), ``copy_vma_and_data``
  (``copy_vma`` with ``->open`` on a new copy, ``move_page_tables``, the ``->mremap`` veto
  that moves the PTEs back and makes the *new* range the one to unmap), then
  ``dontunmap_complete`` (MREMAP_DONTUNMAP) or ``unmap_source_vma`` (the munmap of the old
  range, which runs ``->close`` on it — best effort: a failure there is ignored).

The grown part of a VM_LOCKED mapping is faulted in (``mm_populate``).

Simplifications: no RLIMIT_MEMLOCK (``mlock_future_ok``), no RLIMIT_AS (``may_expand_vm``),
no commit accounting (``vrm_calc_charge``: the VM_ACCOUNT flag dance of ``unmap_source_vma``
leaves the flags as they were, so it is not replayed), no userfaultfd events (a moved VMA
just loses its userfaultfd: ``mremap_userfaultfd_prep`` without UFFD_FEATURE_EVENT_REMAP), no
KSM; the mmap lock is never dropped early (``shrink_vma(drop_lock=true)`` keeps the write
lock, so ``->close`` of an unmapped tail runs under the write lock rather than the read lock).
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .gup import mm_populate
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
from .vm_flags import (
    VM_DONTEXPAND,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SEALED,
    VM_SHARED,
    VM_UFFD_FLAGS,
)
from .vm_flags_update import vm_flags_clear, vm_flags_reset
from .vma import (
    VmaMergeStruct,
    copy_vma,
    do_vmi_munmap,
    vma_merge_new_range,
)

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["do_mremap"]

_MREMAP_C = "mm/mremap.c:"
ULONG_MAX = (1 << 64) - 1


def _page_align(x: int) -> int:
    """``PAGE_ALIGN`` on an ``unsigned long``: wraps to 0 near 2**64."""
    return (x + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MAX


class MremapType(enum.Enum):
    """``enum mremap_type``: what kind of remap a call is (set by ``check_prep_vma``)."""

    INVALID = 0
    NO_RESIZE = 1
    SHRINK = 2
    EXPAND = 3


class VmaRemapStruct:
    """``struct vma_remap_struct``: one mremap operation, threaded through all of it.

    ``addr``, ``old_len``, ``new_len`` and ``new_addr`` start as the user's (lengths already
    page aligned) and are rewritten as the operation proceeds, as in the kernel: per VMA by
    ``remap_move``, to the new range when a move is rolled back, ``old_len`` to ``new_len``
    after a shrink. ``vma`` is the VMA being worked on (None once invalidated).
    """

    __slots__ = (
        "addr",
        "delta",
        "flags",
        "mm",
        "new_addr",
        "new_len",
        "old_len",
        "remap_type",
        "vma",
        "vmi_needs_invalidate",
    )

    def __init__(
        self, mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int, new_addr: int
    ) -> None:
        self.mm = mm
        self.addr = addr
        self.old_len = old_len
        self.new_len = new_len
        self.flags = flags
        self.new_addr = new_addr
        self.vma: Vma | None = None
        self.delta = 0
        self.remap_type = MremapType.INVALID
        self.vmi_needs_invalidate = False


def _vrm_vma(vrm: VmaRemapStruct) -> Vma:
    """``vrm->vma``, which every caller below has established."""
    vma = vrm.vma
    assert vma is not None
    return vma


def vrm_set_delta(vrm: VmaRemapStruct) -> None:
    """``vrm_set_delta``: ``abs_diff(old_len, new_len)``."""
    vrm.delta = abs(vrm.old_len - vrm.new_len)


def vrm_remap_type(vrm: VmaRemapStruct) -> MremapType:
    """``vrm_remap_type``: no resize, shrink or expand."""
    if vrm.delta == 0:
        return MremapType.NO_RESIZE
    if vrm.old_len > vrm.new_len:
        return MremapType.SHRINK
    return MremapType.EXPAND


def vrm_overlaps(vrm: VmaRemapStruct) -> bool:
    """``vrm_overlaps``: do ``[addr, +old_len)`` and ``[new_addr, +new_len)`` overlap?

    The ends are computed in ``unsigned long`` arithmetic (they wrap, as in C).
    """
    end_old = (vrm.addr + vrm.old_len) & ULONG_MAX
    end_new = (vrm.new_addr + vrm.new_len) & ULONG_MAX
    return end_old > vrm.new_addr and end_new > vrm.addr


def vrm_implies_new_addr(vrm: VmaRemapStruct) -> bool:
    """``vrm_implies_new_addr``: MREMAP_FIXED or MREMAP_DONTUNMAP always pick a new address."""
    return bool(vrm.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))


def vrm_will_map_new(vrm: VmaRemapStruct) -> bool:
    """``vrm_will_map_new``: will the call map new address space (grow or move)?"""
    return vrm.remap_type is MremapType.EXPAND or vrm_implies_new_addr(vrm)


def vrm_move_only(vrm: VmaRemapStruct) -> bool:
    """``vrm_move_only``: MREMAP_FIXED without a resize (the multi-VMA ``remap_move``)."""
    return bool(vrm.flags & MREMAP_FIXED) and vrm.old_len == vrm.new_len


def vrm_set_new_addr(vrm: VmaRemapStruct) -> None:
    """``vrm_set_new_addr``: choose the destination with ``get_unmapped_area``.

    MREMAP_FIXED is a MAP_FIXED request; MREMAP_DONTUNMAP alone passes ``new_addr`` as a hint;
    otherwise the kernel chooses (hint 0). Its ENOMEM/EINVAL are returned as they are.
    """
    vma = _vrm_vma(vrm)
    map_flags = MAP_FIXED if vrm.flags & MREMAP_FIXED else 0
    if vma.vm_flags & VM_MAYSHARE:
        map_flags |= MAP_SHARED
    pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
    new_addr = vrm.new_addr if vrm_implies_new_addr(vrm) else 0
    vrm.new_addr = get_unmapped_area(vrm.mm, vma.vm_file, new_addr, vrm.new_len, pgoff, map_flags)


def check_mremap_params(vrm: VmaRemapStruct) -> None:
    """``check_mremap_params``: the checks that need no VMA, in the 6.17+ order.

    EINVAL: unknown flags, an unaligned ``addr``, a zero (page-aligned) ``new_len``,
    ``new_len > TASK_SIZE``; then, only with MREMAP_FIXED/MREMAP_DONTUNMAP: a new range past
    TASK_SIZE, an unaligned ``new_addr``, no MREMAP_MAYMOVE, MREMAP_DONTUNMAP with a resize,
    old and new ranges overlapping. ENOMEM: ``map_count + 2 >= max_map_count - 3`` (6.17/6.18;
    later kernels moved this check under the lock as ``check_map_count_against_split_early``).
    Nothing has changed when any of these fails.
    """
    flags = vrm.flags
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        raise KernelError(errno.EINVAL, f"mremap: unknown flags {flags:#x}")
    if vrm.addr & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"mremap: address {vrm.addr:#x} is not page aligned")
    if vrm.new_len == 0:
        raise KernelError(errno.EINVAL, "mremap: zero new length (after PAGE_ALIGN)")
    if vrm.new_len > TASK_SIZE:
        raise KernelError(errno.EINVAL, f"mremap: new length {vrm.new_len:#x} exceeds TASK_SIZE")
    if not vrm_implies_new_addr(vrm):
        return
    if vrm.new_addr > TASK_SIZE - vrm.new_len:
        raise KernelError(errno.EINVAL, "mremap: new range exceeds TASK_SIZE")
    if vrm.new_addr & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"mremap: new address {vrm.new_addr:#x} is not aligned")
    if not flags & MREMAP_MAYMOVE:
        raise KernelError(errno.EINVAL, "mremap: MREMAP_FIXED/MREMAP_DONTUNMAP need MAYMOVE")
    if flags & MREMAP_DONTUNMAP and vrm.old_len != vrm.new_len:
        raise KernelError(errno.EINVAL, "mremap: MREMAP_DONTUNMAP cannot resize")
    if vrm_overlaps(vrm):
        raise KernelError(errno.EINVAL, "mremap: old and new ranges overlap")
    k = vrm.mm.kernel
    if vrm.mm.map_count + 2 >= k.max_map_count - 3:
        raise KernelError(errno.ENOMEM, "mremap: too many VMAs")


def align_hugetlb(vrm: VmaRemapStruct) -> bool:
    """``align_hugetlb``: round both lengths up to the huge page size; the addresses must be
    huge-page aligned (``new_addr`` even when it is not used) and a hugetlb VMA cannot grow."""
    mask = HPAGE_SIZE - 1
    vrm.old_len = (vrm.old_len + mask) & ~mask
    vrm.new_len = (vrm.new_len + mask) & ~mask
    if vrm.addr & mask or vrm.new_addr & mask:
        return False
    return vrm.new_len <= vrm.old_len


def check_prep_vma(vrm: VmaRemapStruct) -> None:
    """``check_prep_vma``: check ``vrm.vma`` for the operation and classify it.

    EFAULT: no VMA at ``addr``. EPERM: the VMA is sealed. EINVAL: hugetlb misalignment or
    growth. Then, only when the call grows or moves: EINVAL for ``old_len == 0`` on a private
    mapping (only shared ones can be "duplicated") and for MREMAP_DONTUNMAP on
    VM_DONTEXPAND/VM_PFNMAP; EFAULT when the old range (only its first ``new_len`` bytes when
    shrinking) crosses the VMA's end; for growth, EINVAL when the page offset overflows and
    EFAULT for VM_DONTEXPAND/VM_PFNMAP VMAs. Nothing has changed when any of these fails.
    """
    vma = vrm.vma
    if vma is None:
        raise KernelError(errno.EFAULT, f"mremap: no mapping at {vrm.addr:#x}")
    if vma.vm_flags & VM_SEALED:
        raise KernelError(errno.EPERM, f"mremap: {vma!r} is sealed")
    if vma.vm_flags & VM_HUGETLB and not align_hugetlb(vrm):
        raise KernelError(
            errno.EINVAL, "mremap: hugetlb ranges must be 2 MiB aligned and cannot grow"
        )
    vrm_set_delta(vrm)
    vrm.remap_type = vrm_remap_type(vrm)
    if not vrm_implies_new_addr(vrm):
        vrm.new_addr = vrm.addr
    if not vrm_will_map_new(vrm):
        return
    old_len, new_len, addr = vrm.old_len, vrm.new_len, vrm.addr
    if old_len == 0 and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        raise KernelError(errno.EINVAL, "mremap: old_len 0 duplicates only shared mappings")
    if vrm.flags & MREMAP_DONTUNMAP and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise KernelError(errno.EINVAL, "mremap: MREMAP_DONTUNMAP on VM_DONTEXPAND/VM_PFNMAP")
    if vrm.remap_type is MremapType.SHRINK:
        old_len = new_len
    if old_len > vma.vm_end - addr:
        raise KernelError(errno.EFAULT, f"mremap: old range crosses the end of {vma!r}")
    if new_len == old_len:
        return
    pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
    if pgoff + (new_len >> PAGE_SHIFT) > ULONG_MAX:
        raise KernelError(errno.EINVAL, "mremap: offset overflows")
    if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise KernelError(
            errno.EFAULT, f"mremap: {vma!r} is VM_DONTEXPAND or VM_PFNMAP and cannot grow"
        )


# --------------------------------------------------------------------------------------------
# moving


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


def prep_move_vma(vrm: VmaRemapStruct) -> None:
    """``prep_move_vma``: ENOMEM when ``map_count >= max_map_count - 3``; ``->may_split`` at
    the ends of the old range that are not the VMA's ends (a veto is returned as is)."""
    vma = _vrm_vma(vrm)
    mm = vrm.mm
    k = mm.kernel
    if mm.map_count >= k.max_map_count - 3:
        raise KernelError(errno.ENOMEM, "mremap: too many VMAs")
    ops = vma.vm_ops
    if ops is not None and ops.may_split is not None:
        with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->may_split"):
            if vma.vm_start != vrm.addr:
                ops.may_split(vma, vrm.addr)
            if vma.vm_end != vrm.addr + vrm.old_len:
                ops.may_split(vma, vrm.addr + vrm.old_len)


def copy_vma_and_data(vrm: VmaRemapStruct) -> tuple[Vma, KernelError | None]:
    """``copy_vma_and_data``: ``copy_vma`` to ``new_addr``, ``move_page_tables``, then the
    driver's ``->mremap(new_vma)``.

    If ``copy_vma`` merged the source VMA into the copy (an unfaulted anonymous VMA moved
    next to itself), the merged VMA becomes ``vrm.vma``. When ``->mremap`` refuses, the PTEs
    are moved back and ``vrm`` is pointed at the *new* range, which the caller then unmaps.

    Returns:
        The destination VMA and the driver's error (None on success).
    """
    vma = _vrm_vma(vrm)
    mm = vrm.mm
    k = mm.kernel
    vma_start = vma.vm_start
    new_pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
    new_vma = copy_vma(vma, vrm.new_addr, vrm.new_len, new_pgoff)
    if new_vma is not vma and new_vma.vm_start <= vma_start < new_vma.vm_end:
        # "Source vma may have been merged into new_vma".
        vma = new_vma
        vrm.vmi_needs_invalidate = True
    vrm.vma = vma
    moved = move_page_tables(vma, vrm.addr, new_vma, vrm.new_addr, vrm.old_len)
    err: KernelError | None = None
    ops = vma.vm_ops
    if ops is not None and ops.mremap is not None:
        try:
            with k.driver_hook(ops.owner, vma.vm_file, f"{ops.name}->mremap"):
                ops.mremap(new_vma)
        except KernelError as e:
            err = e
    if err is not None:
        move_page_tables(new_vma, vrm.new_addr, vma, vrm.addr, moved)
        vrm.vma = new_vma
        vrm.old_len = vrm.new_len
        vrm.addr = vrm.new_addr
    else:
        mremap_userfaultfd_prep(new_vma)
    return new_vma, err


def mremap_userfaultfd_prep(new_vma: Vma) -> None:
    """``mremap_userfaultfd_prep`` (fs/userfaultfd.c): a userfaultfd without
    UFFD_FEATURE_EVENT_REMAP — every one in the model, which has no userfaultfd features or
    events — is dropped from the destination VMA (``userfaultfd_reset_ctx``: no context, no
    VM_UFFD_* flags). If the copy merged into a neighbour, that whole VMA loses it, as in
    Linux."""
    if new_vma.vm_userfaultfd_ctx is None:
        return
    vma_start_write(new_vma, "fs/userfaultfd.c:userfaultfd_reset_ctx")
    new_vma.vm_userfaultfd_ctx = None
    vm_flags_reset(new_vma, new_vma.vm_flags & ~VM_UFFD_FLAGS)


def dontunmap_complete(vrm: VmaRemapStruct, new_vma: Vma) -> None:
    """``dontunmap_complete``: the old VMA stays but loses VM_LOCKED/VM_LOCKONFAULT; when it
    was moved whole (and not merged into the copy) its anon_vma links go
    (``unlink_anon_vmas``), as its page tables have been moved.

    6.18 keeps VM_ACCOUNT on the old VMA (older kernels cleared it too); checked on the
    running 6.18 kernel: the old VMA still merges with a new accounted private mapping.
    """
    vma = _vrm_vma(vrm)
    whole = vma.vm_start == vrm.addr and vma.vm_end == vrm.addr + vrm.old_len
    vm_flags_clear(vma, VM_LOCKED | VM_LOCKONFAULT)
    if new_vma is not vma and whole:
        vma.anon_vma = None
        vma.anon_vma_chain = 0


def unmap_source_vma(vrm: VmaRemapStruct) -> None:
    """``unmap_source_vma``: munmap ``[addr, +old_len)`` — the old range, or the new one after
    a refused move. Best effort: a failing ``do_vmi_munmap`` (a zero ``old_len`` duplicating
    a shared mapping, an unsplittable VMA) is ignored ("OOM: unable to split vma, just get
    accounts right") and the mremap still succeeds."""
    vrm.vma = None
    vrm.vmi_needs_invalidate = True
    try:
        do_vmi_munmap(vrm.mm, vrm.addr, vrm.old_len, unlock=False)
    except KernelError:
        pass


def move_vma(vrm: VmaRemapStruct) -> int:
    """``move_vma``: move ``[addr, +old_len)`` of ``vrm.vma`` to ``new_addr`` (``new_len``
    bytes); returns ``new_addr``. A ``->mremap`` veto is returned after the new range has been
    unmapped again (the old mapping is intact)."""
    prep_move_vma(vrm)
    vma_start_write(_vrm_vma(vrm), _MREMAP_C + "move_vma")
    new_addr = vrm.new_addr
    new_vma, err = copy_vma_and_data(vrm)
    if err is None and vrm.flags & MREMAP_DONTUNMAP:
        dontunmap_complete(vrm, new_vma)
    else:
        unmap_source_vma(vrm)
    if err is not None:
        raise err
    return new_addr


def shrink_vma(vrm: VmaRemapStruct, drop_lock: bool) -> None:
    """``shrink_vma``: unmap ``[addr + new_len, +delta)``, whatever is mapped there.

    With ``drop_lock`` false the VMA at ``addr`` is looked up again (EFAULT if gone). The
    model keeps the mmap write lock either way (see the module docstring).
    """
    do_vmi_munmap(vrm.mm, vrm.addr + vrm.new_len, vrm.delta, unlock=False)
    vrm.vma = None
    if not drop_lock:
        vrm.vma = vrm.mm.mm_mt.load(vrm.addr)
        if vrm.vma is None:
            raise KernelError(errno.EFAULT, f"mremap: no mapping at {vrm.addr:#x}")


def mremap_to(vrm: VmaRemapStruct) -> int:
    """``mremap_to``: move to a new address (MREMAP_FIXED and/or MREMAP_DONTUNMAP).

    With MREMAP_FIXED the destination is unmapped first; a shrink then unmaps the old tail;
    both stay done if a later step fails, as in Linux.
    """
    mm = vrm.mm
    if vrm.flags & MREMAP_FIXED:
        do_vmi_munmap(mm, vrm.new_addr, vrm.new_len, unlock=False)
        vrm.vma = None
        vrm.vmi_needs_invalidate = True
        vrm.vma = mm.mm_mt.load(vrm.addr)
        if vrm.vma is None:
            raise KernelError(errno.EFAULT, f"mremap: no mapping at {vrm.addr:#x}")
    if vrm.remap_type is MremapType.SHRINK:
        shrink_vma(vrm, drop_lock=False)
        vrm.old_len = vrm.new_len
    vrm_set_new_addr(vrm)
    return move_vma(vrm)


def vma_multi_allowed(vma: Vma) -> bool:
    """``vma_multi_allowed``: may this VMA be one of several moved by one call?

    Not when userfaultfd is armed on it; a file with its own ``get_unmapped_area`` might not
    honour MREMAP_FIXED, but the model's files (devices, shmem, hugetlbfs) have none that
    would, so every other VMA may.
    """
    return not vma.vm_flags & VM_UFFD_FLAGS


def remap_move(vrm: VmaRemapStruct) -> int:
    """``remap_move`` (6.17+): move every VMA of ``[addr, addr + old_len)`` to ``new_addr``.

    The VMAs are moved one at a time, in address order, each with ``check_prep_vma`` and
    ``mremap_to`` on its part of the range; the gaps between them are kept (only the
    destination of each VMA is unmapped, not the gaps). EFAULT when the range starts in a gap
    or has no VMA, or when a VMA that may not take part in a multi-VMA move
    (``vma_multi_allowed``) is not alone. An error stops the walk: the VMAs already moved stay
    moved (partial application, as in Linux). Returns the new address of the first VMA.
    """
    start = vrm.addr
    end = (vrm.addr + vrm.old_len) & ULONG_MAX
    target_addr = vrm.new_addr
    res: int | None = None
    last_end = 0
    cursor = start
    mm = vrm.mm
    while True:
        vma = mm.mm_mt.find_intersection(cursor, end)
        if vma is None:
            break
        addr = max(vma.vm_start, start)
        length = min(end, vma.vm_end) - addr
        if res is None and start < vma.vm_start:
            raise KernelError(errno.EFAULT, f"mremap: no mapping at {start:#x}")
        offset = vma.vm_start - last_end if res is not None else 0
        last_end = vma.vm_end
        vrm.vma = vma
        vrm.addr = addr
        vrm.new_addr = target_addr + offset
        vrm.old_len = vrm.new_len = length
        if not vma_multi_allowed(vma) and (res is not None or vma.vm_end < end):
            raise KernelError(
                errno.EFAULT, f"mremap: {vma!r} cannot be moved together with other VMAs"
            )
        check_prep_vma(vrm)
        res_vma = mremap_to(vrm)
        if res is None:
            res = res_vma
        # vma_iter_invalidate(): the walk resumes after the VMA just moved.
        vrm.vmi_needs_invalidate = False
        cursor = last_end
        target_addr = res_vma + vrm.new_len
    if res is None:
        raise KernelError(errno.EFAULT, f"mremap: no mapping in {start:#x}-{end:#x}")
    return res


# --------------------------------------------------------------------------------------------
# resizing in place


def vma_expandable(vma: Vma, delta: int) -> bool:
    """``vma_expandable``: the ``delta`` bytes after the VMA are free and the grown VMA would
    still be a valid MAP_FIXED range (``get_unmapped_area``: below TASK_SIZE)."""
    end = vma.vm_end + delta
    if end > ULONG_MAX:
        return False
    if vma.vm_mm.mm_mt.find_intersection(vma.vm_end, end) is not None:
        return False
    try:
        get_unmapped_area(vma.vm_mm, None, vma.vm_start, end - vma.vm_start, 0, MAP_FIXED)
    except KernelError:
        return False
    return True


def vrm_can_expand_in_place(vrm: VmaRemapStruct) -> bool:
    """``vrm_can_expand_in_place``: the range reaches the VMA's end and the space after it
    is free."""
    vma = _vrm_vma(vrm)
    if vma.vm_end - vrm.addr != vrm.old_len:
        return False
    return vma_expandable(vma, vrm.delta)


def expand_vma_in_place(vrm: VmaRemapStruct) -> None:
    """``expand_vma_in_place`` → ``vma_merge_extend``: merge ``[vm_end, vm_end + delta)``
    into the VMA (and the next VMA, if it becomes adjacent and compatible). ENOMEM when the
    merge is refused (VM_SPECIAL VMAs are never merged)."""
    vma = _vrm_vma(vrm)
    mm = vrm.mm
    nr = mm.mm_mt.next_after(vma.vm_end)
    vmg = VmaMergeStruct(
        mm,
        vma,
        nr[2] if nr is not None else None,
        None,
        vma.vm_end,
        vma.vm_end + vrm.delta,
        vma.linear_page_index(vma.vm_end),
        vma.vm_flags,
        vma.vm_file,
        vma.anon_vma,
        vma.vm_userfaultfd_ctx,
    )
    merged = vma_merge_new_range(vmg)
    if merged is None:
        raise KernelError(errno.ENOMEM, f"mremap: {vma!r} cannot be extended in place")
    vrm.vma = merged


def expand_vma(vrm: VmaRemapStruct) -> int:
    """``expand_vma``: grow in place if possible, else move (ENOMEM without MREMAP_MAYMOVE)."""
    if vrm_can_expand_in_place(vrm):
        expand_vma_in_place(vrm)
        return vrm.addr
    if not vrm.flags & MREMAP_MAYMOVE:
        raise KernelError(errno.ENOMEM, "mremap: cannot grow in place and MREMAP_MAYMOVE not set")
    vrm_set_new_addr(vrm)
    return move_vma(vrm)


def mremap_at(vrm: VmaRemapStruct) -> int:
    """``mremap_at``: resize at ``addr``: same size → nothing; shrink → unmap the tail
    (whatever is mapped there: only the VMA at ``addr`` was checked); grow → ``expand_vma``."""
    if vrm.remap_type is MremapType.NO_RESIZE:
        return vrm.addr
    if vrm.remap_type is MremapType.SHRINK:
        shrink_vma(vrm, drop_lock=True)
        return vrm.addr
    return expand_vma(vrm)


def do_mremap(
    mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int, new_addr: int
) -> int:
    """The ``mremap`` syscall body (``do_mremap``); the caller holds the mmap write lock.

    ``check_mremap_params`` first (nothing changes on its errors), then ``remap_move`` for a
    MREMAP_FIXED move without resize (any number of VMAs), otherwise ``check_prep_vma`` on
    the VMA at ``addr`` (nothing changes on its errors) and ``mremap_to`` or ``mremap_at``.
    See those functions for the errors; failures after the first change leave the model
    partially changed exactly where Linux does (destination already unmapped, tail already
    unmapped, earlier VMAs of a multi-VMA move already moved).
    """
    vrm = VmaRemapStruct(mm, addr, _page_align(old_len), _page_align(new_len), flags, new_addr)
    check_mremap_params(vrm)
    if vrm_move_only(vrm):
        return remap_move(vrm)
    vrm.vma = mm.mm_mt.load(addr)
    check_prep_vma(vrm)
    locked = vrm.vma is not None and bool(vrm.vma.vm_flags & VM_LOCKED)
    res = mremap_to(vrm) if vrm_implies_new_addr(vrm) else mremap_at(vrm)
    if locked and vrm.new_len > vrm.old_len:
        # vrm->mlocked: the grown part of a VM_LOCKED mapping is populated (mm_populate, its
        # errors ignored); the kernel does it after dropping the mmap lock.
        mm_populate(mm, res + vrm.old_len, vrm.new_len - vrm.old_len, ignore_errors=True)
    return res
