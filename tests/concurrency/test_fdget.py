"""A syscall on a descriptor pins its file (``fdget``, fs/file.c): a sibling thread's
``close`` of the same descriptor while the syscall sleeps cannot release the file under it —
``->release`` runs only after the syscall drops its reference."""

from __future__ import annotations

from typing_extensions import override

from safemm import Kernel, KernelError
from safemm.explore import explore
from safemm.fs import File, FileOperations
from safemm.sync import Mutex

from .races import small_kernel


class State:
    """Per-open state. Invariant: ``released`` is set once, by ``->release``."""

    def __init__(self) -> None:
        self.released = False


class SleepyDriver(FileOperations[State]):
    """An ioctl that sleeps (a mutex: a switch point) and then uses its file's state."""

    def __init__(self) -> None:
        super().__init__(State, "sleepy")
        self.mutex = Mutex("sleepy.mutex")
        self.used_after_release = 0

    @override
    def open(self, file: File[State]) -> None:
        file.private_data = State()

    @override
    def ioctl(self, file: File[State], cmd: int, arg: object) -> object:
        state = file.private_data
        assert state is not None
        with self.mutex.lock():
            pass
        if state.released:
            self.used_after_release += 1
        return 0

    @override
    def release(self, file: File[State]) -> None:
        state = file.private_data
        assert state is not None
        state.released = True


def test_close_during_ioctl_releases_only_after_it() -> None:
    drivers: list[SleepyDriver] = []

    def scenario(k: Kernel) -> None:
        d = SleepyDriver()
        drivers.append(d)
        k.register_device("/dev/sleepy", d)
        p = k.spawn()
        t = p.spawn_thread()
        fd = p.open("/dev/sleepy")
        res = k.concurrently(lambda: p.ioctl(fd, 1), lambda: t.close(fd))
        assert all(r is None or r == 0 or isinstance(r, KernelError) for r in res), res
        assert d.used_after_release == 0
        p.exit()
        t.exit()
        k.check_invariants()

    ex = explore(scenario, strategy="dfs", preemptions=2, kernel_factory=small_kernel)
    assert ex.exhausted and ex.ok, ex.report()
    assert len(drivers) == ex.schedules_run > 1
