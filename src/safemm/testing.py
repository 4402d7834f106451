"""Helpers for tests and benchmarks that drive the safe layer without a device.

:func:`driver_context` enters the kernel as a process (or as a kernel thread) and makes the
safe layer usable, as if the code ran inside a driver hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._scope import HookCall

if TYPE_CHECKING:
    from .model.kernel import Kernel
    from .model.process import Process

__all__ = ["driver_context"]


@contextmanager
def driver_context(
    kernel: Kernel, process: Process | None = None, owner: object = None
) -> Iterator[None]:
    """Run the block as driver code: inside a kernel entry of ``process`` (or of the idle
    kernel thread), with the safe layer's running kernel set; ``owner`` names the driver."""
    task = process.task if process is not None else kernel.current
    with (
        kernel.enter(task, "safemm.testing.driver_context"),
        kernel.driver_hook(owner, None, "test driver"),
        HookCall(kernel, "driver_context", "driver_context exited"),
    ):
        yield
