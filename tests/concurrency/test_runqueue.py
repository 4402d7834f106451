"""The run queue: ``Kernel.concurrently``, blocking, waking, deadlock and livelock reports
(src/safemm/model/runqueue.py)."""

from __future__ import annotations

import errno

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Deadlock,
    Kernel,
    KernelError,
    Livelock,
)
from safemm.model.locking import Mutex
from safemm.model.process import Process

ANON = MAP_PRIVATE | MAP_ANONYMOUS
RW = PROT_READ | PROT_WRITE


def test_concurrently_returns_each_result_or_kernel_error_in_order() -> None:
    k = Kernel()
    p = k.spawn()
    t = p.spawn_thread()

    def maps() -> int:
        return p.mmap(None, PAGE_SIZE, RW, ANON)

    def bad() -> None:
        t.munmap(1, PAGE_SIZE)  # unaligned: EINVAL

    res = k.concurrently(maps, bad, lambda: 7)
    assert isinstance(res[0], int) and res[0] % PAGE_SIZE == 0
    assert isinstance(res[1], KernelError) and res[1].errno == errno.EINVAL
    assert res[2] == 7
    k.check_invariants()


def test_same_process_in_two_bodies_says_to_use_spawn_thread() -> None:
    k = Kernel()
    p = k.spawn()

    def body() -> None:
        for _ in range(5):
            p.mmap(None, PAGE_SIZE, RW, ANON)

    def runs() -> None:
        for seed in range(20):
            k.sched_policy = None
            k.seed = seed
            k.concurrently(body, body)

    with pytest.raises(RuntimeError, match=r"spawn_thread\(\)"):
        runs()


def _abba(k: Kernel, p: Process, q: Process) -> None:
    m1, m2 = Mutex("m1"), Mutex("m2")

    def body(proc: Process, x: Mutex, y: Mutex) -> None:
        with k.enter(proc.task, "test"):
            x.lock(k)
            try:
                y.lock(k)
                y.unlock(k)
            finally:
                x.unlock(k)

    k.concurrently(lambda: body(p, m1, m2), lambda: body(q, m2, m1))


def test_abba_deadlocks_in_some_schedules_and_lockdep_warns_in_all() -> None:
    deadlocks: list[Deadlock] = []
    finished = 0
    for seed in range(30):
        k = Kernel(seed=seed, panic_on_warn=False)
        p, q = k.spawn(), k.spawn()
        try:
            _abba(k, p, q)
            finished += 1
        except Deadlock as e:
            deadlocks.append(e)
        assert "lock-order" in [s.contract for s in k.splats]
        # the unwinding released every lock
        assert not p.task.held_locks and not q.task.held_locks
    assert finished and deadlocks
    for dl in deadlocks:
        assert dl.contract == "deadlock"
        text = str(dl)
        assert "proc1:1 [body 0] blocked, waiting for mutex m2, held by proc2:2" in text
        assert "proc2:2 [body 1] blocked, waiting for mutex m1, held by proc1:1" in text
        assert "holds: m1" in text and "holds: m2" in text


def test_spinning_on_trylock_is_a_livelock_report() -> None:
    k = Kernel()
    k.max_steps = 500
    p, q = k.spawn(), k.spawn()
    m1, m2 = Mutex("m1"), Mutex("m2")

    def body(proc: Process, x: Mutex, y: Mutex) -> None:
        with k.enter(proc.task, "test"):
            x.lock(k)
            try:
                while not y.trylock(k):
                    pass
                y.unlock(k)
            finally:
                x.unlock(k)

    caught: list[Livelock] = []
    for seed in range(10):
        k.seed, k.sched_policy = seed, None
        try:
            k.concurrently(lambda: body(p, m1, m2), lambda: body(q, m2, m1))
        except Livelock as e:
            caught.append(e)
            break
    assert caught and caught[0].contract == "livelock"
    assert "soft lockup" in str(caught[0])
