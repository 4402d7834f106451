"""Kernel-style reports ("splats") and what each kind does to the caller.

Mirrors the reporting side of a debug kernel: ``BUG()`` (lib/bug.c, always fatal), ``WARN()``
(kernel/panic.c ``__warn``, fatal only with ``panic_on_warn``), lockdep
(kernel/locking/lockdep.c), ``__might_resched`` / ``__schedule_bug`` (kernel/sched/core.c) and
the model's own leak and strict-mode reports. Every report goes to ``Kernel.dmesg`` as one
multi-line string and to ``Kernel.splats`` as a :class:`Splat`.

Simplification: the kernel turns lockdep off after its first report (``debug_locks_off``); the
model keeps reporting, once per distinct problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Splat", "SplatKind"]


class SplatKind(enum.Enum):
    """What kind of report a splat is, which decides what it does to the caller."""

    #: ``BUG()``/``BUG_ON()``: always raises :class:`KernelBug`.
    BUG = "BUG"
    #: ``WARN()``: raises :class:`KernelWarning` under ``panic_on_warn``.
    WARNING = "WARNING"
    #: ``might_sleep()`` in atomic context ("sleeping function called from invalid context").
    MIGHT_SLEEP = "MIGHT_SLEEP"
    #: ``schedule()`` in atomic context ("scheduling while atomic").
    SCHED_ATOMIC = "SCHED_ATOMIC"
    #: A lockdep report (circular dependency, recursive locking, bad unlock, lock held on exit).
    LOCKDEP = "LOCKDEP"
    #: An acquisition that can never succeed: always raises :class:`Deadlock`.
    DEADLOCK = "DEADLOCK"
    #: A reference (mm, page, guard) that was never released.
    LEAK = "LEAK"
    #: A contract the kernel itself does not check, reported in strict mode.
    STRICT = "STRICT"


#: Kinds that raise :class:`KernelWarning` when ``panic_on_warn`` is set.
WARN_KINDS = frozenset(
    {
        SplatKind.WARNING,
        SplatKind.MIGHT_SLEEP,
        SplatKind.SCHED_ATOMIC,
        SplatKind.LOCKDEP,
        SplatKind.STRICT,
    }
)


@dataclass(frozen=True)
class Splat:
    """One report, as a debug kernel would print it.

    Attributes:
        kind: what kind of report this is.
        title: the first line as the kernel prints it (``kernel BUG at mm/memory.c:...!``).
        contract: the id of the broken contract (see :mod:`safemm.model.contracts`).
        message: what went wrong, in this instance.
        fix: how to fix the calling code.
        pid: the pid of ``current`` (0 for kernel threads).
        comm: the name of ``current``.
        trace: the driver hooks and kernel functions that were running, innermost last.
    """

    kind: SplatKind
    title: str
    contract: str
    message: str
    fix: str
    pid: int
    comm: str
    trace: tuple[str, ...]

    def render(self) -> str:
        """The report as the multi-line text that goes to dmesg."""
        lines = [
            "------------[ cut here ]------------",
            self.title,
            f"CPU: 0 PID: {self.pid} Comm: {self.comm}",
            f"contract: {self.contract}: {self.message}",
        ]
        if self.fix:
            lines.append(f"fix: {self.fix}")
        if self.trace:
            lines.append("Call Trace:")
            lines.extend(f" {frame}" for frame in reversed(self.trace))
        lines.append("---[ end trace ]---")
        return "\n".join(lines)
