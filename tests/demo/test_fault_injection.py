"""With fault injection on (failing trylocks, lock_vma_under_rcu and page allocations), every
failure and fallback path of each driver runs, and the run still ends clean."""

from __future__ import annotations

import pytest

from safemm.demo.report import run_one
from safemm.demo.workloads import WORKLOADS

#: The paths each strategy must take in the fault-injection workload.
EXPECTED = {
    "eager-insert": {
        "send.alloc_failed",
        "send.no_space",
        "send.no_target",
        "send.mm_dead",
        "insert.vma_lock_fallback",
        "insert.no_vma",
        "insert.foreign_vma",
        "insert.moved_vma",
        "insert.stale_pte",
        "recv.unmapped",
        "recv.not_owner",
        "free.bad_addr",
        "shrink.skip_mm",
        "shrink.skip_mutex",
        "shrink.skip_mmap_lock",
        "shrink.skip_spinlock",
        "shrink.vma_gone",
    },
    "insert-on-receive": {
        "send.alloc_failed",
        "send.no_space",
        "send.no_target",
        "send.unmapped",
        "insert.vma_lock_fallback",
        "insert.no_vma",
        "insert.foreign_vma",
        "insert.moved_vma",
        "insert.stale_pte",
        "recv.not_owner",
        "free.bad_addr",
        "shrink.skip_mm",
        "shrink.skip_mutex",
        "shrink.skip_mmap_lock",
        "shrink.skip_spinlock",
        "shrink.vma_gone",
    },
    "fault-and-unmap": {
        "send.alloc_failed",
        "send.no_space",
        "send.no_target",
        "send.unmapped",
        "recv.unmapped",
        "free.bad_addr",
        "shrink.skip_spinlock",
        "shrink.skip_unmap_trylock",
    },
}


@pytest.mark.parametrize("strategy", list(EXPECTED))
def test_every_failure_path_runs_and_recovers(strategy: str) -> None:
    """All three sites inject failures; each expected path is taken; the run delivers and
    ends with no splat, no leak and every invariant (run_one raises otherwise)."""
    r = run_one(WORKLOADS["fault-injection"], strategy, seed=0)
    assert all(r.injected[site] > 0 for site in ("trylock", "lock_vma_under_rcu", "alloc_page"))
    missing = EXPECTED[strategy] - set(r.paths)
    assert not missing, f"paths never taken: {sorted(missing)}"
    assert r.transactions > 0
    assert r.driver["shrinker_skips"] > 0
    assert r.tally.send_failed["ENOMEM"] > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("strategy", list(EXPECTED))
def test_other_seeds(strategy: str, seed: int) -> None:
    """Other seeds draw other failures, and every run still ends clean."""
    r = run_one(WORKLOADS["fault-injection"], strategy, seed=seed)
    assert r.transactions > 0
