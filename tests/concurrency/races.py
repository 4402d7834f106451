"""What the race tests share: a small kernel per schedule, the exhaustive check of a correct
version, and the replay check of a failure."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm import Kernel
from safemm.explore import Exploration, Failure, explore, replay

Scenario = Callable[[Kernel], object]


def small_kernel() -> Kernel:
    """A fresh machine per schedule: little RAM (cheap to build), WARNs go to dmesg only
    (``fail_on_splat`` still fails the schedule)."""
    return Kernel(nr_pages=256, panic_on_warn=False)


def assert_dfs_passes(
    scenario: Scenario,
    preemptions: int,
    *,
    kernel_factory: Callable[[], Kernel] = small_kernel,
    schedules: int = 20_000,
) -> Exploration:
    """Every schedule with at most ``preemptions`` preemptions passes (the search ran out)."""
    ex = explore(
        scenario,
        strategy="dfs",
        schedules=schedules,
        preemptions=preemptions,
        kernel_factory=kernel_factory,
    )
    assert ex.exhausted and ex.ok, ex.report()
    assert ex.schedules_run > 1
    return ex


def assert_replays(
    scenario: Scenario,
    failure: Failure,
    *,
    kernel_factory: Callable[[], Kernel] = small_kernel,
) -> None:
    """``replay(token)`` ends in the same failure: same exception type and contract."""
    with pytest.raises(type(failure.error)) as e:
        replay(scenario, failure.schedule, kernel_factory=kernel_factory)
    assert getattr(e.value, "contract", None) == failure.contract
    assert str(e.value).splitlines()[0] == str(failure.error).splitlines()[0]
