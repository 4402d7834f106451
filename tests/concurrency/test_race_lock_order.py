"""Race 5: two ioctls take two driver mutexes in opposite order (ABBA).

``SWAP_AB`` takes ``a`` then ``b``; the broken driver's ``SWAP_BA`` takes ``b`` then ``a``. No
switch point is named: the explorer finds both failure kinds on its own. In a schedule where
one ioctl runs to completion before the other starts, nothing blocks, but lockdep
(``check_prev_add`` in kernel/locking/lockdep.c) has recorded ``b -> a`` and warns "possible
circular locking dependency" at the second ioctl's ``mutex_lock(b)`` — a dmesg-only warning
under ``panic_on_warn=0`` that ``fail_on_splat`` turns into a failure. In a schedule that
preempts the first ioctl between its two ``mutex_lock`` calls, both tasks block: the hung-task
report (kernel/hung_task.c) with both tasks, what each waits for and what each holds.

The correct driver takes the two mutexes in one order everywhere: every schedule within two
preemptions passes (an exhaustive ``dfs`` run).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from typing_extensions import override

from safemm import Deadlock, Kernel, KernelError, KernelWarning
from safemm.explore import explore
from safemm.fs import File, FileOperations
from safemm.sync import Mutex

from .races import assert_dfs_passes, assert_replays, small_kernel

SWAP_AB = 1
SWAP_BA = 2


class Pair:
    """Per-open state: nothing; the shared state is the driver's."""


class TwoLockDriver(FileOperations[Pair]):
    """``/dev/twolock``: two ioctls updating state guarded by both ``a`` and ``b``.

    Invariant (correct version): ``a`` is always taken before ``b``.
    """

    def __init__(self, *, broken: bool) -> None:
        super().__init__(Pair, "twolock")
        self.a = Mutex("twolock.a")
        self.b = Mutex("twolock.b")
        self.broken = broken
        self.swaps = 0

    @override
    def ioctl(self, file: File[Pair], cmd: int, arg: object) -> object:
        if cmd == SWAP_AB or (cmd == SWAP_BA and not self.broken):
            first, second = self.a, self.b
        elif cmd == SWAP_BA:
            first, second = self.b, self.a  # the bug: the opposite order
        else:
            raise KernelError(errno.ENOTTY, f"unknown ioctl {cmd}")
        with first.lock(), second.lock():
            self.swaps += 1
        return 0


def _scenario(*, broken: bool) -> Callable[[Kernel], None]:
    def scenario(k: Kernel) -> None:
        drv = TwoLockDriver(broken=broken)
        k.register_device("/dev/twolock", drv)
        p, q = k.spawn("p"), k.spawn("q")
        fp, fq = p.open("/dev/twolock"), q.open("/dev/twolock")
        k.concurrently(lambda: p.ioctl(fp, SWAP_AB), lambda: q.ioctl(fq, SWAP_BA))
        assert drv.swaps == 2

    return scenario


def test_abba_is_found_as_a_deadlock_and_as_a_lockdep_warning() -> None:
    broken = _scenario(broken=True)
    ex = explore(broken, strategy="pct", schedules=100, seed=0, kernel_factory=small_kernel)
    by_contract = {f.contract: f for f in ex.failures}
    assert set(by_contract) == {"lock-order", "deadlock"}, ex.report()
    warn, dead = by_contract["lock-order"], by_contract["deadlock"]
    assert isinstance(warn.error, KernelWarning)
    assert "possible circular locking dependency" in str(warn.error)
    assert warn.preemptions == 0  # one ioctl after the other: only lockdep sees it
    assert isinstance(dead.error, Deadlock)
    assert dead.preemptions == 1  # a preemption between the two mutex_lock calls
    assert "waiting for mutex twolock.b" in str(dead.error)
    assert "waiting for mutex twolock.a" in str(dead.error)
    assert "<-- preempted" in dead.trace
    # Every token replays its own failure.
    assert_replays(broken, warn)
    assert_replays(broken, dead)


def test_one_lock_order_passes_every_schedule_within_three_preemptions() -> None:
    assert_dfs_passes(_scenario(broken=False), 3)
