"""Step results, and the one loop that runs a sequence on either side.

A *side* (the real kernel through ``executor.c``, or the safemm model) is a
:class:`Machine`: it resets its window, performs one absolute :data:`~ops.Call`
and answers with an :class:`Outcome` plus the maps lines it then sees.
:func:`run_sequence` is shared by both sides so that everything that is not the
machine itself — turning operations into calls at the side's own base, making
returned addresses relative to it, deciding which loads are portable enough to
compare (:func:`~layout.read_skip_reason`), numbering shmem objects — happens in
exactly the same way on both.
"""

from __future__ import annotations

import errno as errno_module
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from typing_extensions import override

from .layout import Layout, LayoutReader, MapsLine, read_skip_reason
from .ops import PAGE_SIZE, Call, MmapCall, MremapCall, Op, ReadCall

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
    """One step's outcome and the window's layout right after it."""

    outcome: Outcome
    layout: Layout

    @override
    def __str__(self) -> str:
        return f"{self.outcome}; {self.layout}"


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

    def perform(self, call: Call) -> tuple[Outcome, list[MapsLine]]:
        """Run one call; return its outcome (absolute addresses) and the maps lines."""
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
    steps: list[StepResult] = []
    for op in ops:
        call = op.call(base)
        if isinstance(call, ReadCall):
            reason = read_skip_reason(layout, (call.addr - base) // PAGE_SIZE)
            if reason is not None:
                steps.append(StepResult(Outcome.skipped(reason), layout))
                continue
        outcome, lines = machine.perform(call)
        if outcome.kind == "ok" and isinstance(call, MmapCall | MremapCall):
            outcome = Outcome.ok(outcome.value - base)
        layout = reader.read(lines)
        steps.append(StepResult(outcome, layout))
    return SequenceResult(initial, tuple(steps))
