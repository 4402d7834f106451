"""mm reference counts, address-space teardown and fork: kernel/fork.c and
include/linux/sched/mm.h.

``mmgrab``/``mmdrop`` keep the ``mm_struct`` itself alive (``mm_count``); ``mmget``,
``mmget_not_zero``, ``mmput`` and ``mmput_async`` keep the address space alive
(``mm_users``). The last ``mmput`` tears the address space down (``__mmput`` → ``exit_mmap``:
``->close`` on every VMA, zap, free) in the caller's context — which is why a driver that may
drop the last reference while holding its own locks uses ``mmput_async``, whose teardown runs
later in a kworker. ``dup_mmap`` copies an address space for fork.
"""

from __future__ import annotations

from .fs import get_file
from .memory import copy_page_range
from .mm_types import AnonVma, MmStruct
from .mmap import exit_mmap
from .mmap_lock import mmap_write_lock, mmap_write_unlock, vma_start_write
from .printk import SplatKind
from .sched import might_sleep
from .vm_flags import VM_DONTCOPY, VM_LOCKED, VM_LOCKONFAULT, VM_UFFD_FLAGS, VM_WIPEONFORK
from .vma import call_vm_open, vm_area_dup, vma_link_file

__all__ = ["dup_mmap", "mmdrop", "mmget", "mmget_not_zero", "mmgrab", "mmput", "mmput_async"]

_FORK_C = "kernel/fork.c:"


def _check_alive(mm: MmStruct, what: str) -> None:
    if mm.freed:
        mm.kernel.report(
            SplatKind.BUG,
            "leak",
            f"{what} on freed mm {mm.id} (use after free)",
            _FORK_C + what,
            title=f"BUG: KASAN: slab-use-after-free in {what}",
        )


def mmgrab(mm: MmStruct) -> None:
    """``mmgrab``: pin the ``mm_struct`` (not the address space)."""
    _check_alive(mm, "mmgrab")
    mm.mm_count += 1
    mm.kernel.counters.mmgrab += 1


def mmdrop(mm: MmStruct) -> None:
    """``mmdrop``: unpin; the last reference frees the ``mm_struct`` (``__mmdrop``)."""
    _check_alive(mm, "mmdrop")
    if mm.mm_count <= 0:
        mm.kernel.report(
            SplatKind.BUG,
            "mm-ref-owned",
            f"mmdrop on mm {mm.id} with mm_count 0",
            _FORK_C + "mmdrop",
            title=f"kernel BUG at {_FORK_C}__mmdrop!",
        )
    mm.mm_count -= 1
    mm.kernel.counters.mmdrop += 1
    if mm.mm_count == 0:
        mm.freed = True
        mm.kernel.mms.pop(mm.id, None)


def mmget(mm: MmStruct) -> None:
    """``mmget``: take a user reference; the caller must already hold one."""
    if mm.mm_users <= 0:
        mm.kernel.report(
            SplatKind.WARNING,
            "mm-users",
            f"mmget on mm {mm.id} whose mm_users is 0",
            _FORK_C + "mmget",
        )
    mm.mm_users += 1
    mm.kernel.counters.mmget += 1


def mmget_not_zero(mm: MmStruct) -> bool:
    """``mmget_not_zero``: take a user reference unless the address space is already gone."""
    _check_alive(mm, "mmget_not_zero")
    if mm.mm_users == 0:
        mm.kernel.counters.mmget_not_zero_failed += 1
        return False
    mm.mm_users += 1
    mm.kernel.counters.mmget += 1
    return True


def __mmput(mm: MmStruct) -> None:
    """``__mmput``: tear the address space down, then drop the users' ``mm_count``."""
    exit_mmap(mm)
    mmdrop(mm)


def _put_users(mm: MmStruct, what: str) -> bool:
    """Drop one ``mm_users`` (BUG on underflow); True if it was the last."""
    _check_alive(mm, what)
    if mm.mm_users <= 0:
        mm.kernel.report(
            SplatKind.BUG,
            "mm-ref-owned",
            f"{what} on mm {mm.id} with mm_users 0",
            _FORK_C + what,
            title=f"kernel BUG at {_FORK_C}{what}!",
        )
    mm.mm_users -= 1
    return mm.mm_users == 0


def mmput(mm: MmStruct) -> None:
    """``mmput``: drop a user reference; may sleep; the last one runs ``__mmput`` here."""
    k = mm.kernel
    might_sleep(k, _FORK_C + "mmput")
    last = _put_users(mm, "mmput")
    k.counters.mmput += 1
    if last:
        __mmput(mm)


def mmput_async(mm: MmStruct) -> None:
    """``mmput_async``: drop a user reference without sleeping; the teardown (if this was the
    last one) is queued to a kworker (``schedule_work``)."""
    k = mm.kernel
    last = _put_users(mm, "mmput_async")
    k.counters.mmput_async += 1
    if last:
        k.schedule_work(f"mmput_async_fn(mm {mm.id})", lambda: __mmput(mm))


def dup_mmap(mm: MmStruct, oldmm: MmStruct) -> None:
    """``dup_mmap``: copy ``oldmm``'s VMAs into the new ``mm`` for fork.

    Both mms are write-locked and every parent VMA is write-locked. VM_DONTCOPY VMAs are
    skipped; copies drop VM_LOCKED/VM_LOCKONFAULT and (without a fork-aware userfaultfd) the
    uffd flags and context; VM_WIPEONFORK copies get a fresh anon_vma and no PTEs; ``->open``
    runs on the copy once it is in the tree; then file copies join ``i_mmap`` and page tables
    are copied (``copy_page_range``).
    """
    mmap_write_lock(oldmm)
    try:
        mmap_write_lock(mm)
        try:
            for vma in oldmm.vmas():
                vma_start_write(vma, _FORK_C + "dup_mmap")
                if vma.vm_flags & VM_DONTCOPY:
                    continue
                tmp = vm_area_dup(vma)
                tmp.vm_mm = mm
                tmp.vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT)
                tmp.vm_lock_seq = -1
                if tmp.vm_userfaultfd_ctx is not None:
                    tmp.vm_userfaultfd_ctx = None
                    tmp.vm_flags &= ~VM_UFFD_FLAGS
                if vma.vm_flags & VM_WIPEONFORK:
                    tmp.anon_vma = None
                    tmp.anon_vma_chain = 0
                elif vma.anon_vma is not None:
                    # anon_vma_fork: the child links the parent's chain plus its own anon_vma.
                    tmp.anon_vma = AnonVma(vma.vm_mm.kernel, vma.anon_vma.root)
                    tmp.anon_vma_chain = vma.anon_vma_chain + 1
                if tmp.vm_file is not None:
                    get_file(tmp.vm_file)
                mm.mm_mt.store(tmp.vm_start, tmp.vm_end, tmp)
                tmp.detached = False
                # dup_mmap: ->open runs once the copy is in the tree, before it joins i_mmap
                # and before its page tables are copied.
                call_vm_open(tmp)
                vma_link_file(tmp)
                if not vma.vm_flags & VM_WIPEONFORK:
                    copy_page_range(tmp, vma)
        finally:
            mmap_write_unlock(mm)
    finally:
        mmap_write_unlock(oldmm)
