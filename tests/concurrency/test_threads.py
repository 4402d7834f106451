"""Threads (``Process.spawn_thread``: ``clone(CLONE_VM|CLONE_FILES|CLONE_THREAD)``,
kernel/fork.c ``copy_mm``/``copy_files``; kernel/exit.c ``do_exit``), kernel threads (kswapd)
and the whole-run rules of ``Kernel.concurrently``: a failure unwinds every task, a
``KernelError`` is a result, the same seed replays the same schedule."""

from __future__ import annotations

import errno

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelBug,
    KernelError,
)
from safemm.model.locking import Mutex, RwSemaphore
from safemm.model.memory import vm_insert_page
from safemm.model.mmap_lock import mmap_read_lock, mmap_read_unlock, vma_lookup
from safemm.model.page_alloc import GFP_KERNEL, PageKind
from safemm.model.printk import SplatKind
from safemm.model.process import Process
from safemm.model.runqueue import SwitchKind
from safemm.model.sched import msleep
from safemm.model.shrinker import ShrinkControl, Shrinker
from tests.model.strategies import TestDevice

from .scripted import Priority, Recording, yield_to

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def test_thread_shares_mm_and_descriptors() -> None:
    """``copy_mm`` with CLONE_VM takes an ``mm_users`` reference (``mmget``); CLONE_FILES
    shares the table: a descriptor opened by one thread is usable by the other."""
    k = Kernel()
    TestDevice(k, "/dev/t", insert=False)
    p = k.spawn("app")
    users = p.mm.mm_users
    t = p.spawn_thread()
    assert t.mm is p.mm and p.mm.mm_users == users + 1
    assert t.files is p.files and p.files.count == 2 and t.tgid == p.pid != t.pid
    fd = p.open("/dev/t")
    a = t.mmap(None, P, PROT_READ, 0x01, fd)  # MAP_SHARED on the sibling's descriptor
    assert p.maps() == t.maps() and f"{a:x}" in p.maps()
    t.close(fd)
    with pytest.raises(KernelError) as ei:
        p.close(fd)
    assert ei.value.errno == errno.EBADF
    k.check_invariants()


def test_thread_exit_keeps_files_and_mm_until_the_last_one() -> None:
    """``do_exit``: ``exit_mm`` drops this task's ``mm_users``; ``exit_files`` drops its
    table reference — the last thread closes every descriptor (the files are released)
    and its ``mmput`` tears the address space down."""
    k = Kernel()
    TestDevice(k, "/dev/t", insert=False)
    p = k.spawn("app")
    t = p.spawn_thread()
    fd = p.open("/dev/t")
    a = p.mmap(None, P, RW, ANON)
    mm = p.mm
    p.exit()  # the group leader leaves first
    assert (mm.mm_users, mm.exited) == (1, False)
    assert t.fds[fd] is not None and len(k.open_files) == 1
    t.write(a, b"still here")
    assert t.read(a, 10) == b"still here"
    k.check_invariants()
    t.exit()
    assert (mm.mm_users, mm.exited) == (0, True)
    assert not k.open_files and not t.fds
    k.check_invariants()


def test_threads_exiting_concurrently_with_syscalls_keep_invariants() -> None:
    """Threads that map, write and exit at once, under many schedules: whoever exits last
    closes the files and tears the mm down; the invariants hold after every run."""
    for seed in range(10):
        k = Kernel(seed=seed)
        TestDevice(k, "/dev/t", insert=False)
        p = k.spawn("app")
        ts = [p, p.spawn_thread(), p.spawn_thread()]
        fd = p.open("/dev/t")
        mm = p.mm

        def life(i: int, ts: list[Process] = ts) -> object:
            th = ts[i]
            a = th.mmap(None, P, RW, ANON)
            th.write(a, b"%d" % i)
            data = th.read(a, 1)
            th.exit()
            return data

        res = k.concurrently(*[lambda i=i: life(i) for i in range(3)])
        assert res == [b"0", b"1", b"2"]
        assert mm.exited and mm.mm_users == 0 and not k.open_files and not p.fds
        assert fd not in p.fds
        k.check_invariants()


def test_two_bodies_on_one_process_is_an_error_naming_spawn_thread() -> None:
    """A second body entering the kernel as a task that is already in a syscall in
    another body is a usage error that says to use spawn_thread()."""
    k = Kernel()
    pol = Priority(0, 1)
    pol.at("sys_mmap", 1, 0)  # the first body is inside mmap(2) when the second starts
    k.sched_policy = pol
    p = k.spawn("app")

    def mapper() -> object:
        return p.mmap(None, P, RW, ANON)

    with pytest.raises(RuntimeError, match=r"spawn_thread\(\)"):
        k.concurrently(mapper, mapper)
    assert not p.task.held_locks and p.mm.mmap_lock.writer is None
    k.check_invariants()


def test_two_shrinks_at_once_serialize_on_kswapd() -> None:
    """kswapd is one task: a second ``Kernel.shrink`` while the first is inside a
    shrinker's scan waits for it instead of failing."""
    k = Kernel()
    pol = Priority(0, 1)
    k.sched_policy = pol
    log: list[str] = []
    objects = [4]

    def count(sc: ShrinkControl) -> int:
        return objects[0]

    def scan(sc: ShrinkControl) -> int:
        log.append("scan in")
        pol.prefer(1, 0)
        msleep(k, 1)  # a shrinker that sleeps (legal: no lock held)
        log.append("scan out")
        freed = min(objects[0], sc.nr_to_scan)
        objects[0] -= freed
        return freed

    k.register_shrinker(Shrinker("test", count, scan))
    res = k.concurrently(k.shrink, k.shrink)
    assert res == [4, 0]
    assert log == ["scan in", "scan out"]  # the second found nothing to scan
    sched = pol.sched
    assert sched is not None
    waited = [e for e in sched.trace if e.kind is SwitchKind.BLOCK]
    assert [e.context for e in waited] == [1]
    assert "kswapd0:0 to finish its work" in waited[0].label
    assert k.dmesg == []


# ------------------------------------------------------------------------ whole-run rules


def test_kernel_bug_unwinds_the_other_tasks_and_propagates() -> None:
    """A BUG in one body ends the run: the others are unwound — their locks released,
    granted-but-unrun waits given back — with no further report; the BUG propagates."""
    k = Kernel()
    pol = Priority()
    k.sched_policy = pol
    TestDevice(k, "/dev/t", insert=False)
    p = k.spawn("app")
    holder, waiter, reader = p.spawn_thread(), p.spawn_thread(), p.spawn_thread()
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, 0x01, fd)  # no VM_MIXEDMAP
    m, sem = Mutex("m"), RwSemaphore("sem")
    page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)

    def hold() -> None:
        with k.enter(holder.task, "holder"):
            m.lock(k)
            sem.down_write(k, "tests:holder")
            try:
                yield_to(k, pol, 1, 2, 3, 0)
            finally:
                sem.up_write(k, "tests:holder")  # grants the queued reader while unwinding
                m.unlock(k)

    def wait_mutex() -> None:
        with k.enter(waiter.task, "waiter"):
            m.lock(k)
            m.unlock(k)

    def wait_read() -> None:
        with k.enter(reader.task, "reader"):
            sem.down_read(k, "tests:reader")
            sem.up_read(k, "tests:reader")

    def buggy_driver() -> None:
        with k.enter(p.task, "driver"):
            mmap_read_lock(p.mm)
            try:
                vma = vma_lookup(p.mm, a)
                assert vma is not None
                vm_insert_page(vma, a, page)  # strict: BUG without VM_MIXEDMAP
            finally:
                mmap_read_unlock(p.mm)

    with pytest.raises(KernelBug) as ei:
        k.concurrently(hold, wait_mutex, wait_read, buggy_driver)
    assert ei.value.contract == "insert-needs-mixedmap"
    assert [s.contract for s in k.splats] == ["insert-needs-mixedmap"] and len(k.dmesg) == 1
    assert m.owner is None and not m.waiters
    assert sem.writer is None and not sem.readers and not sem.waiters
    assert p.mm.mmap_lock.writer is None and not p.mm.mmap_lock.readers
    for th in (p, holder, waiter, reader):
        assert not th.task.held_locks
    k.check_invariants()


def test_a_caught_bug_still_ends_the_run() -> None:
    """A BUG is a panic: a body that catches the KernelBug finishes without switching
    again, the other body never runs, and the run ends with the BUG."""
    k = Kernel(strict=False)
    pol = Priority(0, 1)
    k.sched_policy = pol
    p, q = k.spawn("a"), k.spawn("b")
    log: list[str] = []

    def catcher() -> None:
        with k.enter(p.task, "catcher"):
            try:
                k.report(SplatKind.BUG, "fault-progress", "a test BUG", "tests:catcher")
            except KernelBug:
                log.append("caught")
            yield_to(k, pol, 1, 0)  # no switch any more: the run is ending
            log.append("catcher unwinds alone")

    def other() -> None:
        with k.enter(q.task, "other"):
            log.append("other ran")

    with pytest.raises(KernelBug):
        k.concurrently(catcher, other)
    assert log == ["caught", "catcher unwinds alone"]


def test_kernel_error_after_blocking_is_the_bodys_result() -> None:
    """An errno error is the body's result, not the run's end — also when it comes after
    the body slept on a lock."""
    k = Kernel()
    pol = Priority(1, 0)
    k.sched_policy = pol
    p = k.spawn("app")
    t = p.spawn_thread()
    a = p.mmap(None, P, RW, ANON)

    def unmap() -> None:
        t.munmap(a, P)

    def bad_mprotect() -> None:
        p.mprotect(a, P, PROT_READ)  # ENOMEM once the range is gone

    res = k.concurrently(bad_mprotect, unmap)
    assert res[1] is None
    err = res[0]
    assert isinstance(err, KernelError) and err.errno == errno.ENOMEM
    k.check_invariants()


def _traced_run(seed: int) -> list[str]:
    k = Kernel(seed=seed)
    rec = Recording(seed)
    k.sched_policy = rec
    p = k.spawn("app")
    ts = [p, p.spawn_thread(), p.spawn_thread()]

    def work(i: int) -> None:
        th = ts[i]
        a = th.mmap(None, 2 * P, RW, ANON)
        th.write(a + P, b"x")
        th.mprotect(a, P, PROT_READ)
        th.munmap(a, 2 * P)

    k.concurrently(*[lambda i=i: work(i) for i in range(3)])
    assert rec.sched is not None
    return [repr(e) for e in rec.sched.trace]


def test_same_seed_same_trace() -> None:
    """Determinism: the same seed replays the same schedule, switch point for switch
    point; other seeds take other schedules."""
    first = _traced_run(3)
    assert _traced_run(3) == first
    assert any("[preempted]" in line for line in first)
    assert any(_traced_run(s) != first for s in (4, 5, 6))
