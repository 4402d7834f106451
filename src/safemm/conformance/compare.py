"""Differential comparison of the model against the real kernel.

:func:`compare` runs one sequence on both sides and returns the first step at
which they differ, as a :class:`Mismatch` holding both results: the outcome
(address relative to the region, ``-errno``, signal, byte read) and the
window's layout (VMA boundaries, permissions, private/shared backing, shmem
object identity and page offset). The layout right after the reset is compared
too (step ``-1``).

:func:`shrink` reduces a failing sequence to a small one that still fails:
it cuts everything after the first differing step, deletes chunks of steps
(halves, quarters, ... single steps), then simplifies each remaining operation
(fewer pages, pages nearer 0, fewer permission bits) until nothing more can be
removed or simplified. This is delta debugging rather than hypothesis's
shrinker, because the seeded runner finds failures outside hypothesis; the
hypothesis test (``tests/conformance/test_differential.py``) gets hypothesis's
own shrinking.

:func:`run` is the seeded runner behind ``safemm conformance`` (see
:func:`run_command`): ``n`` sequences from ``random.Random(seed)``, the agreement rate,
and every mismatch shrunk and de-duplicated.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, TextIO

from typing_extensions import override

from .generator import MAX_STEPS, random_sequences
from .kernel_side import KernelInfo, KernelSide, KernelUnavailable, unavailable_reason
from .model_side import ModelSide
from .ops import (
    REGION_PAGES,
    Fork,
    Ftruncate,
    InChild,
    Madvise,
    Mlock,
    Mmap,
    MmapFile,
    Mprotect,
    Mremap,
    Munlock,
    Munmap,
    Op,
    Pread,
    Pwrite,
    RawMadvise,
    RawMlock,
    RawMmap,
    RawMprotect,
    RawMremap,
    RawMunlock,
    RawMunmap,
    Read,
    Write,
    format_sequence,
)
from .steps import Outcome, SequenceResult, Side, StepResult

__all__ = [
    "FAMILIES",
    "FamilyTally",
    "Found",
    "Mismatch",
    "Report",
    "compare",
    "compare_results",
    "family_of",
    "run",
    "run_command",
    "shrink",
]

SETUP_STEP: Final = -1
"""``Mismatch.step`` when the layouts already differ right after the reset."""

FAMILIES: Final = (
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "access",
    "madvise",
    "mlock",
    "file",
    "fork",
    "malformed",
)
"""The operation families agreement is reported for, in report order."""


def family_of(op: Op) -> str:
    """The family of an operation: its system call (``mlock`` for mlock and munlock),
    ``access`` for loads and stores, ``file`` for memfd mappings and file calls (including
    their malformed arguments), ``fork`` for the fork itself, ``malformed`` for the raw
    (byte-level) calls. A call run in the child has the family of the call."""
    match op:
        case Fork():
            return "fork"
        case InChild(inner):
            return family_of(inner)
        case Mmap():
            return "mmap"
        case Munmap():
            return "munmap"
        case Mprotect():
            return "mprotect"
        case Mremap():
            return "mremap"
        case Read() | Write():
            return "access"
        case Madvise():
            return "madvise"
        case Mlock() | Munlock():
            return "mlock"
        case MmapFile() | Ftruncate() | Pread() | Pwrite():
            return "file"
        case (
            RawMmap()
            | RawMunmap()
            | RawMprotect()
            | RawMremap()
            | RawMadvise()
            | RawMlock()
            | RawMunlock()
        ):
            return "malformed"


@dataclass(frozen=True, slots=True)
class FamilyTally:
    """Agreement over the sequences that contain an operation of one family.

    Attributes:
        family: the family (:data:`FAMILIES`).
        sequences: sequences with at least one operation of the family.
        agreed: how many of those agreed at every step.
        steps: operations of the family run (on each side).
        first_differences: mismatches whose first differing step is of the family.
    """

    family: str
    sequences: int = 0
    agreed: int = 0
    steps: int = 0
    first_differences: int = 0

    @property
    def rate(self) -> float:
        """The fraction of those sequences that agreed (1.0 if none ran)."""
        return self.agreed / self.sequences if self.sequences else 1.0


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The first step at which the two sides disagree.

    Attributes:
        ops: the whole sequence that was run.
        step: index into ``ops`` of the first differing step (-1: after reset).
        kernel: the kernel's result at that step.
        model: the model's result at that step.
        aspects: what differs: ``"outcome"``, ``"layout"`` or both.
    """

    ops: tuple[Op, ...]
    step: int
    kernel: StepResult
    model: StepResult
    aspects: tuple[str, ...]
    kernel_name: str = "kernel"
    model_name: str = "model"

    @override
    def __str__(self) -> str:
        where = (
            "after the reset"
            if self.step == SETUP_STEP
            else f"at step {self.step}: {self.ops[self.step]!r}"
        )
        width = max(len(self.kernel_name), len(self.model_name)) + 1
        return "\n".join(
            [
                f"{' and '.join(self.aspects)} differ {where}",
                f"  {self.kernel_name + ':':{width}} {self.kernel}",
                f"  {self.model_name + ':':{width}} {self.model}",
                f"  ops = {format_sequence(self.ops, margin='  ')}",
            ]
        )


def compare_results(
    ops: Sequence[Op],
    kernel: SequenceResult,
    model: SequenceResult,
    names: tuple[str, str] = ("kernel", "model"),
) -> Mismatch | None:
    """The first difference between two results of the same sequence, if any."""
    setup = StepResult(Outcome.ok(0), kernel.initial), StepResult(Outcome.ok(0), model.initial)
    pairs = [
        (SETUP_STEP, *setup),
        *((i, a, b) for i, (a, b) in enumerate(zip(kernel.steps, model.steps, strict=True))),
    ]
    for index, ours, theirs in pairs:
        aspects = tuple(
            name
            for name, differs in (
                ("outcome", ours.outcome != theirs.outcome),
                ("layout", ours.layout != theirs.layout),
                ("child layout", ours.child != theirs.child),
            )
            if differs
        )
        if aspects:
            return Mismatch(tuple(ops), index, ours, theirs, aspects, *names)
    return None


@functools.cache
def _default_kernel() -> KernelSide:
    side = KernelSide()
    import atexit

    atexit.register(side.close)
    return side


def compare(
    ops: Sequence[Op], *, kernel: Side | None = None, model: Side | None = None
) -> Mismatch | None:
    """Run ``ops`` on both sides and return the first difference, or None.

    Args:
        ops: the sequence.
        kernel: the reference side; a shared :class:`KernelSide` if None.
        model: the side under test; a new :class:`ModelSide` if None.

    Raises:
        KernelUnavailable: no real kernel side on this machine.
    """
    kernel = _default_kernel() if kernel is None else kernel
    model = ModelSide() if model is None else model
    return compare_results(ops, kernel.run(ops), model.run(ops), (kernel.name, model.name))


def shrink(
    mismatch: Mismatch, check: Callable[[Sequence[Op]], Mismatch | None], budget: int = 2000
) -> Mismatch:
    """Reduce a failing sequence to a small one that still fails.

    Args:
        mismatch: a failure found by ``check``.
        check: runs a sequence on both sides (e.g. :func:`compare` with fixed sides).
        budget: at most this many runs of ``check``.

    Returns:
        The last failure found; its ``ops`` cannot be shortened by removing one
        step nor simplified by one ``simpler()`` candidate (unless the budget ran out).
    """
    best = mismatch
    runs = 0

    def attempt(candidate: Sequence[Op]) -> bool:
        nonlocal best, runs
        if runs >= budget:
            return False
        runs += 1
        found = check(candidate)
        if found is None:
            return False
        best = found
        return True

    def truncated(m: Mismatch) -> tuple[Op, ...]:
        return m.ops[: m.step + 1] if m.step >= 0 else ()

    def cut() -> None:
        if len(truncated(best)) < len(best.ops):
            attempt(truncated(best))

    cut()
    progress = True
    while progress and runs < budget:
        progress = False
        # delete chunks of steps, largest first, from the end backwards
        size = max(len(best.ops) // 2, 1)
        while size >= 1:
            start = len(best.ops) - size
            while start >= 0 and runs < budget:
                if attempt(best.ops[:start] + best.ops[start + size :]):
                    progress = True
                    cut()
                start = min(start - size, len(best.ops) - size)
            size //= 2
        # simplify single operations
        index = 0
        while index < len(best.ops) and runs < budget:
            for candidate in best.ops[index].simpler():
                if attempt((*best.ops[:index], candidate, *best.ops[index + 1 :])):
                    progress = True
                    cut()
                    break
            index += 1
    return best


@dataclass(frozen=True, slots=True)
class Found:
    """One distinct shrunk mismatch and how many sequences led to it."""

    mismatch: Mismatch
    count: int
    first_sequence: int
    shrunk: bool = True


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of :func:`run`.

    Attributes:
        info: the kernel the run was made against.
        seed: the seed of the sequences.
        sequences: how many sequences were run.
        agreed: how many agreed at every step.
        steps: how many steps were run in all (on each side).
        found: the distinct shrunk mismatches, most frequent first.
        seconds: wall-clock time of the run.
        families: agreement per operation family, in :data:`FAMILIES` order.
    """

    info: KernelInfo
    seed: int
    max_steps: int
    sequences: int
    agreed: int
    steps: int
    found: tuple[Found, ...] = field(default=())
    seconds: float = 0.0
    families: tuple[FamilyTally, ...] = field(default=())

    @property
    def rate(self) -> float:
        """The fraction of sequences on which the sides agreed (1.0 if none ran)."""
        return self.agreed / self.sequences if self.sequences else 1.0

    def summary(self, show: int = 5) -> str:
        """Human-readable report: kernel, assumptions, agreement, mismatches."""
        lines = [
            self.info.describe(),
            f"sequences: {self.sequences} (seed {self.seed}, up to {self.max_steps} steps over a "
            f"{REGION_PAGES}-page region), {self.steps} steps, {self.seconds:.1f} s",
            f"agreement: {self.agreed}/{self.sequences} sequences ({100 * self.rate:.2f}%)",
        ]
        for tally in self.families:
            lines.append(
                f"  {tally.family + ':':10} {tally.agreed}/{tally.sequences} sequences "
                f"({100 * tally.rate:.2f}%), {tally.steps} steps, "
                f"{tally.first_differences} first difference(s)"
            )
        for number, found in enumerate(self.found[:show], 1):
            lines.append(
                f"\nmismatch {number} of {len(self.found)} (from {found.count} sequence(s), "
                f"first #{found.first_sequence}), "
                f"{'shrunk' if found.shrunk else 'cut'} to {len(found.mismatch.ops)} step(s):"
            )
            lines.append(str(found.mismatch))
        if len(self.found) > show:
            lines.append(f"\n... and {len(self.found) - show} more distinct mismatches")
        return "\n".join(lines)


def run(
    n: int,
    seed: int,
    *,
    max_steps: int = MAX_STEPS,
    kernel: Side | None = None,
    model: Side | None = None,
    shrink_mismatches: bool = True,
    max_shrinks: int = 25,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Run ``n`` seeded random sequences on both sides and report the agreement.

    Args:
        n: number of sequences.
        seed: seed of ``random.Random`` for the sequences.
        max_steps: longest sequence.
        kernel: the reference side; a shared :class:`KernelSide` if None.
        model: the side under test; a :class:`ModelSide` if None.
        shrink_mismatches: shrink mismatches to minimal sequences.
        max_shrinks: shrink at most this many mismatches (shrinking costs up to
            2000 sequence runs each); later ones are only cut after their first
            differing step.
        progress: called as ``progress(done, n)`` after each sequence.

    Raises:
        KernelUnavailable: no real kernel side on this machine.
    """
    kernel = _default_kernel() if kernel is None else kernel
    model = ModelSide() if model is None else model
    sides = kernel, model

    def check(ops: Sequence[Op]) -> Mismatch | None:
        return compare(ops, kernel=sides[0], model=sides[1])

    started = time.monotonic()
    agreed = steps = shrinks = 0
    found: dict[str, Found] = {}
    families = {name: FamilyTally(name) for name in FAMILIES}
    for number, ops in enumerate(random_sequences(n, seed, max_steps)):
        steps += len(ops)
        mismatch = check(ops)
        counts: dict[str, int] = {}
        for op in ops:
            counts[family_of(op)] = counts.get(family_of(op), 0) + 1
        first = (
            family_of(ops[mismatch.step]) if mismatch is not None and mismatch.step >= 0 else None
        )
        for name, count in counts.items():
            t = families[name]
            families[name] = replace(
                t,
                sequences=t.sequences + 1,
                agreed=t.agreed + (mismatch is None),
                steps=t.steps + count,
                first_differences=t.first_differences + (name == first),
            )
        if mismatch is None:
            agreed += 1
        else:
            shrunk = shrink_mismatches and shrinks < max_shrinks
            if shrunk:
                shrinks += 1
                small = shrink(mismatch, check)
            else:
                small = replace(mismatch, ops=mismatch.ops[: mismatch.step + 1])
            key = repr(small.ops)
            old = found.get(key)
            found[key] = (
                Found(small, 1, number, shrunk)
                if old is None
                else replace(old, count=old.count + 1)
            )
        if progress is not None:
            progress(number + 1, n)
    ranked = sorted(found.values(), key=lambda item: (-item.count, item.first_sequence))
    return Report(
        info=KernelInfo.collect(),
        seed=seed,
        max_steps=max_steps,
        sequences=n,
        agreed=agreed,
        steps=steps,
        found=tuple(ranked),
        seconds=time.monotonic() - started,
        families=tuple(families[name] for name in FAMILIES),
    )


def _kernel_only(n: int, seed: int, max_steps: int, out: TextIO) -> int:
    """Exercise just the executor: run the sequences and tally the outcomes."""
    side = _default_kernel()
    tally: dict[str, int] = {}
    started = time.monotonic()
    steps = 0
    for ops in random_sequences(n, seed, max_steps):
        for step in side.run(ops).steps:
            steps += 1
            label = str(step.outcome) if step.outcome.kind != "ok" else "ok"
            tally[label] = tally.get(label, 0) + 1
    print(side.info.describe(), file=out)
    print(
        f"kernel only: {n} sequences (seed {seed}), {steps} steps, "
        f"{time.monotonic() - started:.1f} s, window never disturbed",
        file=out,
    )
    for label, count in sorted(tally.items(), key=lambda item: -item[1]):
        print(f"  {count:7d}  {label}", file=out)
    return 0


def _selftests(out: TextIO) -> int:
    """Run every ported selftest scenario on both sides; one line each."""
    from .selftests import SCENARIOS, run_scenario

    kernel, model = _default_kernel(), ModelSide()
    print(kernel.info.describe(), file=out)
    reports = [run_scenario(scenario, kernel, model) for scenario in SCENARIOS]
    for report in reports:
        print(report.summary(), file=out)
        if report.mismatch is not None:
            print(report.mismatch, file=out)
    met = sum(not report.kernel_unmet for report in reports)
    agreed = sum(report.mismatch is None for report in reports)
    print(
        f"selftest scenarios: {len(reports)}; the kernel meets {met}; "
        f"the model agrees with the kernel on {agreed}",
        file=out,
    )
    ok = all(report.kernel_as_expected and report.mismatch is None for report in reports)
    return 0 if ok else 1


def run_command(
    *,
    sequences: int = 2000,
    seed: int = 0,
    max_steps: int = MAX_STEPS,
    show: int = 5,
    max_shrinks: int = 25,
    kernel_only: bool = False,
    selftests: bool = False,
    out: TextIO | None = None,
) -> int:
    """``safemm conformance``: print the kernel version, the assumptions and the agreement
    rate (or, where the suite cannot run here, the reason).

    Args:
        sequences: how many random sequences to run.
        seed: seed of the random sequences.
        max_steps: the longest sequence.
        show: how many mismatches to print.
        max_shrinks: how many mismatches to shrink (0: none).
        kernel_only: run the sequences on the kernel only (checks the executor).
        out: where to print; stdout by default.

    Returns:
        0 if every sequence agreed (or the suite cannot run here: the reason is
        printed), 1 if there were mismatches.
    """
    out = sys.stdout if out is None else out
    reason = unavailable_reason()
    if reason is not None:
        print(f"safemm conformance: skipped: {reason}", file=out)
        return 0
    try:
        if selftests:
            return _selftests(out)
        if kernel_only:
            return _kernel_only(sequences, seed, max_steps, out)
        report = run(sequences, seed, max_steps=max_steps, max_shrinks=max_shrinks)
    except KernelUnavailable as exc:
        print(f"safemm conformance: skipped: {exc}", file=out)
        return 0
    print(report.summary(show), file=out)
    return 0 if report.agreed == report.sequences else 1
