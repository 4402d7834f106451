"""Smoke tests of :mod:`safemm.bench`: tiny sizes, result structure only (no timing claims)."""

from __future__ import annotations

import json

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
        assert (r.verdict == "info") == (r.target is None)
        d = r.as_dict()
        assert set(d) >= {"name", "small_ns", "large_ns", "ratio", "target", "verdict"}
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


def test_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        bench.BenchResult("a", 1000.0, 2000.0, 2.0, "s", "l", 3),
        bench.BenchResult("b", 10.0, 50.0, 5.0, "s", "l", 3, {"nodes": 7}),
        bench.BenchResult("c", 1.0, 1.0, 1.0, "x", "y"),
    ]
    assert [r.verdict for r in results] == ["pass", "FAIL", "info"]
    table = bench.format_table(results)
    header = table.splitlines()[0].split()
    assert header == ["benchmark", "small", "large", "ratio", "target", "verdict"]
    assert "nodes=7" in table

    code = bench.main(["--json", "--small", "4", "--large", "8", "--scale", "0.01"])
    doc = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert len(doc["results"]) == 9
    assert {r["verdict"] for r in doc["results"]} <= {"pass", "FAIL", "info"}
