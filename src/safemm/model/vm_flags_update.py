"""Writing a VMA's flags: the ``vm_flags_set``/``vm_flags_clear``/``vm_flags_mod``/
``vm_flags_reset`` helpers of include/linux/mm.h.

Each write takes the lock the kernel's helper takes or asserts (``vma_start_write``, or
``vma_assert_write_locked`` for ``vm_flags_reset``; a VMA still in ``->mmap`` setup needs only
the mmap write lock, as ``vm_flags_init`` does) and keeps the invariants every flag write
keeps: no unknown bits (EINVAL), never VM_MIXEDMAP together with VM_PFNMAP (a WARN, as
``vm_insert_page``'s ``BUG_ON`` and ``remap_pfn_range`` expect), and in strict mode the
review's rules on which flags a driver may change (``flags-sticky``, ``mixedmap-uffd``,
``live-flags``). The flag bits themselves are in :mod:`safemm.model.vm_flags`.
"""

from __future__ import annotations

import errno

from .errors import KernelError
from .mm_types import Vma
from .mmap_lock import mmap_assert_write_locked, vma_assert_write_locked, vma_start_write
from .printk import SplatKind
from .vm_flags import (
    VM_ACCESS_FLAGS,
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_HUGETLB,
    VM_KNOWN,
    VM_MAYEXEC,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    flags_str,
)

__all__ = ["vm_flags_clear", "vm_flags_mod", "vm_flags_reset", "vm_flags_set"]


#: What a driver may change on a live VMA (review: Jann Horn's list; Rust's setters).
_LIVE_SET_OK = VM_MIXEDMAP | VM_DONTCOPY | VM_DONTDUMP
_LIVE_CLEAR_OK = VM_MAYWRITE | VM_MAYEXEC
#: What a driver must never set, even in ->mmap.
_NEVER_SET = VM_ACCESS_FLAGS | VM_HUGETLB


def _check_flag_change(vma: Vma, new: int, where: str) -> None:
    """Check the invariants every flag write keeps (mixedmap-pfnmap-exclusive, flags-sticky,
    mixedmap-uffd) and, in strict mode, which changes a driver may make (live-flags)."""
    k = vma.vm_mm.kernel
    if new & ~VM_KNOWN:
        raise KernelError(errno.EINVAL, f"{where}: unknown VM flag bits {new & ~VM_KNOWN:#x}")
    if new & VM_MIXEDMAP and new & VM_PFNMAP:
        k.report(
            SplatKind.WARNING,
            "mixedmap-pfnmap-exclusive",
            f"{vma!r} would have both VM_MIXEDMAP and VM_PFNMAP",
            where,
        )
    old = vma.vm_flags
    if not k.strict:
        return
    if old & ~new & (VM_MIXEDMAP | VM_PFNMAP):
        k.report(
            SplatKind.STRICT,
            "flags-sticky",
            f"{where} clears VM_MIXEDMAP/VM_PFNMAP on {vma!r}, which may already map "
            "pages that need it",
            where,
        )
    if new & ~old & VM_MIXEDMAP and vma.vm_userfaultfd_ctx is not None:
        # H8: userfaultfd_register refuses VM_MIXEDMAP VMAs (vma_can_userfault); a VMA that
        # already has a userfaultfd context must not become one (review, Jann Horn).
        k.report(
            SplatKind.STRICT,
            "mixedmap-uffd",
            f"{vma!r} has a userfaultfd context ({vma.vm_userfaultfd_ctx!r}) and would become "
            "VM_MIXEDMAP",
            where,
        )
    if k.driver_owner() is None:
        return
    added, removed = new & ~old, old & ~new
    if vma.in_setup:
        bad = added & _NEVER_SET
        if bad:
            k.report(
                SplatKind.STRICT,
                "live-flags",
                f"{k.driver_name()} sets {flags_str(bad)} on {vma!r} in ->mmap",
                where,
            )
        return
    bad_set, bad_clear = added & ~_LIVE_SET_OK, removed & ~_LIVE_CLEAR_OK
    if bad_set or bad_clear:
        parts = []
        if bad_set:
            parts.append(f"sets {flags_str(bad_set)}")
        if bad_clear:
            parts.append(f"clears {flags_str(bad_clear)}")
        k.report(
            SplatKind.STRICT,
            "live-flags",
            f"{k.driver_name()} {' and '.join(parts)} on live {vma!r}",
            where,
        )


def _assert_flags_writable(vma: Vma, where: str) -> None:
    """``vm_flags_set`` & co. call ``vma_start_write``; a VMA in ->mmap setup is exempt when
    the mmap write lock is held (``vm_flags_init`` territory)."""
    if vma.in_setup:
        mmap_assert_write_locked(vma.vm_mm, where)
        return
    vma_start_write(vma, where)


def vm_flags_set(vma: Vma, flags: int) -> None:
    """``vm_flags_set``: needs the mmap write lock (write-locks the VMA; may sleep)."""
    where = "include/linux/mm.h:vm_flags_set"
    _assert_flags_writable(vma, where)
    new = vma.vm_flags | flags
    _check_flag_change(vma, new, where)
    vma.vm_flags = new


def vm_flags_clear(vma: Vma, flags: int) -> None:
    """``vm_flags_clear``: needs the mmap write lock (write-locks the VMA)."""
    where = "include/linux/mm.h:vm_flags_clear"
    _assert_flags_writable(vma, where)
    new = vma.vm_flags & ~flags
    _check_flag_change(vma, new, where)
    vma.vm_flags = new


def vm_flags_mod(vma: Vma, set_: int, clear: int) -> None:
    """``vm_flags_mod``: set and clear in one write-locked update."""
    where = "include/linux/mm.h:vm_flags_mod"
    _assert_flags_writable(vma, where)
    new = (vma.vm_flags | set_) & ~clear
    _check_flag_change(vma, new, where)
    vma.vm_flags = new


def vm_flags_reset(vma: Vma, flags: int) -> None:
    """``vm_flags_reset``: the caller must already have write-locked the VMA."""
    where = "include/linux/mm.h:vm_flags_reset"
    if not vma.in_setup:
        vma_assert_write_locked(vma, where)
    _check_flag_change(vma, flags, where)
    vma.vm_flags = flags
