"""userfaultfd registration: include/linux/userfaultfd_k.h ``vma_can_userfault`` and
fs/userfaultfd.c ``userfaultfd_register``.

Only registration is modelled (it is what decides whether a VMA can carry a userfaultfd
context, hazard H8); faults on registered ranges are handled like any other fault.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from typing_extensions import override

from .errors import KernelError
from .mman import HPAGE_SIZE, PAGE_MASK, TASK_SIZE
from .mmap_lock import vma_start_write
from .vm_flags import (
    VM_DROPPABLE,
    VM_HUGETLB,
    VM_MAYWRITE,
    VM_UFFD_FLAGS,
    VM_UFFD_MINOR,
    VM_UFFD_MISSING,
    VM_UFFD_WP,
)
from .vm_flags_update import vm_flags_reset
from .vma import vma_modify

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["UserfaultfdCtx", "userfaultfd_register", "vma_can_userfault"]

UFFDIO_REGISTER_MODE_MISSING = 1
UFFDIO_REGISTER_MODE_WP = 2
UFFDIO_REGISTER_MODE_MINOR = 4


class UserfaultfdCtx:
    """A ``userfaultfd_ctx``: one userfaultfd, registered on VMAs of one mm."""

    __slots__ = ("id", "mm")

    def __init__(self, mm: MmStruct) -> None:
        self.id = mm.kernel.new_id("userfaultfd")
        self.mm = mm

    @override
    def __repr__(self) -> str:
        return f"<userfaultfd {self.id}>"


def _is_shmem(vma: Vma) -> bool:
    f = vma.vm_file
    return f is not None and f.f_inode.kind == "shmem"


def vma_can_userfault(vma: Vma, vm_flags: int, wp_async: bool = False) -> bool:
    """``vma_can_userfault``: anonymous, shmem or hugetlb VMAs only (any VMA for async
    write-protect only); never VM_DROPPABLE; MINOR only on shmem/hugetlb."""
    vm_flags &= VM_UFFD_FLAGS
    if vma.vm_flags & VM_DROPPABLE:
        return False
    if vm_flags & VM_UFFD_MINOR and not (vma.vm_flags & VM_HUGETLB or _is_shmem(vma)):
        return False
    if wp_async and vm_flags == VM_UFFD_WP:
        return True
    return vma.is_anonymous() or bool(vma.vm_flags & VM_HUGETLB) or _is_shmem(vma)


def userfaultfd_register(
    mm: MmStruct, ctx: UserfaultfdCtx, start: int, length: int, mode: int
) -> None:
    """``userfaultfd_register``: attach ``ctx`` to every VMA of ``[start, start+length)``.

    EINVAL: bad mode, unaligned or out-of-range arguments (``validate_range``, including a
    start below ``mmap_min_addr``), no VMA intersecting the range, a hugetlb VMA cut off its
    huge-page boundary, or a VMA that cannot userfault (a driver's VM_MIXEDMAP/VM_PFNMAP VMA:
    H8). EPERM: a VMA without VM_MAYWRITE. EBUSY: a VMA registered with another userfaultfd.
    Holes in the range are skipped, as ``for_each_vma_range`` does; every check runs before
    any VMA changes. The caller holds the mmap write lock.
    """
    if not mode or mode & ~(
        UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR
    ):
        raise KernelError(errno.EINVAL, f"userfaultfd: bad mode {mode:#x}")
    vm_flags = 0
    if mode & UFFDIO_REGISTER_MODE_MISSING:
        vm_flags |= VM_UFFD_MISSING
    if mode & UFFDIO_REGISTER_MODE_WP:
        vm_flags |= VM_UFFD_WP
    if mode & UFFDIO_REGISTER_MODE_MINOR:
        vm_flags |= VM_UFFD_MINOR
    if (
        start & ~PAGE_MASK
        or length & ~PAGE_MASK
        or length <= 0
        or start < mm.mmap_min_addr
        or start >= TASK_SIZE
        or (length > TASK_SIZE - start)
    ):
        raise KernelError(errno.EINVAL, f"userfaultfd: bad range {start:#x}+{length:#x}")
    end = start + length
    vmas = [v for _, _, v in mm.mm_mt.iter_range(start, end)]
    if not vmas:
        raise KernelError(errno.EINVAL, f"userfaultfd: no mapping in {start:#x}-{end:#x}")
    if vmas[0].vm_flags & VM_HUGETLB and start & (HPAGE_SIZE - 1):
        raise KernelError(errno.EINVAL, f"userfaultfd: {start:#x} is not huge-page aligned")
    for v in vmas:
        if not vma_can_userfault(v, vm_flags):
            raise KernelError(
                errno.EINVAL,
                f"userfaultfd: {v!r} cannot be registered "
                "(only anonymous, shmem and hugetlb VMAs can)",
            )
        if not v.vm_flags & VM_MAYWRITE:
            raise KernelError(errno.EPERM, f"userfaultfd: {v!r} lacks VM_MAYWRITE")
        if v.vm_flags & VM_HUGETLB and v.vm_start < end <= v.vm_end and end & (HPAGE_SIZE - 1):
            raise KernelError(errno.EINVAL, f"userfaultfd: {end:#x} is not huge-page aligned")
        if v.vm_userfaultfd_ctx is not None and v.vm_userfaultfd_ctx is not ctx:
            raise KernelError(errno.EBUSY, f"userfaultfd: {v!r} registered elsewhere")
    # userfaultfd_register_range: walk the range again, as the iterator does after each
    # modification (a merge may have swallowed the next VMA).
    prev_r = mm.mm_mt.prev(start)
    prev = prev_r[2] if prev_r is not None else None
    if vmas[0].vm_start < start:
        prev = vmas[0]
    cur = start
    while cur < end:
        nv = mm.mm_mt.find_intersection(cur, end)
        if nv is None:
            break
        # "Nothing to do: this vma is already registered into this userfaultfd and with
        # the right tracking mode too."
        if not (nv.vm_userfaultfd_ctx is ctx and nv.vm_flags & vm_flags == vm_flags):
            s, e = max(nv.vm_start, cur), min(nv.vm_end, end)
            newflags = (nv.vm_flags & ~VM_UFFD_FLAGS) | vm_flags
            nv = vma_modify(nv, prev, s, e, newflags, ctx)
            vma_start_write(nv, "fs/userfaultfd.c:userfaultfd_register_range")
            vm_flags_reset(nv, newflags)
            nv.vm_userfaultfd_ctx = ctx
        prev = nv
        cur = nv.vm_end
