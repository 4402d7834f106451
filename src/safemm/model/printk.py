"""Kernel-style reports ("splats") and what each kind does to the caller.

Mirrors the reporting side of a debug kernel: ``BUG()`` (lib/bug.c, always fatal), ``WARN()``
(kernel/panic.c ``__warn``, fatal only with ``panic_on_warn``), lockdep
(kernel/locking/lockdep.c), ``__might_resched`` / ``__schedule_bug`` (kernel/sched/core.c) and
the model's own leak and strict-mode reports. :func:`make_splat` builds a report with the
first line the kernel prints for its kind; :meth:`Splat.render` formats it. ``Kernel.report``
sends every report to ``Kernel.dmesg`` as one multi-line string and to ``Kernel.splats`` as a
:class:`Splat`, then acts on it.

Simplification: the kernel turns lockdep off after its first report (``debug_locks_off``); the
model keeps reporting, once per distinct problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .contracts import CONTRACTS

__all__ = ["Splat", "SplatKind", "make_splat"]


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

#: The first line of each kind of report, as the kernel prints it: ``report_bug``
#: (lib/bug.c), ``__warn`` (kernel/panic.c), ``__might_resched`` (kernel/sched/core.c), the
#: hung-task detector (kernel/hung_task.c); the model's own leak and strict reports. Fields:
#: ``where``, ``pid``, ``comm``, ``summary`` (the contract's), ``kind``.
TITLE_FORMATS: dict[SplatKind, str] = {
    SplatKind.BUG: "kernel BUG at {where}!",
    SplatKind.WARNING: "WARNING: CPU: 0 PID: {pid} at {where}",
    SplatKind.MIGHT_SLEEP: "BUG: sleeping function called from invalid context at {where}",
    SplatKind.LEAK: "safemm: leak: {where}",
    SplatKind.STRICT: "safemm strict: {summary} ({where})",
    SplatKind.DEADLOCK: "INFO: task {comm}:{pid} blocked forever",
}


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


def make_splat(
    kind: SplatKind,
    contract: str,
    message: str,
    where: str,
    *,
    pid: int,
    comm: str,
    trace: tuple[str, ...] = (),
    title: str | None = None,
) -> Splat:
    """A report of ``contract`` broken at ``where``, in task ``comm``/``pid``.

    Args:
        kind: what kind of report it is.
        contract: the id of the broken contract; its fix (and, for a strict report, its
            summary) come from :data:`~safemm.model.contracts.CONTRACTS`.
        message: what went wrong, in this instance.
        where: the kernel function that found it (``mm/memory.c:insert_page``), or what
            leaked.
        pid: the pid of ``current``.
        comm: the name of ``current``.
        trace: the driver hooks and kernel functions that were running, innermost last.
        title: the first line, when the caller prints its own (lockdep's headlines, "Bad
            page state", KASAN); by default the one of :data:`TITLE_FORMATS` for ``kind``.

    Returns:
        The report, ready for :meth:`Splat.render`.

    Raises:
        KeyError: ``contract`` is not a registered contract id.
    """
    c = CONTRACTS[contract]
    if title is None:
        title = TITLE_FORMATS.get(kind, "{kind}: {where}").format(
            kind=kind.value, where=where, pid=pid, comm=comm, summary=c.summary
        )
    return Splat(kind, title, contract, message, c.fix, pid, comm, trace)
