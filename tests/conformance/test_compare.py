"""Comparison, shrinking, the seeded runner and the command, apart from the model.

The machinery is tested against sides built from the kernel alone, whose answers
are known: the kernel against itself in another process (which must agree 100%:
results do not depend on where the window is), and the kernel against a
deliberately distorted copy of itself (whose disagreements must be found and
shrunk to one or two steps).
"""

from __future__ import annotations

import errno
import io
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from safemm.cli import main
from safemm.conformance import compare
from safemm.conformance import ops as ops_module
from safemm.conformance.compare import Mismatch, compare_results, run, shrink
from safemm.conformance.kernel_side import KernelExecutor, KernelSide
from safemm.conformance.layout import Layout
from safemm.conformance.ops import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    InChild,
    Mmap,
    MmapFile,
    Mremap,
    Op,
    RawMremap,
    Read,
)
from safemm.conformance.steps import Outcome, SequenceResult, Side, StepResult

Distortion = Callable[[Op, StepResult], StepResult]


class Distorted:
    """Another side that runs on the kernel and then changes some results."""

    def __init__(self, inner: Side, distort: Distortion) -> None:
        self.inner = inner
        self.distort = distort

    @property
    def name(self) -> str:
        return "distorted"

    def run(self, ops: Sequence[Op]) -> SequenceResult:
        result = self.inner.run(ops)
        steps = tuple(self.distort(op, step) for op, step in zip(ops, result.steps, strict=True))
        return SequenceResult(result.initial, steps)


def efault_for_enomem(op: Op, step: StepResult) -> StepResult:
    if isinstance(op, Mremap | RawMremap) and step.outcome == Outcome.error(errno.ENOMEM):
        return StepResult(Outcome.error(errno.EFAULT), step.layout)
    return step


def _without_shared(layout: Layout) -> Layout:
    return Layout(tuple(vma for vma in layout.vmas if not vma.perms.endswith("s")))


def hide_shared(op: Op, step: StepResult) -> StepResult:
    child = None if step.child is None else _without_shared(step.child)
    return StepResult(step.outcome, _without_shared(step.layout), child)


def test_kernel_agrees_with_itself_elsewhere(
    kernel_side: KernelSide, executor_binary: Path
) -> None:
    with KernelSide(KernelExecutor(executor_binary)) as other:
        assert other.executor.region_base != kernel_side.executor.region_base
        report = run(150, seed=42, kernel=kernel_side, model=other)
    assert report.sequences == 150
    assert report.rate == 1.0, report.summary()
    assert report.found == ()
    assert "agreement: 150/150 sequences (100.00%)" in report.summary()


def test_outcome_mismatch_is_found_and_shrunk(kernel_side: KernelSide) -> None:
    distorted = Distorted(kernel_side, efault_for_enomem)
    report = run(60, seed=1, kernel=kernel_side, model=distorted)
    assert report.rate < 1.0
    assert report.found
    for found in report.found:
        mismatch = found.mismatch
        assert len(mismatch.ops) == 1, mismatch
        assert mismatch.aspects == ("outcome",)
        assert str(mismatch.kernel.outcome) == "-ENOMEM"
        assert str(mismatch.model.outcome) == "-EFAULT"
    text = report.summary()
    assert "mismatch 1 of" in text
    assert "outcome differ at step 0" in text


def test_families_name_where_the_sides_first_differ(kernel_side: KernelSide) -> None:
    """Per-family agreement: only mremap results are distorted, so every first difference
    is an mremap step (raw mremaps count as malformed)."""
    distorted = Distorted(kernel_side, efault_for_enomem)
    report = run(60, seed=1, kernel=kernel_side, model=distorted, max_shrinks=0)
    tallies = {tally.family: tally for tally in report.families}
    assert tuple(tallies) == compare.FAMILIES
    disagreed = report.sequences - report.agreed
    assert disagreed > 0
    firsts = {name: tally.first_differences for name, tally in tallies.items()}
    assert firsts["mremap"] + firsts["malformed"] == disagreed
    assert firsts["mmap"] == firsts["mprotect"] == firsts["access"] == 0
    for tally in tallies.values():
        assert tally.agreed <= tally.sequences <= report.sequences
        assert tally.steps >= tally.sequences
    assert tallies["mremap"].rate < 1.0
    assert f"  mremap:    {tallies['mremap'].agreed}/" in report.summary()


def test_layout_mismatch_is_found_and_shrunk(kernel_side: KernelSide) -> None:
    distorted = Distorted(kernel_side, hide_shared)
    report = run(40, seed=2, kernel=kernel_side, model=distorted)
    assert report.found
    smallest = min((found.mismatch for found in report.found), key=lambda m: len(m.ops))
    assert smallest.aspects in (("layout",), ("layout", "child layout"))
    # one shared mapping of one page at page 0, with no permissions: anonymous or memfd
    assert smallest.ops in (
        (Mmap(0, 1, 0, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED),),
        (MmapFile(0, 1, 0, True, 0),),
    )


def child_reads_zero(op: Op, step: StepResult) -> StepResult:
    """A side whose child never sees the parent's data (as if fork did not copy pages)."""
    if isinstance(op, InChild) and isinstance(op.op, Read) and step.outcome.kind == "ok":
        return StepResult(Outcome.ok(0), step.layout, step.child)
    return step


def test_child_mismatch_is_found_and_shrunk(kernel_side: KernelSide) -> None:
    """A difference in the child shrinks to a mapping, a store, the fork and the child's
    load (or fewer)."""
    distorted = Distorted(kernel_side, child_reads_zero)
    report = run(150, seed=4, kernel=kernel_side, model=distorted)
    assert report.found
    smallest = min((found.mismatch for found in report.found), key=lambda m: len(m.ops))
    assert smallest.aspects == ("outcome",)
    kinds = [type(op).__name__ for op in smallest.ops]
    assert "Fork" in kinds, smallest
    assert isinstance(smallest.ops[-1], InChild), smallest
    assert isinstance(smallest.ops[-1].op, Read), smallest
    assert len(smallest.ops) <= 4, smallest


def test_mismatch_text_is_a_regression_test(kernel_side: KernelSide) -> None:
    ops: list[Op] = [
        Mmap(3, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED),
        Mremap(3, 2, 3),
    ]
    mismatch = compare.compare(
        ops, kernel=kernel_side, model=Distorted(kernel_side, efault_for_enomem)
    )
    assert mismatch is not None
    assert mismatch.step == 1
    text = str(mismatch)
    assert "kernel:    -ENOMEM; [-2,3) ---p | [3,5) rw-p | [5,18) ---p" in text
    assert "distorted: -EFAULT; [-2,3) ---p | [3,5) rw-p | [5,18) ---p" in text
    listing = text[text.index("ops = ") + len("ops = ") :]
    namespace = {name: getattr(ops_module, name) for name in ops_module.__all__}
    assert eval(listing, namespace) == ops


def test_initial_layout_is_compared(kernel_side: KernelSide) -> None:
    good = kernel_side.run([])
    bad = SequenceResult(Layout(()), ())
    mismatch = compare_results([], good, bad)
    assert mismatch is not None
    assert mismatch.step == compare.SETUP_STEP
    assert "after the reset" in str(mismatch)
    assert compare_results([], good, good) is None


def test_shrink_respects_its_budget(kernel_side: KernelSide) -> None:
    distorted = Distorted(kernel_side, efault_for_enomem)
    calls = 0

    def check(ops: Sequence[Op]) -> Mismatch | None:
        nonlocal calls
        calls += 1
        return compare.compare(ops, kernel=kernel_side, model=distorted)

    ops: list[Op] = [
        Mmap(page, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) for page in range(8)
    ]
    ops.append(Mremap(5, 1, 3))
    first = check(ops)
    assert first is not None
    calls = 0
    small = shrink(first, check, budget=5)
    assert calls <= 5
    assert len(small.ops) <= len(ops)
    assert len(shrink(first, check).ops) == 1


def test_command_kernel_only() -> None:
    out = io.StringIO()
    code = main(["conformance", "-n", "30", "--seed", "3", "--kernel-only"], out)
    text = out.getvalue()
    if text.startswith("safemm conformance: skipped"):
        pytest.skip(text)
    assert code == 0
    assert platform.release() in text
    assert "vm.overcommit_memory=" in text
    assert "kernel only: 30 sequences (seed 3)" in text
    assert "window never disturbed" in text
