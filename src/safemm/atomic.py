"""Marks for atomic context, read by the run-time check and by ``safemm check``.

Mark your own functions the way the safe layer marks its own::

    from safemm.atomic import atomic_callback, atomic_context, may_sleep

    @may_sleep("flush before taking the lock")
    def flush(self) -> None: ...            # callers in atomic context get [atomic-sleep]

    @atomic_context("timer callback")
    def on_timer(self) -> None: ...         # nothing in it may sleep

    @atomic_callback("fn", "under dev.lock")
    def with_locked(self, fn: Callable[[], None]) -> None: ...  # fn is checked as atomic

See docs/static-checking.md.
"""

from __future__ import annotations

from .model.atomic import atomic_callback as atomic_callback
from .model.atomic import atomic_context as atomic_context
from .model.atomic import atomic_guard as atomic_guard
from .model.atomic import atomic_relock as atomic_relock
from .model.atomic import atomic_unlock as atomic_unlock
from .model.atomic import may_sleep as may_sleep

__all__ = [
    "atomic_callback",
    "atomic_context",
    "atomic_guard",
    "atomic_relock",
    "atomic_unlock",
    "may_sleep",
]
