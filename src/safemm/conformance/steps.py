"""Step results, and the one loop that runs a sequence on either side.

A *side* (the real kernel through ``executor.c``, or the safemm model) is a
:class:`Machine`: it resets its window, performs one absolute :data:`~ops.Call`
and answers with an :class:`Outcome` plus the maps lines it then sees.
:func:`run_sequence` is shared by both sides so that everything that is not the
machine itself — turning operations into calls at the side's own base, making
returned addresses relative to it, deciding which loads are portable enough to
compare (:func:`~layout.read_skip_reason`), numbering shmem objects — happens in
exactly the same way on both.

After a :class:`~ops.Fork` the machine has a child: :class:`~ops.InChild` steps run
there, the fork's own outcome is ``ok 0`` (pids are not compared), and every step
records the child's layout too (read with the same reader as the parent's, so a
shmem object shared by both has one number).
"""

from __future__ import annotations

import errno as errno_module
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from typing_extensions import override

from .layout import Layout, LayoutReader, MapsLine, read_skip_reason
from .ops import PAGE_SIZE, Call, Fork, InChild, MmapCall, MremapCall, Op, ReadCall

__all__ = [
    "Machine",
    "Outcome",
    "OutcomeKind",
    "SequenceResult",
    "Side",
    "StepResult",
    "run_sequence",
]

#: How a step ended: it returned, failed with an errno, raised a signal, was skipped, or
#: raised another exception.
OutcomeKind: TypeAlias = Literal["ok", "errno", "signal", "skipped", "exception"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one step returned.

    Attributes:
        kind: ``ok`` (``value`` is the return value: an address relative to region
            page 0 for mmap/mremap, 0 for munmap/mprotect/stores, the byte read
            for loads), ``errno`` (``value`` is the errno), ``signal`` (``detail``
            is ``SIGSEGV`` or ``SIGBUS``), ``skipped`` (a load not compared;
            ``detail`` says why) or ``exception`` (the side raised something
            else; ``detail`` has the text — a kernel never does this).
        value: see ``kind``.
        detail: see ``kind``.
    """

    kind: OutcomeKind
    value: int = 0
    detail: str = ""

    @classmethod
    def ok(cls, value: int) -> Outcome:
        """A successful call or access."""
        return cls("ok", value)

    @classmethod
    def error(cls, errno: int) -> Outcome:
        """A call refused with ``errno``."""
        return cls("errno", errno)

    @classmethod
    def signal(cls, name: str) -> Outcome:
        """An access that raised ``SIGSEGV`` or ``SIGBUS``."""
        return cls("signal", 0, name)

    @classmethod
    def skipped(cls, reason: str) -> Outcome:
        """A load that is not run (see :func:`~layout.read_skip_reason`)."""
        return cls("skipped", 0, reason)

    @classmethod
    def exception(cls, text: str) -> Outcome:
        """The side raised an unexpected exception."""
        return cls("exception", 0, text)

    @override
    def __str__(self) -> str:
        match self.kind:
            case "ok":
                return f"ok {self.value:#x}" if self.value >= 0 else f"ok -{-self.value:#x}"
            case "errno":
                return "-" + errno_module.errorcode.get(self.value, str(self.value))
            case "signal":
                return self.detail
            case "skipped":
                return f"skipped ({self.detail})"
            case "exception":
                return f"exception {self.detail}"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step's outcome and the window's layout right after it.

    Attributes:
        outcome: what the step returned.
        layout: the parent's window.
        child: the child's window, or None while there is no child.
    """

    outcome: Outcome
    layout: Layout
    child: Layout | None = None

    @override
    def __str__(self) -> str:
        tail = "" if self.child is None else f"; child: {self.child}"
        return f"{self.outcome}; {self.layout}{tail}"


@dataclass(frozen=True, slots=True)
class SequenceResult:
    """A whole sequence on one side: the layout after reset, then one result per op."""

    initial: Layout
    steps: tuple[StepResult, ...]


class Machine(Protocol):
    """A place to run absolute calls: the real kernel or the model."""

    @property
    def region_base(self) -> int:
        """Absolute address of region page 0 (fixed for the machine's life)."""
        ...

    def reset(self) -> list[MapsLine]:
        """Return the window to one PROT_NONE private anonymous VMA; its maps lines."""
        ...

    def perform(self, call: Call, *, in_child: bool = False) -> tuple[Outcome, list[MapsLine]]:
        """Run one call (in the child if ``in_child``); return its outcome (absolute
        addresses) and the parent's maps lines."""
        ...

    def child_lines(self) -> list[MapsLine] | None:
        """The child's maps lines after the last call, or None if there is no child."""
        ...


class Side(Protocol):
    """Something that runs whole sequences: what :mod:`compare` compares."""

    @property
    def name(self) -> str:
        """``kernel`` or ``model`` (used in reports)."""
        ...

    def run(self, ops: Sequence[Op]) -> SequenceResult:
        """Run ``ops`` from a freshly reset window."""
        ...


def run_sequence(machine: Machine, ops: Sequence[Op]) -> SequenceResult:
    """Run ``ops`` on ``machine`` from a reset window, step by step.

    Raises:
        Disturbance: the machine's window showed a mapping the sequence did not
            make (see :class:`~layout.LayoutReader`).
    """
    base = machine.region_base
    reader = LayoutReader(base)
    initial = reader.read(machine.reset())
    layout = initial
    child: Layout | None = None
    steps: list[StepResult] = []
    for op in ops:
        in_child = isinstance(op, InChild)
        if in_child and child is None:
            steps.append(StepResult(Outcome.skipped("no child process"), layout, child))
            continue
        call = op.call(base)
        if isinstance(call, ReadCall):
            seen = child if in_child and child is not None else layout
            reason = read_skip_reason(seen, (call.addr - base) // PAGE_SIZE)
            if reason is not None:
                steps.append(StepResult(Outcome.skipped(reason), layout, child))
                continue
        outcome, lines = machine.perform(call, in_child=in_child)
        if outcome.kind == "ok" and isinstance(call, MmapCall | MremapCall):
            outcome = Outcome.ok(outcome.value - base)
        elif outcome.kind == "ok" and isinstance(op, Fork):
            outcome = Outcome.ok(0)
        layout = reader.read(lines)
        child_lines = machine.child_lines()
        child = None if child_lines is None else reader.read(child_lines)
        steps.append(StepResult(outcome, layout, child))
    return SequenceResult(initial, tuple(steps))
