"""The ported scenarios of the kernel's selftests (``safemm.conformance.selftests``).

One test per scenario: the running kernel must meet the selftest's expectation (or miss it
exactly where the scenario says the kernel differs, which is then reported, not dropped),
and the model must agree with the kernel at every step.
"""

from __future__ import annotations

import dataclasses
import io

import pytest

from safemm.conformance import compare
from safemm.conformance.kernel_side import KernelSide
from safemm.conformance.model_side import ModelSide
from safemm.conformance.selftests import SCENARIOS, run_scenario

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@pytest.mark.parametrize("name", list(BY_NAME))
def test_selftest_scenario(kernel_side: KernelSide, model_side: ModelSide, name: str) -> None:
    report = run_scenario(BY_NAME[name], kernel_side, model_side)
    assert report.kernel_as_expected, f"{kernel_side.info.describe()}\n{report.summary()}"
    assert report.mismatch is None, f"\n{kernel_side.info.describe()}\n{report.mismatch}"


def test_scenarios_are_many_named_and_cited() -> None:
    assert len(SCENARIOS) >= 20
    assert len(BY_NAME) == len(SCENARIOS)
    files = {scenario.source.rsplit("/", 1)[-1] for scenario in SCENARIOS}
    assert {"merge.c", "mremap_dontunmap.c", "map_fixed_noreplace.c", "mlock2-tests.c"} <= files
    for scenario in SCENARIOS:
        assert scenario.source.startswith("tools/testing/selftests/"), scenario.name
        assert scenario.doc, scenario.name
        assert all(0 <= index < len(scenario.ops) for index in scenario.outcomes), scenario.name


def test_unmet_expectations_are_found(kernel_side: KernelSide) -> None:
    """The checks can fail: a wrong VMA, a wrong byte and a wrong errno are each reported."""
    merge = BY_NAME["merge.c:mprotect_unfaulted_left"]
    result = kernel_side.run(merge.ops)
    assert merge.unmet(result) == []
    wrong_vma = dataclasses.replace(merge, vmas=((1, 4),))
    assert wrong_vma.unmet(result) == [
        f"parent: [1,4) is not one VMA in {result.steps[-1].layout}"
    ]
    noreplace = BY_NAME["map_fixed_noreplace.c:main"]
    result = kernel_side.run(noreplace.ops)
    wrong_errno = dataclasses.replace(noreplace, outcomes={**noreplace.outcomes, 4: "-EINVAL"})
    assert len(wrong_errno.unmet(result)) == 1
    succeeding = dataclasses.replace(noreplace, outcomes={})
    assert len(succeeding.unmet(result)) == 4  # the four EEXISTs are not successes
    cow = BY_NAME["cow.c:test_cow_in_parent"]
    result = kernel_side.run(cow.ops)
    leaked = dataclasses.replace(cow, outcomes={**cow.outcomes, 4: "ok 0xff"})
    assert leaked.unmet(result) == [f"step 4 {cow.ops[4]!r}: expected ok 0xff, got ok 0x1"]


def test_command_runs_the_scenarios(kernel_side: KernelSide) -> None:
    out = io.StringIO()
    assert compare.run_command(selftests=True, out=out) == 0
    text = out.getvalue()
    assert f"selftest scenarios: {len(SCENARIOS)}; " in text
    assert (
        "merge.c:forked_source_vma: kernel meets the selftest's expectation; model agrees" in text
    )
