"""The user's own marks: ``@may_sleep`` functions, ``@atomic_context`` bodies and
``@atomic_callback`` parameters."""

from __future__ import annotations

from collections.abc import Callable

from safemm.atomic import atomic_callback, atomic_context, may_sleep
from safemm.page import GFP_ATOMIC, GFP_KERNEL, Gfp
from safemm.sync import Mutex, SpinLock
from safemm.task import msleep


@may_sleep("flush before taking the lock")
def flush() -> None:
    """Marked: may sleep (e.g. it waits for hardware)."""


@may_sleep("pass GFP_ATOMIC", gfp="gfp")
def fill(gfp: Gfp = GFP_KERNEL) -> None:
    """Marked: may sleep when ``gfp`` may reclaim."""


def marked_function(lock: SpinLock) -> None:
    with lock.lock():
        flush()  # atomic: atomic-sleep


def marked_gfp_default(lock: SpinLock) -> None:
    with lock.lock():
        fill()  # atomic: atomic-sleep
        fill(GFP_ATOMIC)


@atomic_context("timer callback")
def on_timer(m: Mutex) -> None:
    m.lock().unlock()  # atomic: atomic-sleep


class Dev:
    def __init__(self) -> None:
        self.lock = SpinLock("dev.lock")

    @atomic_callback("fn", "callback under dev.lock")
    def with_locked(self, fn: Callable[[], None]) -> None:
        with self.lock.lock():
            fn()

    def use(self) -> None:
        self.with_locked(sleeps_in_callback)


def sleeps_in_callback() -> None:
    msleep(1)  # atomic: atomic-sleep
