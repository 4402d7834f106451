"""The mmap lock and the per-VMA locks.

Mirrors include/linux/mmap_lock.h and mm/mmap_lock.c: ``mmap_read_lock`` & co. on the
``mmap_lock`` rwsem (with the counters and lockdep checks of :mod:`.locking`);
``mmap_write_unlock``/``mmap_write_downgrade`` end every VMA write lock at once
(``vma_end_write_all`` bumps ``mm_lock_seq``); ``lock_vma_under_rcu`` read-locks one VMA
without the mmap lock and fails exactly where the kernel's fails (no VMA, VMA write-locked,
VMA detached, address no longer inside it); ``vma_start_write`` waits for VMA readers.

Outside ``Kernel.concurrently`` a VMA reader never leaves while another task runs, so a
``vma_start_write`` that would wait for one is a deadlock, reported as such; inside it, the
writer marks the VMA (new readers fail, as with ``VMA_LOCK_OFFSET`` in ``vm_refcnt``) and
sleeps until the readers have drained (``__vma_enter_locked``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .printk import SplatKind
from .runqueue import SwitchKind
from .sched import might_sleep

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = [
    "find_vma",
    "lock_vma_under_rcu",
    "mmap_assert_locked",
    "mmap_assert_write_locked",
    "mmap_read_lock",
    "mmap_read_trylock",
    "mmap_read_unlock",
    "mmap_write_downgrade",
    "mmap_write_lock",
    "mmap_write_trylock",
    "mmap_write_unlock",
    "vma_assert_locked",
    "vma_assert_write_locked",
    "vma_end_read",
    "vma_lookup",
    "vma_start_write",
]

_MMAP_LOCK_H = "include/linux/mmap_lock.h:"


def _check_users(mm: MmStruct, where: str) -> None:
    """Strict mode: the mmap lock of an mm whose address space is gone (``mm_users`` 0) is
    taken only through an ``MmWithUser`` (Rust's contract; C callers must ``mmget`` first)."""
    k = mm.kernel
    if mm.mm_users <= 0 and k.strict and k.driver_owner() is not None:
        k.report(
            SplatKind.STRICT,
            "mm-users",
            f"{k.driver_name()} takes the mmap lock of mm {mm.id}, whose mm_users is 0 (the "
            "caller holds only an mm_count reference)",
            where,
        )


def mmap_read_lock(mm: MmStruct) -> None:
    """``mmap_read_lock``: may sleep."""
    _check_users(mm, _MMAP_LOCK_H + "mmap_read_lock")
    mm.kernel.counters.mmap_read_lock += 1
    mm.mmap_lock.down_read(mm.kernel, _MMAP_LOCK_H + "mmap_read_lock")


def mmap_read_trylock(mm: MmStruct) -> bool:
    """``mmap_read_trylock``: never sleeps; fails while a writer holds or waits for the lock."""
    k = mm.kernel
    _check_users(mm, _MMAP_LOCK_H + "mmap_read_trylock")
    k.counters.mmap_read_trylock += 1
    ok = mm.mmap_lock.down_read_trylock(k, _MMAP_LOCK_H + "mmap_read_trylock")
    if not ok:
        k.counters.mmap_read_trylock_failed += 1
    return ok


def mmap_read_unlock(mm: MmStruct) -> None:
    """``mmap_read_unlock``."""
    mm.mmap_lock.up_read(mm.kernel, _MMAP_LOCK_H + "mmap_read_unlock")


def mmap_write_lock(mm: MmStruct) -> None:
    """``mmap_write_lock``: may sleep; once the lock is taken, ``mm_lock_seqcount_begin``
    makes ``mm_lock_seq`` odd (a write-lock epoch begins)."""
    _check_users(mm, _MMAP_LOCK_H + "mmap_write_lock")
    mm.kernel.counters.mmap_write_lock += 1
    mm.mmap_lock.down_write(mm.kernel, _MMAP_LOCK_H + "mmap_write_lock")
    mm.mm_lock_seq += 1


def mmap_write_trylock(mm: MmStruct) -> bool:
    """``mmap_write_trylock`` (``mm_lock_seqcount_begin`` on success)."""
    k = mm.kernel
    k.counters.mmap_write_trylock += 1
    ok = mm.mmap_lock.down_write_trylock(k, _MMAP_LOCK_H + "mmap_write_trylock")
    if ok:
        mm.mm_lock_seq += 1
    else:
        k.counters.mmap_write_trylock_failed += 1
    return ok


def _vma_end_write_all(mm: MmStruct) -> None:
    """``vma_end_write_all``: ``mm_lock_seqcount_end`` makes ``mm_lock_seq`` even again, so
    every VMA stamped in this epoch is write-unlocked at once."""
    if mm.mmap_lock.writer is mm.kernel.current:
        mm.mm_lock_seq += 1


def mmap_write_unlock(mm: MmStruct) -> None:
    """``mmap_write_unlock``: also ends every VMA write lock (``vma_end_write_all``)."""
    _vma_end_write_all(mm)
    mm.mmap_lock.up_write(mm.kernel, _MMAP_LOCK_H + "mmap_write_unlock")


def mmap_write_downgrade(mm: MmStruct) -> None:
    """``mmap_write_downgrade``: keep a read lock; VMA write locks end."""
    k = mm.kernel
    k.counters.mmap_write_downgrade += 1
    _vma_end_write_all(mm)
    mm.mmap_lock.downgrade_write(k, _MMAP_LOCK_H + "mmap_write_downgrade")


def mmap_assert_locked(mm: MmStruct, where: str) -> None:
    """``mmap_assert_locked``: the current task holds the mmap lock (read or write)."""
    k = mm.kernel
    if not mm.mmap_lock.is_locked_by(k.current):
        k.report(
            SplatKind.WARNING,
            "mmap-lock-held",
            f"mmap_lock of mm {mm.id} is not held by {k.current.comm}/{k.current.pid}",
            where,
        )


def mmap_assert_write_locked(mm: MmStruct, where: str) -> None:
    """``mmap_assert_write_locked``: the current task holds the mmap lock for writing."""
    k = mm.kernel
    if mm.mmap_lock.writer is not k.current:
        held = "read-held" if k.current in mm.mmap_lock.readers else "not held"
        k.report(
            SplatKind.WARNING,
            "mmap-write-lock-held",
            f"mmap_lock of mm {mm.id} is {held} by {k.current.comm}/{k.current.pid}; "
            "a write lock is required",
            where,
        )


def vma_is_write_locked(vma: Vma) -> bool:
    """``__is_vma_write_locked``'s comparison, which ``vma_start_read`` makes too: the VMA
    was stamped in the current ``mm_lock_seq`` epoch. The sequence is odd while the mmap
    lock is write-held, so a stamp made under it ends with the epoch; a stamp made without
    it (``vm_flags_set`` under only the read lock: reported) matches the even sequence and
    makes per-VMA readers fail until the next write-lock epoch, as in the kernel."""
    return vma.vm_lock_seq == vma.vm_mm.mm_lock_seq


def vma_start_write(vma: Vma, where: str = _MMAP_LOCK_H + "vma_start_write") -> None:
    """``vma_start_write``: needs the mmap write lock; waits (sleeps) for VMA readers."""
    mm = vma.vm_mm
    k = mm.kernel
    mmap_assert_write_locked(mm, where)
    if vma.vm_lock_seq == mm.mm_lock_seq:
        return
    might_sleep(k, where)
    s = k._sched
    if s is not None and vma.readers and k.current not in vma.readers:
        # __vma_start_write: readers fail from now on; wait for the ones inside to leave.
        vma.vm_lock_seq = mm.mm_lock_seq
        while vma.readers:
            s.wait_var(vma, lambda: f"the per-VMA readers of {vma!r} to leave")
    if vma.readers:
        holder = vma.readers[0]
        k.report(
            SplatKind.DEADLOCK,
            "deadlock",
            f"vma_start_write on {vma!r} waits for its per-VMA read lock, held by "
            f"{'the same task' if holder is k.current else repr(holder)}, which can never "
            "drop it",
            where,
            title=f"INFO: task {k.current.comm}:{k.current.pid} blocked forever",
        )
    vma.vm_lock_seq = mm.mm_lock_seq
    k.counters.vma_start_write += 1


def vma_assert_write_locked(vma: Vma, where: str) -> None:
    """``vma_assert_write_locked`` (VM_WARN_ON_ONCE_VMA; ``__is_vma_write_locked`` also
    asserts the mmap write lock)."""
    if vma.vm_mm.mmap_lock.writer is None or not vma_is_write_locked(vma):
        vma.vm_mm.kernel.report(
            SplatKind.WARNING,
            "vma-write-locked",
            f"{vma!r} is not write-locked (vma_start_write was not called under the mmap "
            "write lock)",
            where,
        )


def vma_locked_by_current(vma: Vma) -> bool:
    """Whether the current task may use ``vma``: it holds the mmap lock or the VMA lock."""
    mm = vma.vm_mm
    t = mm.kernel.current
    return mm.mmap_lock.is_locked_by(t) or t in vma.readers


def vma_assert_locked(vma: Vma, where: str) -> None:
    """``vma_assert_locked`` extended to the mmap lock: report use of an unlocked VMA (H12).

    The kernel asserts only the per-VMA lock here and only under lockdep; the model checks,
    in strict mode, that the current task holds the mmap lock or the VMA's read lock, and
    that the VMA is still attached.
    """
    k = vma.vm_mm.kernel
    if not k.strict:
        return
    if vma.in_setup:
        # Inside ->mmap: the VMA is not linked yet; mmap_region holds the write lock.
        mmap_assert_write_locked(vma.vm_mm, where)
        return
    if vma.detached:
        k.report(
            SplatKind.STRICT,
            "vma-attached",
            f"{vma!r} is used after it was detached from mm {vma.vm_mm.id} (unmapped)",
            where,
        )
    elif not vma_locked_by_current(vma):
        k.report(
            SplatKind.STRICT,
            "vma-locked",
            f"{vma!r} is used without the mmap lock or its VMA lock held by "
            f"{k.current.comm}/{k.current.pid}",
            where,
        )


def lock_vma_under_rcu(mm: MmStruct, addr: int) -> Vma | None:
    """``lock_vma_under_rcu``: read-lock the VMA containing ``addr`` without the mmap lock.

    Returns None (the caller falls back to ``mmap_read_lock`` + ``vma_lookup``) when there is
    no VMA, the VMA is write-locked or detached, the address is not inside it, or fault
    injection says so. Never sleeps.
    """
    k = mm.kernel
    _check_users(mm, _MMAP_LOCK_H + "lock_vma_under_rcu")
    k.rcu.read_lock()
    got: Vma | None = None
    try:
        vma = mm.mm_mt.load(addr)
        if not (
            vma is None
            or vma.detached
            or vma_is_write_locked(vma)
            or k.fault_inject.should_fail("lock_vma_under_rcu")
        ):
            t = k.current
            k.lockdep.acquire(
                t, vma.vm_lock, read=True, trylock=True, where=_MMAP_LOCK_H + "vma_start_read"
            )
            vma.readers.append(t)
            if vma.vm_start <= addr < vma.vm_end:
                got = vma
            else:
                vma.readers.remove(t)
                k.lockdep.release(t, vma.vm_lock, _MMAP_LOCK_H + "vma_end_read")
    finally:
        k.rcu.read_unlock()
    if got is None:
        k.counters.vma_lock_abort += 1
        if k._sched is not None:
            # The caller falls back to (or retries with) the mmap lock: a yield.
            k._sched.point(SwitchKind.TRYLOCK_FAIL, f"lock_vma_under_rcu {addr:#x}")
        return None
    k.counters.vma_lock_success += 1
    return got


def vma_end_read(vma: Vma) -> None:
    """``vma_end_read``: drop the per-VMA read lock the current task holds."""
    k = vma.vm_mm.kernel
    t = k.current
    if t not in vma.readers:
        k.report(
            SplatKind.LOCKDEP,
            "unlock-balance",
            f"vma_end_read on {vma!r} by {t.comm}/{t.pid}, which does not hold its VMA lock",
            _MMAP_LOCK_H + "vma_end_read",
            title="WARNING: bad unlock balance detected!",
        )
        return
    vma.readers.remove(t)
    k.lockdep.release(t, vma.vm_lock, _MMAP_LOCK_H + "vma_end_read")
    s = k._sched
    if s is not None:
        if not vma.readers:
            s.wake_up_var(vma)
        s.point(SwitchKind.UNLOCK, f"vma_end_read {vma!r}")


def vma_lookup(mm: MmStruct, addr: int) -> Vma | None:
    """``vma_lookup`` (include/linux/mm.h): the VMA containing ``addr``; needs the mmap lock
    (lockdep ``mmap_assert_locked`` in the maple-tree walk)."""
    mmap_assert_locked(mm, "include/linux/mm.h:vma_lookup")
    return mm.mm_mt.load(addr)


def find_vma(mm: MmStruct, addr: int) -> Vma | None:
    """``find_vma`` (mm/mmap.c): the first VMA ending above ``addr``; needs the mmap lock."""
    mmap_assert_locked(mm, "mm/mmap.c:find_vma")
    return mm.mm_mt.find(addr)
