"""Smoke tests of :mod:`safemm.bench`: tiny sizes, result structure only (no timing claims)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from safemm import bench


def _check(results: list[bench.BenchResult]) -> None:
    for r in results:
        assert r.name
        assert r.small > 0
        assert r.large > 0
        assert r.ratio > 0
        assert r.small_label
        assert r.large_label
        assert r.verdict in {"pass", "FAIL", "info"}
        assert (r.verdict == "info") == (r.target is None and r.min_per_s is None)
        d = r.as_dict()
        assert set(d) >= {"name", "small_ns", "large_ns", "ratio", "target", "verdict", "per_s"}
        json.dumps(d)


def test_vma_ops() -> None:
    results = bench.bench_vma_ops(4, 16, reps=3, batches=2, lookup_reps=8)
    _check(results)
    names = [r.name.strip() for r in results]
    assert names == [
        "VMA lookup (read of a mapped page)",
        "raw maple-tree vma_lookup",
        "mmap, no address hint",
        "munmap",
        "mprotect 1 page mid-VMA (split)",
        "mprotect back (merge)",
    ]
    assert [r.target for r in results] == [3, None, 3, 3, 3, None]
    assert results[0].small_label == "4 VMAs"
    assert results[0].large_label == "16 VMAs"
    nodes = results[2].details["gap_search_nodes_large"]
    assert isinstance(nodes, int)
    assert nodes > 0


def test_lru_reclaim() -> None:
    (r,) = bench.bench_lru_reclaim(shape=(4, 3, 2), reps=3, batches=2)
    _check([r])
    assert r.target == 20
    assert r.details == {"vmas_large": 12, "mapping_large": 2}


def test_vma_ops_needs_two_vmas() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        bench.bench_vma_ops(1, 16, reps=1, batches=1, lookup_reps=1)


def test_unmap_mapping_range() -> None:
    (r,) = bench.bench_unmap_mapping_range(n_procs=4, vmas_per_proc=3, n_hits=2, reps=3, batches=2)
    _check([r])
    assert r.target == 20
    assert r.details["vmas_large"] == 12
    assert r.details["overlapping_large"] == 2
    assert r.details["nodes_visited_small"] == 1
    assert isinstance(r.details["nodes_visited_large"], int)
    assert r.details["nodes_visited_large"] >= 2


def test_ftruncate() -> None:
    (r,) = bench.bench_ftruncate(n_procs=3, vmas_per_proc=4, n_hits=2, reps=3, batches=2)
    _check([r])
    assert r.target == 20
    assert r.details == {"vmas_large": 12, "overlapping_large": 2}
    with pytest.raises(ValueError, match="n_hits"):
        bench.bench_ftruncate(n_procs=1, vmas_per_proc=1, n_hits=2, reps=1, batches=1)


def test_safe_layer() -> None:
    (r,) = bench.bench_safe_layer(reps=3, batches=2)
    _check([r])
    assert r.target == 1.15
    assert (r.small_label, r.large_label) == ("raw model", "safe layer")


def test_switch() -> None:
    results = bench.bench_switch(reps=20, batches=2)
    _check(results)
    assert [r.target for r in results] == [5, None]
    assert results[0].small_label == "mutex lock+unlock"
    for r in results:
        rate = r.details["switches_per_s"]
        assert isinstance(rate, int) and rate > 0


def test_switch_mechanism() -> None:
    results = bench.bench_switch_mechanism(reps=20, batches=2)
    _check(results)
    assert [r.verdict for r in results] == ["info", "info"]
    assert results[0].small_label == "greenlet switch"
    assert {"greenlet_switches_per_s", "thread_switches_per_s"} <= set(results[0].details)


def test_schedules() -> None:
    (r,) = bench.bench_schedules(reps=2, batches=2)
    _check([r])
    assert r.target is None and r.min_per_s == 200
    assert r.details["schedules_per_s"] == round(r.per_s)
    steps = r.details["switch_points_per_schedule"]
    assert isinstance(steps, int) and steps > 3 * bench.SCENARIO_OPS


def test_scenario_is_deterministic_per_seed() -> None:
    assert bench._scenario(3, concurrent=True) == bench._scenario(3, concurrent=True)
    assert bench._scenario(0, concurrent=False) == 0


def _in_git_checkout() -> bool:
    here = Path(bench.__file__).resolve().parent
    try:
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


@pytest.mark.skipif(not _in_git_checkout(), reason="needs a git checkout")
def test_one_task_against_head() -> None:
    results = bench.bench_one_task("HEAD", batches=1, scale=0.01)
    _check(results)
    assert [r.name.removeprefix("one task: ") for r in results] == list(
        bench.ONE_TASK_NAMES.values()
    )
    assert all(r.target == 1.05 for r in results)
    assert results[0].small_label == "HEAD"


def test_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        bench.BenchResult("a", 1000.0, 2000.0, 2.0, "s", "l", 3),
        bench.BenchResult("b", 10.0, 50.0, 5.0, "s", "l", 3, {"nodes": 7}),
        bench.BenchResult("c", 1.0, 1.0, 1.0, "x", "y"),
        bench.BenchResult("d", 1.0, 1e6, 1.0, "x", "y", min_per_s=200),
        bench.BenchResult("e", 1.0, 1e8, 1.0, "x", "y", min_per_s=200),
    ]
    assert [r.verdict for r in results] == ["pass", "FAIL", "info", "pass", "FAIL"]
    table = bench.format_table(results)
    header = table.splitlines()[0].split()
    assert header == ["benchmark", "small", "large", "ratio", "target", "verdict"]
    assert "nodes=7" in table

    code = bench.main(["--json", "--small", "4", "--large", "8", "--scale", "0.01", "--no-static"])
    doc = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert (
        len(doc["results"]) == 17
    )  # 13 + the fuzzer (sequential, with races), ftruncate, reclaim
    assert {r["verdict"] for r in doc["results"]} <= {"pass", "FAIL", "info"}


@pytest.mark.xdist_group("mypy")
def test_static_check_against_mypy() -> None:
    """One pair of runs on a small path: the structure of the result, not its speed."""
    (r,) = bench.bench_static_check(runs=1, paths=["tests/atomic/accept"])
    assert r.name == "safemm check (warm cache) vs mypy"
    assert r.target == 2.0
    assert r.small > 0
    assert r.large > 0
    assert r.ratio > 0
    assert r.small_label == "mypy tests/atomic/accept"


def test_fuzz() -> None:
    results = bench.bench_fuzz(examples=3)
    _check(results)
    assert [r.name for r in results] == [
        "fuzz_driver step, sequential",
        "fuzz_driver step, with races",
    ]
    for r in results:
        assert r.ratio >= 1  # the whole step costs at least its call
        d = r.details
        assert d["steps"] == d["steps"] and isinstance(d["steps_per_s"], int)
        parts = [d["calls_pct"], d["checks_pct"], d["hypothesis_and_fuzzer_pct"]]
        assert all(isinstance(p, float) for p in parts)
        assert 99 <= sum(p for p in parts if isinstance(p, float)) <= 101
