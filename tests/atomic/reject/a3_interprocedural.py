"""Sleeping through helpers, methods (resolved by the receiver's type, overrides included),
and back up the call chain."""

from __future__ import annotations

from typing_extensions import override

from safemm.page import Page
from safemm.sync import SpinLock
from safemm.task import msleep


def refill() -> Page:
    return Page.alloc_page()


def deeper() -> None:
    refill().free()


class Area:
    def __init__(self) -> None:
        self.lock = SpinLock("area.lock")

    def grow(self) -> None:
        refill().free()

    def hook(self) -> None:
        """Does not sleep here; a subclass's override does."""

    def helper_call(self) -> None:
        with self.lock.lock():
            refill().free()  # atomic: atomic-sleep

    def two_levels(self) -> None:
        with self.lock.lock():
            deeper()  # atomic: atomic-sleep

    def method_call(self) -> None:
        with self.lock.lock():
            self.grow()  # atomic: atomic-sleep

    def through_override(self) -> None:
        with self.lock.lock():
            self.hook()  # atomic: atomic-sleep


class SleepyArea(Area):
    @override
    def hook(self) -> None:
        msleep(1)


def other_object(area: Area, lock: SpinLock) -> None:
    with lock.lock():
        area.grow()  # atomic: atomic-sleep


def nested_function(lock: SpinLock) -> None:
    def inner() -> None:
        msleep(1)

    with lock.lock():
        inner()  # atomic: atomic-sleep
