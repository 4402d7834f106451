"""Locks and execution context: include/linux/mmap_lock.h + mm/mmap_lock.c (mmap_lock,
per-VMA locks, ``lock_vma_under_rcu``), kernel/locking/{rwsem,mutex,spinlock}.c semantics,
kernel/locking/lockdep.c reports, kernel/sched/core.c ``__might_resched``/``__schedule_bug``,
kernel/panic.c ``__warn`` (panic_on_warn) and lib/bug.c."""

from __future__ import annotations

import pytest

from safemm.model import Kernel, Process
from safemm.model.locking import Mutex, RwSemaphore, SpinLock
from safemm.model.mman import PROT_READ
from safemm.model.mmap_lock import (
    lock_vma_under_rcu,
    mmap_read_lock,
    mmap_read_trylock,
    mmap_read_unlock,
    mmap_write_downgrade,
    mmap_write_lock,
    mmap_write_trylock,
    mmap_write_unlock,
    vma_end_read,
    vma_is_write_locked,
    vma_start_write,
)
from safemm.model.page_alloc import GFP_KERNEL
from safemm.model.sched import schedule
from safemm.model.shrinker import ShrinkControl, Shrinker
from safemm.testing import SplatKind, expect_splat

from .strategies import ANON, RW, P, in_task, locked, vma_at

# -- the mmap lock --------------------------------------------------------------------------------


def test_mmap_lock_holders(k: Kernel, p: Process) -> None:
    """``mmap_read_lock`` may be shared; ``mmap_write_lock`` is exclusive; trylocks fail
    against a holder of the other kind."""
    q = k.spawn("q")
    mm = p.mm
    lk = mm.mmap_lock
    with in_task(p):
        mmap_read_lock(mm)
        with in_task(q):
            assert mmap_read_trylock(mm)
            assert lk.readers == [p.task, q.task]
            assert not mmap_write_trylock(mm)
            mmap_read_unlock(mm)
        mmap_read_unlock(mm)
        mmap_write_lock(mm)
        assert lk.writer is p.task
        with in_task(q):
            assert not mmap_read_trylock(mm)
        mmap_write_unlock(mm)
    assert mm.mmap_lock.writer is None and not mm.mmap_lock.readers
    assert k.counters.mmap_read_trylock_failed == 1
    assert k.counters.mmap_write_trylock_failed == 1


def test_read_trylock_fails_with_a_queued_writer(k: Kernel, p: Process) -> None:
    """rwsem: a read trylock fails while a writer waits (``RwSemaphore.queued_writers``),
    even though only readers hold the lock."""
    mm = p.mm
    with in_task(p):
        mmap_read_lock(mm)
        mm.mmap_lock.queued_writers = 1
        try:
            assert not mmap_read_trylock(mm)
        finally:
            mm.mmap_lock.queued_writers = 0
        assert mmap_read_trylock(mm)
        mmap_read_unlock(mm)
        mmap_read_unlock(mm)


def test_recursive_read_with_queued_writer_deadlocks(p: Process) -> None:
    """Taking the read lock twice in one task deadlocks against a queued writer: reported as
    :class:`Deadlock` with a splat instead of hanging (after lockdep's "possible recursive
    locking detected", which alone raises under panic_on_warn)."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    mm = p.mm
    with in_task(p):
        mmap_read_lock(mm)
        mm.mmap_lock.queued_writers = 1
        try:
            with expect_splat("deadlock", SplatKind.DEADLOCK):
                mmap_read_lock(mm)
        finally:
            mm.mmap_lock.queued_writers = 0
            mmap_read_unlock(mm)
    assert any("blocked forever" in d for d in k.dmesg)
    assert any("possible recursive locking detected" in d for d in k.dmesg)


def test_write_lock_while_holding_read_deadlocks(p: Process) -> None:
    """``mmap_write_lock`` by a task holding the read lock waits for itself forever."""
    k = Kernel(panic_on_warn=False)
    q = k.spawn()
    with in_task(q):
        mmap_read_lock(q.mm)
        try:
            with expect_splat("deadlock", SplatKind.DEADLOCK):
                mmap_write_lock(q.mm)
        finally:
            mmap_read_unlock(q.mm)


def test_downgrade_ends_vma_write_locks(k: Kernel, p: Process) -> None:
    """``mmap_write_downgrade`` → ``vma_end_write_all``: every VMA write lock ends (the
    ``mm_lock_seq`` epoch moves on); the task keeps the read lock."""
    a = p.mmap(None, P, RW, ANON)
    v = vma_at(p, a)
    mm = p.mm
    with in_task(p):
        mmap_write_lock(mm)
        vma_start_write(v)
        assert vma_is_write_locked(v)
        mmap_write_downgrade(mm)
        assert not vma_is_write_locked(v)
        assert mm.mmap_lock.readers == [p.task] and mm.mmap_lock.writer is None
        mmap_read_unlock(mm)


def test_lock_vma_under_rcu(k: Kernel, p: Process) -> None:
    """``lock_vma_under_rcu``: read-locks the VMA containing addr; NULL for no VMA, a
    write-locked VMA (another task holds the mmap write lock and ``vma_start_write``'d it) or
    a detached one."""
    a = p.mmap(None, 2 * P, RW, ANON)
    v = vma_at(p, a)
    q = k.spawn("q")
    mm = p.mm
    with in_task(q):
        got = lock_vma_under_rcu(mm, a + P)
        assert got is v and v.readers == [q.task]
        vma_end_read(v)
        assert lock_vma_under_rcu(mm, a + 2 * P) is None
    with in_task(p):
        mmap_write_lock(mm)
        vma_start_write(v)
        with in_task(q):
            assert lock_vma_under_rcu(mm, a) is None
        mmap_write_unlock(mm)
    with in_task(q):
        v.detached = True  # as between vms_gather_munmap_vmas and the tree update
        try:
            assert lock_vma_under_rcu(mm, a) is None
        finally:
            v.detached = False
        got = lock_vma_under_rcu(mm, a)  # the write epoch ended with mmap_write_unlock
        assert got is v
        vma_end_read(v)
    assert k.counters.vma_lock_abort == 3


def test_vma_start_write_waits_for_its_own_vma_reader(k: Kernel, p: Process) -> None:
    """``vma_start_write`` waits for VMA readers to drain: a task holding the VMA read lock and
    then write-locking it waits for itself — a Deadlock report, not a hang."""
    a = p.mmap(None, P, RW, ANON)
    with in_task(p):
        v = lock_vma_under_rcu(p.mm, a)
        assert v is not None
        mmap_write_lock(p.mm)
        try:
            with expect_splat("deadlock", SplatKind.DEADLOCK):
                vma_start_write(v)
        finally:
            mmap_write_unlock(p.mm)
            vma_end_read(v)


def test_vma_start_write_without_write_lock_warns(k: Kernel, p: Process) -> None:
    """``vma_start_write`` → ``mmap_assert_write_locked``."""
    a = p.mmap(None, P, RW, ANON)
    with expect_splat("mmap-write-lock-held", SplatKind.WARNING), locked(p, write=False):
        vma_start_write(vma_at(p, a))


# -- lockdep --------------------------------------------------------------------------------------


def test_circular_dependency_report() -> None:
    """lockdep: A→B recorded, then B→A: "possible circular locking dependency detected"."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    a, b = Mutex("lock_a"), Mutex("lock_b")
    with in_task(p):
        a.lock(k)
        b.lock(k)
        b.unlock(k)
        a.unlock(k)
        b.lock(k)
        a.lock(k)
        a.unlock(k)
        b.unlock(k)
    reports = [d for d in k.dmesg if "circular locking dependency" in d]
    assert len(reports) == 1
    assert "lock_a" in reports[0] and "lock_b" in reports[0]
    assert k.splats[-1].contract == "lock-order"


def test_circular_dependency_raises_under_panic_on_warn(k: Kernel, p: Process) -> None:
    """With ``panic_on_warn`` the lockdep report raises :class:`KernelWarning` at the
    acquisition that closes the cycle (before the lock is taken)."""
    a, b = Mutex("lock_a"), Mutex("lock_b")
    with in_task(p):
        a.lock(k)
        b.lock(k)
        b.unlock(k)
        a.unlock(k)
        b.lock(k)
        with expect_splat("lock-order", SplatKind.LOCKDEP):
            a.lock(k)
        b.unlock(k)
    assert a.owner is None


def test_circular_dependency_against_fs_reclaim() -> None:
    """A lock held around a GFP_KERNEL allocation (``might_alloc`` records lock → fs_reclaim)
    and taken in a shrinker (fs_reclaim → lock): lockdep reports the cycle — the allocation
    could recurse into the shrinker and deadlock (H5)."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    m = Mutex("driver_mutex")

    def scan(sc: ShrinkControl) -> int:
        m.lock(k)
        m.unlock(k)
        return 0

    k.register_shrinker(Shrinker("test", lambda sc: 1, scan))
    with in_task(p):
        m.lock(k)
        pg = k.pages.alloc_page(int(GFP_KERNEL))
        m.unlock(k)
        k.pages.put_page(pg)
    k.shrink()
    reports = [d for d in k.dmesg if "circular locking dependency" in d]
    assert len(reports) == 1
    assert "fs_reclaim" in reports[0] and "driver_mutex" in reports[0]


def test_lock_held_on_return_to_user(p: Process) -> None:
    """``lockdep_sys_exit``: returning to user space with a lock held is reported."""
    k = Kernel(panic_on_warn=False)
    q = k.spawn()
    m = Mutex("leaked")
    with in_task(q):
        m.lock(k)
    assert "lock held when returning to user space" in k.dmesg[-1]
    with in_task(q):
        m.unlock(k)


def test_unlock_balance(k: Kernel, p: Process) -> None:
    """Releasing a lock one does not hold is a lockdep report."""
    m = Mutex("m")
    with expect_splat("unlock-balance", SplatKind.LOCKDEP), in_task(p):
        m.unlock(k)
    rw = RwSemaphore("sem")
    with expect_splat("unlock-balance", SplatKind.LOCKDEP), in_task(p):
        rw.up_read(k, "test")


def test_mutex_self_deadlock(k: Kernel, p: Process) -> None:
    """``mutex_lock`` of a mutex the task already holds: recursive locking, then a
    Deadlock (never a hang). The recursive-locking WARN comes first under panic_on_warn."""
    k2 = Kernel(panic_on_warn=False)
    q = k2.spawn()
    m = Mutex("m")
    with in_task(q):
        m.lock(k2)
        try:
            with expect_splat("deadlock", SplatKind.DEADLOCK):
                m.lock(k2)
        finally:
            m.unlock(k2)
    assert any("recursive locking" in d for d in k2.dmesg)


# -- atomic context -------------------------------------------------------------------------------


def test_might_sleep_under_a_spinlock(k: Kernel, p: Process) -> None:
    """``__might_resched``: a sleeping lock under a spinlock → "BUG: sleeping function called
    from invalid context" (a warning-class report: raises under panic_on_warn)."""
    s, m = SpinLock("s"), Mutex("m")
    with in_task(p):
        s.lock(k)
        try:
            with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP):
                m.lock(k)
        finally:
            s.unlock(k)
    assert "BUG: sleeping function called from invalid context" in k.dmesg[-1]
    assert "preempt_count: 1" in k.dmesg[-1]


def test_might_sleep_under_rcu(k: Kernel, p: Process) -> None:
    """``__might_resched``: inside ``rcu_read_lock`` too (RCU nest depth)."""
    with in_task(p):
        k.rcu.read_lock()
        try:
            with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP):
                mmap_read_lock(p.mm)
        finally:
            k.rcu.read_unlock()
    assert "RCU nest depth: 1" in k.dmesg[-1]


def test_gfp_kernel_allocation_under_spinlock(k: Kernel, p: Process) -> None:
    """``might_alloc``: a GFP_KERNEL allocation may sleep (direct reclaim)."""
    s = SpinLock("s")
    with in_task(p):
        s.lock(k)
        try:
            with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP):
                k.pages.alloc_page(int(GFP_KERNEL))
        finally:
            s.unlock(k)


def test_panic_on_warn_off_only_logs() -> None:
    """kernel/panic.c ``__warn``: without panic_on_warn the report goes to dmesg and the
    call carries on."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    s, m = SpinLock("s"), Mutex("m")
    with in_task(p):
        s.lock(k)
        m.lock(k)
        m.unlock(k)
        s.unlock(k)
    assert any("sleeping function called from invalid context" in d for d in k.dmesg)


def test_kernel_bug_is_always_raised() -> None:
    """``BUG()`` oopses whatever panic_on_warn says."""
    from safemm.model.printk import SplatKind

    for pow_ in (True, False):
        k = Kernel(panic_on_warn=pow_)
        with expect_splat("page-refcount", SplatKind.BUG) as caught:
            k.report(SplatKind.BUG, "page-refcount", "test", "test.c:1")
        assert "kernel BUG at test.c:1!" in str(caught.error)


def test_scheduling_while_atomic(p: Process) -> None:
    """``__schedule_bug``: actually sleeping under a spinlock → "BUG: scheduling while
    atomic"; the kernel resets the preempt count and carries on."""
    k = Kernel(panic_on_warn=False)
    q = k.spawn()
    s = SpinLock("s")
    with in_task(q):
        s.lock(k)
        schedule(k, "test:msleep")
        s.unlock(k)
    assert any("BUG: scheduling while atomic" in d for d in k.dmesg)
    assert q.task.preempt_count == 0


def test_spin_trylock_and_fault_injection(k: Kernel, p: Process) -> None:
    """Trylocks fail when held, and when fault injection says so ("trylock" site)."""
    s = SpinLock("s")
    q = k.spawn("q")
    with in_task(p):
        assert s.trylock(k)
        with in_task(q):
            assert not s.trylock(k)
        s.unlock(k)
        k.fault_inject.fail_next("trylock")
        assert not s.trylock(k)
        assert s.trylock(k)
        s.unlock(k)
        k.fault_inject.fail_next("trylock")
        assert not mmap_read_trylock(p.mm)
    assert k.fault_inject.injected["trylock"] == 2


def test_syscalls_leave_no_locks(k: Kernel, p: Process) -> None:
    """Every syscall drops the locks it took, on success and on failure."""
    from safemm.model import KernelError

    a = p.mmap(None, 2 * P, RW, ANON)
    p.mprotect(a, P, PROT_READ)
    with pytest.raises(KernelError):
        p.mprotect(a + 1, P, PROT_READ)
    with pytest.raises(KernelError):
        p.munmap(a + 1, P)
    p.munmap(a, P)
    assert not p.task.held_locks
    assert p.mm.mmap_lock.writer is None and not p.mm.mmap_lock.readers
    k.check_invariants()
