"""Each driver under each workload: every run ends clean (Harness.finish checks dmesg,
leaks and invariants, and every read is checked against what was sent), and the numbers say
what each strategy is."""

from __future__ import annotations

import pytest

from safemm.demo.drivers import STRATEGIES
from safemm.demo.report import RunResult, run_one
from safemm.demo.workloads import WORKLOADS

_cache: dict[tuple[str, str], RunResult] = {}


def result(workload: str, strategy: str) -> RunResult:
    """The run of ``strategy`` over ``workload`` with seed 0 (run once per session)."""
    key = (workload, strategy)
    if key not in _cache:
        _cache[key] = run_one(WORKLOADS[workload], strategy, seed=0)
    return _cache[key]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_runs_clean(workload: str, strategy: str) -> None:
    """The run delivers transactions and leaves a clean machine; what the driver did is
    consistent with its strategy."""
    r = result(workload, strategy)
    assert r.transactions > 0
    assert r.tally.bytes_verified > 0
    d = r.driver
    if strategy in ("fault-and-unmap", "lru-reclaim"):
        assert d["pages_inserted"] == d["mm_refs_taken"] == 0
        assert d["mmap_read_lock"] == d["mmap_read_trylock"] == 0
        assert d["vma_lock_hits"] == d["vma_lock_fallbacks"] == 0
        assert r.counters["mmget"] == r.counters["mmgrab"] == 0
        assert d["pages_faulted"] > 0
    else:
        assert d["pages_faulted"] == 0
        assert d["pages_inserted"] > 0
        assert d["mm_refs_taken"] > 0
    if strategy == "lru-reclaim":
        # The driver never zaps nor unmaps, and has no shrinker: core reclaim does it all.
        assert d["zap_requests"] == d["pages_reclaimed"] == 0
        assert r.counters["shrinker_scans"] == r.counters["unmap_mapping_range"] == 0
    if strategy == "eager-insert":
        # Every insert and every zap takes an mm_users reference, dropped with mmput_async.
        assert r.counters["mmput_async"] == r.counters["mmget"] == d["mm_refs_taken"]


@pytest.mark.parametrize("workload", ["ping-pong", "server-clients", "bursty-pressure"])
def test_same_work_for_every_strategy(workload: str) -> None:
    """Without mm churn, every strategy delivers the same transactions; the three with a
    shrinker also allocate and reclaim the same pages (they share the list_lru) and differ
    only in how the pages reach and leave the page tables. lru-reclaim, whose pages core
    reclaim keeps while they are used, allocates fewer."""
    runs = {s: result(workload, s) for s in STRATEGIES}
    assert len({r.transactions for r in runs.values()}) == 1
    shrinking = [r for s, r in runs.items() if STRATEGIES[s].uses_shrinker]
    assert len(shrinking) == 3
    assert len({r.driver["pages_allocated"] for r in shrinking}) == 1
    assert len({r.driver["pages_reclaimed"] for r in shrinking}) == 1
    lru = runs["lru-reclaim"]
    assert lru.driver["pages_allocated"] < shrinking[0].driver["pages_allocated"]


def test_insert_on_receive_halves_mm_references() -> None:
    """The sender of insert-on-receive touches no mm: only reclaim takes mm references."""
    eager = result("ping-pong", "eager-insert")
    recv = result("ping-pong", "insert-on-receive")
    assert recv.counters["mmget"] * 2 == eager.counters["mmget"]


def test_memory_pressure_reclaims_directly() -> None:
    """With 128 pages of RAM, allocations reclaim in the allocating task: the shrinker, or
    (lru-reclaim) core reclaim of the LRU, asking release_folio."""
    for s in STRATEGIES:
        r = result("bursty-pressure", s)
        assert r.counters["direct_reclaim"] > 0
        assert r.tally.send_failed["ENOMEM"] > 0
        if STRATEGIES[s].uses_shrinker:
            assert r.driver["pages_reclaimed"] > 0
        else:
            assert r.counters["pgsteal_direct"] > 0
            assert r.counters["release_folio"] > r.counters["release_folio_refused"] > 0


def test_fault_and_unmap_survives_churn_best() -> None:
    """Split, mremap, fork and a replaced mapping: fault-and-unmap delivers the most."""
    runs = {s: result("receiver-churn", s) for s in STRATEGIES}
    best = max(r.transactions for r in runs.values())
    assert runs["fault-and-unmap"].transactions == best
    assert runs["eager-insert"].paths["send.mm_dead"] > 0
    assert runs["eager-insert"].paths["insert.foreign_vma"] > 0
    assert runs["insert-on-receive"].paths["insert.foreign_vma"] > 0
