"""Helpers for tests and benchmarks that drive the safe layer without a device.

:func:`driver_context` enters the kernel as a process (or as a kernel thread) and makes the
safe layer usable, as if the code ran inside a driver hook. :func:`expect_splat` expects a
block to raise the report of one contract, of one kind — not just any ``KernelBug`` or
``KernelWarning``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, final

from ._scope import HookCall
from .model.contracts import CONTRACTS
from .model.errors import KernelBug, KernelWarning
from .model.printk import Splat, SplatKind

if TYPE_CHECKING:
    from .model.kernel import Kernel
    from .model.process import Process

__all__ = ["SplatCatch", "SplatKind", "driver_context", "expect_splat"]


@final
class SplatCatch:
    """What an :func:`expect_splat` block raised: readable once the block has ended."""

    __slots__ = ("_error",)

    def __init__(self) -> None:
        self._error: KernelBug | KernelWarning | None = None

    @property
    def error(self) -> KernelBug | KernelWarning:
        """The exception the report raised (its text is the splat as dmesg holds it)."""
        if self._error is None:
            raise AssertionError("expect_splat: nothing was caught (yet)")
        return self._error

    @property
    def splat(self) -> Splat:
        """The report itself: kind, contract, message, fix, trace."""
        splat = self.error.splat
        assert isinstance(splat, Splat)
        return splat


@contextmanager
def expect_splat(
    contract: str, kind: SplatKind, *, match: str | None = None
) -> Iterator[SplatCatch]:
    """Expect the block to raise the report of ``contract``, of kind ``kind``.

    A BUG (or deadlock) raises :class:`~safemm.KernelBug`; a WARN-class report raises
    :class:`~safemm.KernelWarning` under ``panic_on_warn``. Any other report, or none, fails
    with an AssertionError naming what was expected and what came; ``match`` (a regular
    expression) must also be found in the splat's text. Other exceptions pass through.

    For example::

        with expect_splat("split-range", SplatKind.WARNING) as caught:
            split_vma(vmi, vma, vma.vm_end)
        assert "__split_vma" in caught.splat.title
    """
    if contract not in CONTRACTS:
        raise ValueError(f"expect_splat: unknown contract {contract!r}")
    caught = SplatCatch()
    expected = f"a {kind.value} report of contract {contract!r}"
    try:
        yield caught
    except (KernelBug, KernelWarning) as e:
        splat = e.splat
        got = (
            f"a {splat.kind.value} report of contract {splat.contract!r}"
            if isinstance(splat, Splat)
            else "an exception without a report"
        )
        if not isinstance(splat, Splat) or (splat.kind, splat.contract) != (kind, contract):
            raise AssertionError(f"expected {expected}, got {got}:\n{e}") from e
        if match is not None and re.search(match, str(e)) is None:
            raise AssertionError(f"{got}, but {match!r} is not in its text:\n{e}") from e
        caught._error = e
    else:
        raise AssertionError(f"expected {expected}; the block raised nothing")


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
