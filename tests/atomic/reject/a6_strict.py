"""``--strict``: calls in atomic context that cannot be resolved (an ``Any`` receiver, a
callable value) are reported instead of assumed not to sleep."""

from __future__ import annotations

from collections.abc import Callable

from safemm.sync import SpinLock


class Holder:
    def __init__(self, hook: Callable[[], None]) -> None:
        self.hook = hook
        self.lock = SpinLock("holder.lock")

    def run(self) -> None:
        with self.lock.lock():
            self.hook()  # atomic: atomic-unknown


def callable_value(lock: SpinLock, fn: Callable[[], None]) -> None:
    with lock.lock():
        fn()  # atomic: atomic-unknown
