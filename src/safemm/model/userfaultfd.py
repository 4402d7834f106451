"""userfaultfd registration: include/linux/userfaultfd_k.h ``vma_can_userfault`` and
fs/userfaultfd.c ``userfaultfd_register``.

Only registration is modelled (it is what decides whether a VMA can carry a userfaultfd
context, hazard H8); faults on registered ranges are handled like any other fault.
"""

from __future__ import annotations

import errno
import itertools
from typing import TYPE_CHECKING

from typing_extensions import override

from .errors import KernelError
from .mman import PAGE_MASK, TASK_SIZE
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
from .vma import vm_flags_reset, vma_modify

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["UserfaultfdCtx", "userfaultfd_register", "vma_can_userfault"]

UFFDIO_REGISTER_MODE_MISSING = 1
UFFDIO_REGISTER_MODE_WP = 2
UFFDIO_REGISTER_MODE_MINOR = 4

_ids = itertools.count(1)


class UserfaultfdCtx:
    """A ``userfaultfd_ctx``: one userfaultfd, registered on VMAs of one mm."""

    __slots__ = ("id", "mm")

    def __init__(self, mm: MmStruct) -> None:
        self.id = next(_ids)
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

    EINVAL: bad mode, unaligned or out-of-range arguments, no VMA, a hole, or a VMA that
    cannot userfault (a driver's VM_MIXEDMAP/VM_PFNMAP VMA: H8). EPERM: a VMA without
    VM_MAYWRITE. EBUSY: a VMA registered with another userfaultfd. The caller holds the mmap
    write lock.
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
        or length <= 0
        or length & ~PAGE_MASK
        or start >= TASK_SIZE
        or (length > TASK_SIZE - start)
    ):
        raise KernelError(errno.EINVAL, f"userfaultfd: bad range {start:#x}+{length:#x}")
    end = start + length
    vmas = [v for _, _, v in mm.mm_mt.iter_range(start, end)]
    if not vmas:
        raise KernelError(errno.EINVAL, f"userfaultfd: no mapping in {start:#x}-{end:#x}")
    expect = vmas[0].vm_start if vmas[0].vm_start <= start else -1
    if expect < 0:
        raise KernelError(errno.EINVAL, f"userfaultfd: hole at {start:#x}")
    for v in vmas:
        if v.vm_start > max(expect, start):
            raise KernelError(errno.EINVAL, f"userfaultfd: hole at {expect:#x}")
        expect = v.vm_end
        if not vma_can_userfault(v, vm_flags):
            raise KernelError(
                errno.EINVAL,
                f"userfaultfd: {v!r} cannot be registered "
                "(only anonymous, shmem and hugetlb VMAs can)",
            )
        if not v.vm_flags & VM_MAYWRITE:
            raise KernelError(errno.EPERM, f"userfaultfd: {v!r} lacks VM_MAYWRITE")
        if v.vm_userfaultfd_ctx is not None and v.vm_userfaultfd_ctx is not ctx:
            raise KernelError(errno.EBUSY, f"userfaultfd: {v!r} registered elsewhere")
    if expect < end:
        raise KernelError(errno.EINVAL, f"userfaultfd: hole at {expect:#x}")
    prev_r = mm.mm_mt.prev(start)
    prev = prev_r[2] if prev_r is not None else None
    for v in vmas:
        s, e = max(v.vm_start, start), min(v.vm_end, end)
        if v.vm_start < start:
            prev = v
        newflags = (v.vm_flags & ~VM_UFFD_FLAGS) | vm_flags
        nv = vma_modify(v, prev, s, e, newflags, ctx)
        vma_start_write(nv, "fs/userfaultfd.c:userfaultfd_register_range")
        vm_flags_reset(nv, newflags)
        nv.vm_userfaultfd_ctx = ctx
        prev = nv
