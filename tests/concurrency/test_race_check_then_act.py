"""Race 6: check-then-act on driver state across a sleeping allocation.

``FILL`` gives the device one shared page, allocated on first use. The broken driver looks at
the slot under its mutex, drops the mutex to allocate (``alloc_page(GFP_KERNEL)`` may sleep —
``might_sleep`` in ``__alloc_pages`` is a switch point — and the driver must not hold a lock
the shrinker could want across it), then re-takes the mutex and installs the page without
looking again. Two ``FILL`` ioctls that both see the slot empty both allocate and both
install: the second overwrites the first's page, whose last handle is dropped without
``Page.free()`` — the model's leak report (``safemm: leak`` in dmesg at once; the scenario's
``check_invariants`` then fails with the invariant ``no-leaks``).

The correct driver re-checks the slot after re-taking the mutex and frees its own page when
another ioctl won (what ``binder_install_single_page`` does with ``page_to_install``): every
schedule within three preemptions passes (an exhaustive ``dfs`` run).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from typing_extensions import override

from safemm import InvariantError, Kernel, KernelError
from safemm.explore import explore
from safemm.fs import File, FileOperations
from safemm.page import Page
from safemm.sync import Mutex

from .races import assert_dfs_passes, assert_replays, small_kernel

FILL = 1


class Open:
    """Per-open state: nothing; the slot is the driver's."""


class SlotDriver(FileOperations[Open]):
    """``/dev/slot``: one page, allocated by the first ``FILL``.

    Invariant: ``slot`` changes only under ``mutex``; the driver owns the page in it and
    frees it in ``->release`` of the last file.
    """

    def __init__(self, *, broken: bool) -> None:
        super().__init__(Open, "slot")
        self.mutex = Mutex("slot.mutex")
        self.slot: Page | None = None
        self.broken = broken
        self.opened = 0

    @override
    def open(self, file: File[Open]) -> None:
        file.private_data = Open()
        with self.mutex.lock():
            self.opened += 1

    @override
    def ioctl(self, file: File[Open], cmd: int, arg: object) -> object:
        if cmd != FILL:
            raise KernelError(errno.ENOTTY, f"unknown ioctl {cmd}")
        with self.mutex.lock():
            if self.slot is not None:
                return 0
        page = Page.alloc_page()  # GFP_KERNEL: may sleep, so not under the mutex
        page.write(0, b"filled")
        lost = self._install(page)
        if lost is not None:
            lost.free()  # another FILL won the race: drop ours
        return 0

    def _install(self, page: Page) -> Page | None:
        """Put ``page`` in the slot; the page to free (ours, if the slot was filled while we
        allocated), or None."""
        with self.mutex.lock():
            if self.broken:
                self.slot = page  # the bug: the slot may have been filled meanwhile
                return None
            if self.slot is not None:
                return page
            self.slot = page
            return None

    @override
    def release(self, file: File[Open]) -> None:
        with self.mutex.lock():
            self.opened -= 1
            page = self.slot if self.opened == 0 else None
            if page is not None:
                self.slot = None
        if page is not None:
            page.free()


def _scenario(*, broken: bool) -> Callable[[Kernel], None]:
    def scenario(k: Kernel) -> None:
        drv = SlotDriver(broken=broken)
        k.register_device("/dev/slot", drv)
        p = k.spawn("filler")
        t = p.spawn_thread()
        fd = p.open("/dev/slot")
        k.concurrently(lambda: p.ioctl(fd, FILL), lambda: t.ioctl(fd, FILL))
        p.exit()
        k.check_invariants()

    return scenario


def test_both_fills_allocate_and_a_page_leaks() -> None:
    broken = _scenario(broken=True)
    ex = explore(broken, strategy="pct", schedules=100, seed=0, kernel_factory=small_kernel)
    assert len(ex.failures) == 1, ex.report()
    (f,) = ex.failures
    assert f.contract == "no-leaks"
    assert isinstance(f.error, InvariantError)
    assert "was dropped without free()" in str(f.error)
    assert f.preemptions >= 1 and "<-- preempted" in f.trace
    assert "alloc_page" in f.trace or "might_sleep" in f.trace
    assert_replays(broken, f)


def test_recheck_after_allocating_passes_every_schedule_within_three_preemptions() -> None:
    assert_dfs_passes(_scenario(broken=False), 3)
