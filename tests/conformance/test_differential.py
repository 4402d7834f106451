"""The model against the real kernel: the conformance suite itself.

Skips with the kernel side's reason off Linux or without gcc. The hypothesis test runs
``SAFEMM_CONFORMANCE_EXAMPLES`` sequences (default 300: the CI profile),
derandomized so CI is reproducible, and shrinks any disagreement with
hypothesis's own shrinker. ``safemm conformance -n 5000`` runs more.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis.control import current_build_context

from safemm.conformance.compare import Mismatch, compare, run, shrink
from safemm.conformance.generator import sequences
from safemm.conformance.kernel_side import KernelSide
from safemm.conformance.model_side import ModelSide
from safemm.conformance.ops import Op

CI_EXAMPLES = int(os.environ.get("SAFEMM_CONFORMANCE_EXAMPLES", "300"))


CI_SETTINGS = settings(
    max_examples=CI_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def final_replay() -> bool:
    """True while hypothesis replays the minimal failing example for its report."""
    return current_build_context().is_final


def test_model_agrees_with_kernel(kernel_side: KernelSide, model_side: ModelSide) -> None:
    def check(ops: Sequence[Op]) -> Mismatch | None:
        return compare(ops, kernel=kernel_side, model=model_side)

    def agree(ops: list[Op]) -> None:
        mismatch = check(ops)
        if mismatch is not None and final_replay():
            # hypothesis's list shrinking sometimes keeps leading no-op steps; finish
            # the job with the suite's delta debugger, for the report only
            mismatch = shrink(mismatch, check)
        assert mismatch is None, f"\n{kernel_side.info.describe()}\n{mismatch}"

    # given/settings applied as calls, not decorators: the decorated type has Any in
    # it, which the project's mypy settings reject on decorated functions
    CI_SETTINGS(given(ops=sequences())(agree))()


def test_seeded_run_agrees(kernel_side: KernelSide, model_side: ModelSide) -> None:
    report = run(100, seed=0, kernel=kernel_side, model=model_side, max_shrinks=3)
    assert report.rate == 1.0, report.summary()
