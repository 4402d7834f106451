"""The report printed at interpreter exit: leaks that nobody asked about.

A reference dropped without its release (a ``Page``, an mm reference, a guard) is found by a
finaliser: its splat goes to the machine's ``dmesg`` and ``leaks``, and the next
:meth:`Kernel.check_invariants` raises for it. A script that never calls ``check_invariants``
would never hear of it, so when the interpreter exits, every machine still alive prints to
stderr each leak no ``check_invariants`` call has raised for, and each lock a process still
holds — as a debug kernel's kmemleak (mm/kmemleak.c) reports unreferenced objects long after
the code that lost them returned.

This is the model's one piece of module-level state: a weak set of the live machines, which
each :class:`~safemm.model.kernel.Kernel` joins when it is made and leaves when it is
garbage-collected. Only the exit hook reads it, so it never changes what a machine does and
machines stay independent of each other. A tool that reports a machine's leaks itself (the
fuzzer, its reproducers) takes the machine out with :func:`forget`.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["forget", "report_at_exit", "watch", "watched"]

_live_kernels: weakref.WeakSet[Kernel] = weakref.WeakSet()


def watch(kernel: Kernel) -> None:
    """Include ``kernel`` in the exit report (every ``Kernel`` does this when it is made)."""
    _live_kernels.add(kernel)


def forget(kernel: Kernel) -> None:
    """Leave ``kernel`` out of the exit report: its leaks are reported some other way."""
    _live_kernels.discard(kernel)


def watched() -> frozenset[Kernel]:
    """The machines the exit report covers now."""
    return frozenset(_live_kernels)


def report_at_exit(file: TextIO | None = None) -> None:
    """Print, for every watched machine, each lock a process still holds and each leak no
    ``check_invariants`` call has raised for.

    Args:
        file: where to print; stderr (as it is when the report runs) by default.
    """
    out = sys.stderr if file is None else file
    for k in list(_live_kernels):
        for p in list(k.processes.values()):
            for h in p.task.held_locks:
                print(
                    f"safemm: leak: {h.lock.name} still held by {p.task.comm}/{p.task.pid} at "
                    "exit",
                    file=out,
                )
        for s in k.leaks[k.leaks_reported :]:
            print(s.render(), file=out)


atexit.register(report_at_exit)
