"""Advice on a range of memory: the model's mm/madvise.c.

Mirrors ``do_madvise`` (``madvise_behavior_valid``, ``check_input_range``), the VMA walk
``madvise_walk_vmas`` (a hole does not stop the walk: the advice is applied to every mapped
part and ENOMEM is returned at the end; an error from one VMA stops the walk there, with the
VMAs before it already changed), ``madvise_vma_behavior`` with ``can_madvise_modify`` (mseal),
``madvise_dontneed_free`` (``madvise_dontneed_free_valid_vma``, ``madvise_dontneed_single_vma``)
and ``madvise_update_vma`` (split or merge through ``vma_modify``, ENOMEM turned into EAGAIN).

Advice modelled: MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL (flags only), MADV_WILLNEED (no
read-ahead to do: the model has no swap and no backing store to read), MADV_DONTNEED,
MADV_DONTFORK, MADV_DOFORK, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK.
The other values the kernel accepts (MADV_FREE, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_*,
MADV_REMOVE, KSM, THP, guard regions, hwpoison) are refused with EINVAL and a message saying
they are not modelled. Simplifications: MADV_DONTNEED runs under the mmap read lock (the
kernel first tries the VMA read lock of a single-VMA range); no userfaultfd remove events; no
MADV_DONTNEED_LOCKED.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .memory import zap_pte_range
from .mman import (
    HPAGE_SIZE,
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_DONTNEED_LOCKED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_HUGEPAGE,
    MADV_HWPOISON,
    MADV_KEEPONFORK,
    MADV_MERGEABLE,
    MADV_NOHUGEPAGE,
    MADV_NORMAL,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_RANDOM,
    MADV_REMOVE,
    MADV_SEQUENTIAL,
    MADV_SOFT_OFFLINE,
    MADV_UNMERGEABLE,
    MADV_WILLNEED,
    MADV_WIPEONFORK,
    PAGE_MASK,
    PAGE_SIZE,
)
from .mmap_lock import mmap_assert_locked, mmap_assert_write_locked, vma_start_write
from .vm_flags import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_HUGETLB,
    VM_LOCKED,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_SEALED,
    VM_SEQ_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WIPEONFORK,
    VM_WRITE,
)
from .vm_flags_update import vm_flags_reset
from .vma import vma_modify

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["MADVISE_MODELLED", "do_madvise", "madvise_needs_write_lock"]

_MADVISE_C = "mm/madvise.c:"
ULONG_MAX = (1 << 64) - 1

#: The advice values the model implements.
MADVISE_MODELLED = frozenset(
    {
        MADV_NORMAL,
        MADV_RANDOM,
        MADV_SEQUENTIAL,
        MADV_WILLNEED,
        MADV_DONTNEED,
        MADV_DONTFORK,
        MADV_DOFORK,
        MADV_DONTDUMP,
        MADV_DODUMP,
        MADV_WIPEONFORK,
        MADV_KEEPONFORK,
    }
)
#: Valid on x86-64 6.18 (``madvise_behavior_valid``, KSM/THP/MEMORY_FAILURE configured) but
#: not modelled.
_VALID_UNMODELLED = frozenset(
    {
        MADV_REMOVE,
        MADV_DONTNEED_LOCKED,
        MADV_FREE,
        MADV_COLD,
        MADV_PAGEOUT,
        MADV_POPULATE_READ,
        MADV_POPULATE_WRITE,
        MADV_MERGEABLE,
        MADV_UNMERGEABLE,
        MADV_HUGEPAGE,
        MADV_NOHUGEPAGE,
        MADV_COLLAPSE,
        MADV_GUARD_INSTALL,
        MADV_GUARD_REMOVE,
        MADV_SOFT_OFFLINE,
        MADV_HWPOISON,
    }
)
#: Advice that discards data (``is_discard``): refused on sealed read-only anonymous VMAs.
_DISCARD = frozenset({MADV_DONTNEED, MADV_DONTFORK, MADV_WIPEONFORK})


def madvise_needs_write_lock(behavior: int) -> bool:
    """``get_lock_mode``: advice that changes VMA flags takes the mmap write lock; WILLNEED
    and DONTNEED only read the VMA tree."""
    return behavior not in (MADV_WILLNEED, MADV_DONTNEED)


def madvise_behavior_valid(behavior: int) -> None:
    """``madvise_behavior_valid``: EINVAL for an unknown advice (and, in the model, for the
    valid advice it does not implement).

    Raises:
        KernelError: EINVAL.
    """
    if behavior in MADVISE_MODELLED:
        return
    if behavior in _VALID_UNMODELLED:
        raise KernelError(
            errno.EINVAL, f"madvise: advice {behavior} is valid in Linux but not modelled"
        )
    raise KernelError(errno.EINVAL, f"madvise: unknown advice {behavior}")


def check_input_range(start: int, len_in: int) -> int:
    """``check_input_range``: EINVAL for an unaligned start, a length that ``PAGE_ALIGN``
    rounds to zero, or a range that wraps; returns the page-aligned length (``unsigned long``
    arithmetic). No ``TASK_SIZE`` check: a range beyond it has no VMA (ENOMEM later).

    Raises:
        KernelError: EINVAL.
    """
    if start & ~PAGE_MASK:
        raise KernelError(errno.EINVAL, f"madvise: start {start:#x} is not page aligned")
    length = (len_in + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MAX
    if len_in and not length:
        raise KernelError(errno.EINVAL, f"madvise: length {len_in:#x} overflows")
    if start + length > ULONG_MAX:
        raise KernelError(errno.EINVAL, f"madvise: {start:#x}+{length:#x} wraps around")
    return length


def can_madvise_modify(vma: Vma, behavior: int) -> bool:
    """``can_madvise_modify``: a sealed (mseal) anonymous VMA the user cannot write refuses
    the advice that discards data."""
    if not vma.vm_flags & VM_SEALED or behavior not in _DISCARD:
        return True
    return not vma.is_anonymous() or bool(vma.vm_flags & VM_WRITE)


def madvise_dontneed_free(vma: Vma, start: int, end: int) -> None:
    """``madvise_dontneed_free`` for MADV_DONTNEED: ``madvise_dontneed_free_valid_vma``
    refuses VM_LOCKED and VM_PFNMAP VMAs (EINVAL); in hugetlb VMAs the start must be huge-page
    aligned and the end is rounded down. ``madvise_dontneed_single_vma`` then zaps the PTEs:
    private anonymous pages are freed (they read back as zero), shared and file pages stay in
    their page cache and fault back in with their contents.

    Raises:
        KernelError: EINVAL.
    """
    if vma.vm_flags & VM_HUGETLB:
        if start & (HPAGE_SIZE - 1):
            raise KernelError(
                errno.EINVAL, f"madvise: {start:#x} is not huge-page aligned in {vma!r}"
            )
        end &= ~(HPAGE_SIZE - 1)
    elif vma.vm_flags & (VM_LOCKED | VM_PFNMAP):
        raise KernelError(
            errno.EINVAL, f"madvise: MADV_DONTNEED on {vma!r}, which is VM_LOCKED or VM_PFNMAP"
        )
    if start < end:
        zap_pte_range(vma, start, end)


def madvise_new_flags(vma: Vma, behavior: int) -> int:
    """The flag half of ``madvise_vma_behavior``: the VMA's flags after the advice.

    EINVAL: MADV_DOFORK on a VM_SPECIAL VMA (VM_IO before the 6.18-era change; a VM_IO VMA is
    refused either way), MADV_WIPEONFORK on a file or shared VMA, MADV_KEEPONFORK on a
    VM_DROPPABLE one, MADV_DODUMP on a VM_SPECIAL (non-hugetlb) or VM_DROPPABLE one.

    Raises:
        KernelError: EINVAL.
    """
    flags = vma.vm_flags
    if behavior == MADV_NORMAL:
        return flags & ~(VM_RAND_READ | VM_SEQ_READ)
    if behavior == MADV_SEQUENTIAL:
        return (flags & ~VM_RAND_READ) | VM_SEQ_READ
    if behavior == MADV_RANDOM:
        return (flags & ~VM_SEQ_READ) | VM_RAND_READ
    if behavior == MADV_DONTFORK:
        return flags | VM_DONTCOPY
    if behavior == MADV_DOFORK:
        if flags & VM_SPECIAL:
            raise KernelError(errno.EINVAL, f"madvise: MADV_DOFORK on special {vma!r}")
        return flags & ~VM_DONTCOPY
    if behavior == MADV_WIPEONFORK:
        if vma.vm_file is not None or flags & VM_SHARED:
            raise KernelError(
                errno.EINVAL, f"madvise: MADV_WIPEONFORK on {vma!r}, which is not private anon"
            )
        return flags | VM_WIPEONFORK
    if behavior == MADV_KEEPONFORK:
        if flags & VM_DROPPABLE:
            raise KernelError(errno.EINVAL, f"madvise: MADV_KEEPONFORK on droppable {vma!r}")
        return flags & ~VM_WIPEONFORK
    if behavior == MADV_DONTDUMP:
        return flags | VM_DONTDUMP
    if behavior == MADV_DODUMP:
        if (not flags & VM_HUGETLB and flags & VM_SPECIAL) or flags & VM_DROPPABLE:
            raise KernelError(errno.EINVAL, f"madvise: MADV_DODUMP on special {vma!r}")
        return flags & ~VM_DONTDUMP
    raise AssertionError(f"advice {behavior} has no flag change")  # pragma: no cover


def madvise_update_vma(vma: Vma, prev: Vma | None, start: int, end: int, new_flags: int) -> Vma:
    """``madvise_update_vma``: give ``[start, end)`` the new flags, splitting it out of
    ``vma`` or merging it into a neighbour (``vma_modify_flags``); returns the VMA that now
    covers the range. A split refused for ``max_map_count`` is EAGAIN here.

    Raises:
        KernelError: EAGAIN, or the error of a driver's ``->may_split``.
    """
    if new_flags == vma.vm_flags:
        return vma
    try:
        vma = vma_modify(vma, prev, start, end, new_flags, vma.vm_userfaultfd_ctx)
    except KernelError as exc:
        if exc.errno == errno.ENOMEM:
            raise KernelError(errno.EAGAIN, f"madvise: {exc.strerror}") from exc
        raise
    vma_start_write(vma, _MADVISE_C + "madvise_update_vma")
    vm_flags_reset(vma, new_flags)
    return vma


def madvise_vma_behavior(vma: Vma, prev: Vma | None, start: int, end: int, behavior: int) -> Vma:
    """``madvise_vma_behavior``: apply the advice to ``[start, end)`` inside ``vma``; returns
    the VMA covering the range afterwards (for the walk's next ``prev``).

    Raises:
        KernelError: EPERM (sealed), EINVAL, EAGAIN.
    """
    if not can_madvise_modify(vma, behavior):
        raise KernelError(errno.EPERM, f"madvise: {vma!r} is sealed")
    if behavior == MADV_WILLNEED:
        return vma
    if behavior == MADV_DONTNEED:
        madvise_dontneed_free(vma, start, end)
        return vma
    mmap_assert_write_locked(vma.vm_mm, _MADVISE_C + "madvise_vma_behavior")
    return madvise_update_vma(vma, prev, start, end, madvise_new_flags(vma, behavior))


def madvise_walk_vmas(mm: MmStruct, start: int, end: int, behavior: int) -> None:
    """``madvise_walk_vmas``: apply the advice VMA by VMA; holes are stepped over and reported
    as ENOMEM once the whole range has been walked.

    Raises:
        KernelError: the first VMA's error, or ENOMEM for a hole.
    """
    pr = mm.mm_mt.prev(start)
    prev = pr[2] if pr is not None else None
    vma = mm.mm_mt.find(start)
    if vma is not None and start > vma.vm_start:
        prev = vma
    hole = False
    while True:
        if vma is None:
            raise KernelError(errno.ENOMEM, f"madvise: no mapping at or after {start:#x}")
        if start < vma.vm_start:
            hole = True
            start = vma.vm_start
            if start >= end:
                break
        range_end = min(vma.vm_end, end)
        vma = madvise_vma_behavior(vma, prev, start, range_end, behavior)
        prev = vma
        range_end = max(range_end, vma.vm_end)
        if range_end >= end:
            break
        vma = mm.mm_mt.find(vma.vm_end)
        start = range_end
    if hole:
        raise KernelError(errno.ENOMEM, "madvise: the range has unmapped holes")


def do_madvise(mm: MmStruct, start: int, len_in: int, behavior: int) -> None:
    """``do_madvise``: validate, then walk; the caller holds the mmap lock (for write unless
    :func:`madvise_needs_write_lock` says otherwise).

    Raises:
        KernelError: EINVAL (advice, range), then what the walk raises.
    """
    madvise_behavior_valid(behavior)
    length = check_input_range(start, len_in)
    if not len_in:
        return
    if madvise_needs_write_lock(behavior):
        mmap_assert_write_locked(mm, _MADVISE_C + "do_madvise")
    else:
        mmap_assert_locked(mm, _MADVISE_C + "do_madvise")
    madvise_walk_vmas(mm, start, start + length, behavior)
