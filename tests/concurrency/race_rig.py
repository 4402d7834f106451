"""Set-up shared by the race tests (tests/concurrency/test_race*.py).

The explorer hands each schedule a fresh kernel; :func:`setup` builds the world of
tests/hazards/support.py's :class:`~tests.hazards.support.Rig` on it: a
:class:`~tests.hazards.support.HazardDriver` at ``/dev/<name>``, one process that opened it
and mapped :data:`~tests.hazards.support.NPAGES` read-only shared pages at
:data:`~tests.hazards.support.BASE`, and a sibling thread of that process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from safemm import MAP_FIXED, MAP_SHARED, PROT_READ, Kernel, Process
from safemm.fs import File
from tests.hazards.support import BASE, NPAGES, Buf, HazardDriver, P


@dataclass
class World:
    """What :func:`setup` built on the schedule's kernel."""

    kernel: Kernel
    driver: HazardDriver
    proc: Process
    thread: Process
    fd: int

    def ioctl(self, action: Callable[[File[Buf]], object]) -> object:
        """Run ``action`` as the driver's ioctl in the process's main task."""
        self.driver.action = action
        return self.proc.ioctl(self.fd, 0)


def setup(kernel: Kernel, driver: HazardDriver) -> World:
    """Register ``driver``, spawn a process that opens and maps it at BASE, and a thread."""
    kernel.register_device("/dev/" + driver.name, driver)
    proc = kernel.spawn("victim")
    fd = proc.open("/dev/" + driver.name)
    proc.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    return World(kernel, driver, proc, proc.spawn_thread(), fd)


#: RAM of the race tests' machines: small, so that making a kernel per schedule is cheap.
NR_PAGES = 128


def kernels(*, strict: bool = True, panic_on_warn: bool = True) -> Callable[[], Kernel]:
    """A ``kernel_factory`` for the explorer: a small machine per schedule."""

    def make() -> Kernel:
        return Kernel(strict=strict, panic_on_warn=panic_on_warn, nr_pages=NR_PAGES)

    return make
