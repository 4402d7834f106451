"""The mmap lock and per-VMA locks between threads of one process: ``vm_insert_page``'s
``BUG_ON(mmap_read_trylock())`` (mm/memory.c) depends on the schedule; ``lock_vma_under_rcu``
(mm/mmap_lock.c) fails while a VMA is write-locked or a ``vma_start_write`` waits for its
readers; ``vma_start_write`` sleeps until the readers leave; the fault falls back to the mmap
lock (arch/x86/mm/fault.c ``do_user_addr_fault``)."""

from __future__ import annotations

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelBug,
    SegmentationFault,
)
from safemm.model.errors import SEGV_MAPERR
from safemm.model.memory import vm_insert_page
from safemm.model.mm_types import Vma
from safemm.model.mmap_lock import (
    lock_vma_under_rcu,
    mmap_read_lock,
    mmap_read_unlock,
    mmap_write_lock,
    mmap_write_unlock,
    vma_end_read,
    vma_lookup,
    vma_start_write,
)
from safemm.model.page_alloc import GFP_KERNEL, PageKind
from safemm.model.process import Process
from safemm.model.runqueue import RandomPolicy, SwitchKind
from safemm.model.vm_flags import VM_MIXEDMAP
from tests.model.strategies import TestDevice

from .scripted import Priority, yield_to

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def _vma(p: Process, addr: int) -> Vma:
    v = p.mm.mm_mt.load(addr)
    assert v is not None
    return v


# ------------------------------------------------------------------------ vm_insert_page


class _InsertRace:
    """A driver thread inserting a page under the mmap read lock into a VMA without
    VM_MIXEDMAP (raw model calls), and a sibling thread calling mmap(2), which takes the
    mmap write lock."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.p = k.spawn("app")
        self.sibling = self.p.spawn_thread()
        TestDevice(k, "/dev/plain", insert=False)
        fd = self.p.open("/dev/plain")
        self.addr = self.p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
        self.page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)

    def insert(self) -> None:
        k, mm = self.k, self.p.mm
        with k.enter(self.p.task, "driver ioctl"):
            mmap_read_lock(mm)
            try:
                vma = vma_lookup(mm, self.addr)
                assert vma is not None
                vm_insert_page(vma, self.addr, self.page)
            finally:
                mmap_read_unlock(mm)

    def map_more(self) -> int:
        return self.sibling.mmap(None, P, RW, ANON)

    def run(self) -> list[object]:
        return self.k.concurrently(self.insert, self.map_more)


def test_insert_bugs_when_no_writer_waits() -> None:
    """Strict off (exactly Linux), the driver runs first: the read trylock succeeds and
    ``BUG_ON(mmap_read_trylock())`` fires; its read lock is leaked, as in the kernel."""
    k = Kernel(strict=False, panic_on_warn=False)
    r = _InsertRace(k)
    k.sched_policy = Priority(0, 1)
    with pytest.raises(KernelBug) as ei:
        r.run()
    assert ei.value.contract == "insert-needs-mixedmap"
    assert [s.contract for s in k.splats] == ["insert-needs-mixedmap"]
    lock = r.p.mm.mmap_lock
    assert lock.readers == [r.p.task] and not lock.waiters  # the trylock's, never released
    assert not _vma(r.p, r.addr).vm_flags & VM_MIXEDMAP


def test_insert_sets_the_flag_silently_when_a_writer_is_queued() -> None:
    """Strict off: the sibling's mmap_write_lock queues behind the driver's read lock just
    before the trylock, so the trylock fails, the BUG_ON passes, and VM_MIXEDMAP is written
    under the read lock — only vm_flags_set's lockdep assertion complains. The sibling's
    mmap then goes through."""
    k = Kernel(strict=False, panic_on_warn=False)
    r = _InsertRace(k)
    pol = Priority(0, 1)
    pol.at("mmap_read_trylock", 1, 0)
    k.sched_policy = pol
    res = r.run()
    assert res[0] is None and isinstance(res[1], int)
    assert [s.contract for s in k.splats] == ["mmap-write-lock-held"]
    assert _vma(r.p, r.addr).vm_flags & VM_MIXEDMAP
    assert r.p.mm.pgtables.lookup(r.addr // P) is not None
    sched = pol.sched
    assert sched is not None
    blocked = [e for e in sched.trace if e.kind is SwitchKind.BLOCK]
    assert [(e.context, "mmap_lock for write" in e.label) for e in blocked] == [(1, True)]
    k.check_invariants()


def test_insert_outcome_depends_on_the_schedule() -> None:
    """Under the default seeded scheduler, some seeds reach the BUG and others the silent
    flag write — the kernel's nondeterminism, reproduced per seed."""
    outcomes: set[str] = set()
    for seed in range(40):
        k = Kernel(strict=False, panic_on_warn=False, seed=seed)
        r = _InsertRace(k)
        try:
            r.run()
        except KernelBug:
            outcomes.add("bug")
            assert [s.contract for s in k.splats] == ["insert-needs-mixedmap"]
        else:
            outcomes.add("silent")
            assert _vma(r.p, r.addr).vm_flags & VM_MIXEDMAP
        if len(outcomes) == 2:
            break
    assert outcomes == {"bug", "silent"}


def test_flag_write_under_the_read_lock_stamps_the_vma_like_the_kernel() -> None:
    """``mm_lock_seq`` is a seqcount, odd only while the mmap lock is write-held
    (``mm_lock_seqcount_begin``/``_end``). The silent ``vm_flags_set`` under the read lock
    stamps the VMA with the even sequence, so — while another reader keeps the queued writer
    out — ``vma_start_read`` fails on that VMA; the writer's epoch then makes the stamp
    stale."""
    k = Kernel(strict=False, panic_on_warn=False)
    r = _InsertRace(k)
    third = r.p.spawn_thread()
    mm = r.p.mm
    pol = Priority(2, 0, 1)  # the other reader first
    pol.at("mmap_read_trylock", 1, 0, 2)  # the writer queues just before the trylock
    k.sched_policy = pol

    def other_reader() -> object:
        with k.enter(third.task, "reader"):
            mmap_read_lock(mm)
            yield_to(k, pol, 0, 1, 2)  # the driver reads in; the writer queues
            yield_to(k, pol, 0, 1, 2)  # the driver inserts and leaves
            v = lock_vma_under_rcu(mm, r.addr)
            mmap_read_unlock(mm)  # the writer's turn
            return v

    res = k.concurrently(r.insert, r.map_more, other_reader)
    assert res[0] is None and isinstance(res[1], int)
    assert res[2] is None  # vm_lock_seq == mm_lock_seq (even): vma_start_read fails
    assert [s.contract for s in k.splats] == ["mmap-write-lock-held"]
    with k.enter(r.p.task, "probe"):
        v = lock_vma_under_rcu(mm, r.addr)  # a write epoch later: the stamp is stale
        assert v is not None
        vma_end_read(v)


@pytest.mark.parametrize("seed", range(8))
def test_strict_mode_reports_the_insert_in_every_schedule(seed: int) -> None:
    """Strict mode: insert-needs-mixedmap is a BUG whatever the schedule, writer queued or
    not."""
    k = Kernel(seed=seed)
    r = _InsertRace(k)
    with pytest.raises(KernelBug) as ei:
        r.run()
    assert ei.value.contract == "insert-needs-mixedmap"
    assert "while holding the mmap read lock" in str(ei.value)
    assert [s.contract for s in k.splats] == ["insert-needs-mixedmap"]


# ------------------------------------------------------------------------ per-VMA locks


def _two_threads(k: Kernel) -> tuple[Process, Process, int]:
    p = k.spawn("app")
    t = p.spawn_thread()
    a = p.mmap(None, 2 * P, RW, ANON)
    p.write(a + P, b"keep")
    return p, t, a


def test_lock_vma_under_rcu_fails_while_the_vma_is_write_locked() -> None:
    """``vma_start_read`` fails while ``vm_lock_seq`` matches the mm's write epoch; after
    ``mmap_write_unlock`` (``vma_end_write_all``) it succeeds again."""
    k = Kernel()
    pol = Priority()
    k.sched_policy = pol
    p, t, a = _two_threads(k)
    got: list[bool] = []

    def writer() -> None:
        with k.enter(p.task, "writer"):
            mmap_write_lock(p.mm)
            vma_start_write(_vma(p, a))
            yield_to(k, pol, 1, 0)
            mmap_write_unlock(p.mm)

    def reader() -> None:
        with k.enter(t.task, "reader"):
            for _ in range(2):
                v = lock_vma_under_rcu(t.mm, a)  # a failure yields
                got.append(v is not None)
                if v is not None:
                    vma_end_read(v)

    k.concurrently(writer, reader)
    assert got == [False, True]
    assert k.counters.vma_lock_abort == 1 and k.dmesg == []


def test_vma_start_write_waits_for_readers_and_new_readers_fail_meanwhile() -> None:
    """``__vma_start_write``: the writer marks the VMA (new ``lock_vma_under_rcu`` calls
    fail from then on) and sleeps until the readers inside have left."""
    k = Kernel()
    pol = Priority()
    k.sched_policy = pol
    p, t, a = _two_threads(k)
    u = p.spawn_thread()
    log: list[str] = []

    def reader() -> None:
        with k.enter(t.task, "reader"):
            v = lock_vma_under_rcu(t.mm, a)
            assert v is not None
            log.append("t in")
            yield_to(k, pol, 1, 2, 0)  # the writer waits; the late reader fails
            log.append("t out")
            vma_end_read(v)

    def writer() -> None:
        with k.enter(p.task, "writer"):
            mmap_write_lock(p.mm)
            vma_start_write(_vma(p, a))
            log.append("p write-locked the VMA")
            mmap_write_unlock(p.mm)

    def late_reader() -> object:
        with k.enter(u.task, "late reader"):
            return lock_vma_under_rcu(u.mm, a)

    res = k.concurrently(reader, writer, late_reader)
    assert res[2] is None
    assert log == ["t in", "t out", "p write-locked the VMA"]
    sched = pol.sched
    assert sched is not None
    events = [(e.context, e.kind) for e in sched.trace]
    order = [
        events.index((1, SwitchKind.BLOCK)),  # the writer sleeps
        events.index((2, SwitchKind.TRYLOCK_FAIL)),  # the late reader fails
        events.index((0, SwitchKind.UNLOCK)),  # vma_end_read wakes the writer
        events.index((1, SwitchKind.UNLOCK)),  # mmap_write_unlock
    ]
    assert order == sorted(order)
    assert k.dmesg == []


def test_munmap_waits_for_a_fault_in_progress() -> None:
    """A thread faults under the per-VMA lock while a sibling munmaps the VMA: munmap's
    ``vma_start_write`` sleeps until the fault's ``vma_end_read``; the access completes,
    then the unmap."""
    k = Kernel()
    pol = Priority()
    pol.at("rcu_read_unlock", 1, 0)  # inside lock_vma_under_rcu: the fault holds the VMA
    pol.at("vma_end_read", 0, 1)  # the fault finishes before munmap goes on
    k.sched_policy = pol
    p, t, a = _two_threads(k)
    res = k.concurrently(lambda: p.write(a, b"x"), lambda: t.munmap(a, 2 * P))
    assert res == [None, None]
    sched = pol.sched
    assert sched is not None
    kinds = [(e.context, e.kind, e.label) for e in sched.trace]
    waited = next(i for i, (c, kd, lb) in enumerate(kinds) if c == 1 and kd is SwitchKind.BLOCK)
    assert "per-VMA readers" in kinds[waited][2]
    left = next(i for i, (c, kd, lb) in enumerate(kinds) if lb.startswith("vma_end_read"))
    assert waited < left
    assert p.mm.mm_mt.load(a) is None
    assert k.counters.vma_lock_success >= 1 and k.dmesg == []
    k.check_invariants()


def test_access_retried_after_a_racing_munmap_is_sigsegv() -> None:
    """The same race with munmap going on as soon as the fault leaves the VMA: the access is
    retried, finds no PTE and no VMA (``lock_vma_under_rcu`` fails, the mmap-lock fallback
    finds nothing) — SIGSEGV with SEGV_MAPERR, as on Linux."""
    k = Kernel()
    pol = Priority()
    pol.at("rcu_read_unlock", 1, 0)
    k.sched_policy = pol
    p, t, a = _two_threads(k)

    def access() -> object:
        try:
            p.write(a, b"x")
        except SegmentationFault as e:
            return e
        return None

    res = k.concurrently(access, lambda: t.munmap(a, 2 * P))
    assert isinstance(res[0], SegmentationFault) and res[0].code == SEGV_MAPERR
    assert k.counters.vma_lock_abort >= 1
    k.check_invariants()


def test_fault_falls_back_to_the_mmap_lock_while_the_vma_is_write_locked() -> None:
    """``do_user_addr_fault``: ``lock_vma_under_rcu`` fails on the write-locked VMA, so the
    fault takes ``mmap_read_lock`` — and sleeps there until the writer is done."""
    k = Kernel()
    pol = Priority(1, 0)  # the writer first
    k.sched_policy = pol
    p, t, a = _two_threads(k)
    reads = k.counters.mmap_read_lock

    def writer() -> None:
        with k.enter(t.task, "writer"):
            mmap_write_lock(t.mm)
            vma_start_write(_vma(t, a))
            yield_to(k, pol, 0, 1)  # the fault's per-VMA attempt fails and yields back
            yield_to(k, pol, 0, 1)  # the fault sleeps on the mmap lock
            pol.prefer(1, 0)
            mmap_write_unlock(t.mm)

    res = k.concurrently(lambda: p.write(a, b"x"), writer)
    assert res == [None, None]
    assert p.read(a, 1) == b"x"
    assert k.counters.vma_lock_abort == 1 and k.counters.mmap_read_lock == reads + 1
    sched = pol.sched
    assert sched is not None
    blocked = [e for e in sched.trace if e.kind is SwitchKind.BLOCK]
    assert [e.context for e in blocked] == [0]
    assert "mmap_lock for read, held by writer" in blocked[0].label
    k.check_invariants()


def test_random_threads_mapping_faulting_and_unmapping_keep_invariants() -> None:
    """Threads mapping, touching and unmapping concurrently under many seeds: every run
    ends with the model's invariants intact and no report."""
    for seed in range(12):
        k = Kernel()
        k.sched_policy = RandomPolicy(seed)
        p = k.spawn("app")
        threads = [p, p.spawn_thread(), p.spawn_thread()]
        shared = p.mmap(None, 4 * P, RW, ANON)

        def work(th: Process, i: int, shared: int = shared) -> object:
            mine = th.mmap(None, 2 * P, RW, ANON)
            th.write(mine, bytes([i]))
            try:
                th.write(shared + i * P, b"s")
            except SegmentationFault:
                pass
            if i == 0:
                th.munmap(shared, 4 * P)
            th.mprotect(mine, P, PROT_READ)
            data = th.read(mine, 1)
            th.munmap(mine, 2 * P)
            return data

        res = k.concurrently(*[lambda th=th, i=i: work(th, i) for i, th in enumerate(threads)])
        assert res == [bytes([0]), bytes([1]), bytes([2])]
        assert k.dmesg == []
        k.check_invariants()
