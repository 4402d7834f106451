"""The comparison report: run each strategy over each workload, collect what the driver did
(its own statistics) and what the kernel did (the model's counters), and render the result as
text tables, JSON or a chart.

Everything but the model time is deterministic for a seed: the workloads draw every choice
from the seed, the model has no concurrency, and fault injection uses the kernel's seeded
generator. Times come from :func:`time.perf_counter` around each run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .drivers import STRATEGIES
from .userspace import Harness, Tally
from .workloads import WORKLOADS, Workload

__all__ = [
    "COSTS",
    "ROWS",
    "RunResult",
    "render_json",
    "render_text",
    "run_demo",
    "run_one",
]


@dataclass
class RunResult:
    """One strategy over one workload."""

    workload: str
    strategy: str
    tally: Tally
    #: The model's counters over the workload (``Counters.delta``), teardown excluded.
    counters: dict[str, int]
    #: The driver's own statistics (:class:`~safemm.demo.drivers.DriverStats`).
    driver: dict[str, int]
    #: Failure and fallback paths the driver took, by name.
    paths: dict[str, int]
    #: Failures fault injection caused, by site.
    injected: dict[str, int]
    #: Model time of the workload (not deterministic).
    seconds: float = 0.0

    @property
    def transactions(self) -> int:
        """Transactions delivered and read back intact."""
        return self.tally.transactions

    def per_txn(self, value: float) -> float:
        """``value`` per transaction."""
        return value / self.transactions if self.transactions else 0.0


def run_one(workload: Workload, strategy: str, seed: int = 0) -> RunResult:
    """Run ``workload`` with the driver of ``strategy`` on a fresh machine, then check the
    machine (no splat, no leak, every invariant; :meth:`Harness.finish` raises otherwise)."""
    h = Harness(
        STRATEGIES[strategy], seed=seed, nr_pages=workload.nr_pages, faults=workload.faults
    )
    before = h.kernel.counters.snapshot()
    t0 = time.perf_counter()
    workload.run(h)
    seconds = time.perf_counter() - t0
    after = h.kernel.counters.snapshot()
    injected = dict(h.kernel.fault_inject.injected)
    h.finish()
    return RunResult(
        workload=workload.name,
        strategy=strategy,
        tally=h.tally,
        counters={k: v - before.get(k, 0) for k, v in after.items()},
        driver=h.driver.stats.snapshot(),
        paths=dict(sorted(h.driver.stats.paths.items())),
        injected=injected,
        seconds=seconds,
    )


def run_demo(seed: int = 0, workloads: Sequence[str] | None = None) -> list[RunResult]:
    """Every strategy over every named workload (all of them by default)."""
    names = list(WORKLOADS) if not workloads else list(workloads)
    for name in names:
        if name not in WORKLOADS:
            raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return [run_one(WORKLOADS[w], s, seed) for w in names for s in STRATEGIES]


# ---------------------------------------------------------------------------- the table


def _errs(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return " ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _slash(*values: int) -> str:
    return " / ".join(str(v) for v in values)


Row = tuple[str, Callable[[RunResult], str]]

#: The deterministic rows of a workload's table: label, cell.
ROWS: list[Row] = [
    ("transactions (delivered, read back intact)", lambda r: str(r.transactions)),
    ("received, unreadable (user unmapped it)", lambda r: str(r.tally.unreadable)),
    ("sends refused", lambda r: _errs(dict(r.tally.send_failed))),
    ("receives refused", lambda r: _errs(dict(r.tally.recv_failed))),
    (
        "pages allocated / reused (still on the lru)",
        lambda r: _slash(r.driver["pages_allocated"], r.driver["pages_reused"]),
    ),
    ("pages inserted (vm_insert_page)", lambda r: str(r.driver["pages_inserted"])),
    ("pages faulted in (->fault)", lambda r: str(r.driver["pages_faulted"])),
    ("PTEs zapped (any cause)", lambda r: str(r.counters["ptes_zapped"])),
    ("zap / unmap calls by the driver", lambda r: str(r.driver["zap_requests"])),
    ("pages reclaimed by the shrinker", lambda r: str(r.driver["pages_reclaimed"])),
    ("shrinker skips (lock busy, or mm gone)", lambda r: str(r.driver["shrinker_skips"])),
    (
        "reclaim: direct reclaims / shrinker scans",
        lambda r: _slash(r.counters["direct_reclaim"], r.counters["shrinker_scans"]),
    ),
    (
        "core reclaim: LRU folios scanned / freed",
        lambda r: _slash(
            r.counters["pgscan_kswapd"] + r.counters["pgscan_direct"],
            r.counters["pgsteal_kswapd"] + r.counters["pgsteal_direct"],
        ),
    ),
    (
        "rmap walks / PTEs they looked at",
        lambda r: _slash(r.counters["rmap_walk"], r.counters["rmap_pte"]),
    ),
    (
        "release_folio: asked / refused",
        lambda r: _slash(r.counters["release_folio"], r.counters["release_folio_refused"]),
    ),
    (
        "mmap_lock by driver: read / trylock / failed",
        lambda r: _slash(
            r.driver["mmap_read_lock"],
            r.driver["mmap_read_trylock"],
            r.driver["mmap_read_trylock_failed"],
        ),
    ),
    (
        "mmap_lock, all: read / write / trylock / failed",
        lambda r: _slash(
            r.counters["mmap_read_lock"],
            r.counters["mmap_write_lock"],
            r.counters["mmap_read_trylock"],
            r.counters["mmap_read_trylock_failed"],
        ),
    ),
    (
        "per-VMA lock by driver: hits / fallbacks",
        lambda r: _slash(r.driver["vma_lock_hits"], r.driver["vma_lock_fallbacks"]),
    ),
    (
        "per-VMA lock, all: hits / aborts / retries",
        lambda r: _slash(
            r.counters["vma_lock_success"],
            r.counters["vma_lock_abort"],
            r.counters["vma_lock_retry"],
        ),
    ),
    (
        "mm refs: mmgrab / mmget / mmput_async / failed",
        lambda r: _slash(
            r.counters["mmgrab"],
            r.counters["mmget"],
            r.counters["mmput_async"],
            r.counters["mmget_not_zero_failed"],
        ),
    ),
    (
        "user page faults / retried under mmap_lock",
        lambda r: _slash(
            r.counters["pgfault"] - r.counters["vma_lock_retry"], r.counters["vma_lock_retry"]
        ),
    ),
]


def _mm_lock_ops(r: RunResult) -> int:
    c = r.counters
    return c["mmap_read_lock"] + c["mmap_write_lock"] + c["mmap_read_trylock"]


#: Per-transaction costs (for the chart and the JSON): label, value of one run.
COSTS: list[tuple[str, Callable[[RunResult], float]]] = [
    ("mmap_lock acquisitions / txn", lambda r: r.per_txn(_mm_lock_ops(r))),
    (
        "mmap_lock taken by the driver / txn",
        lambda r: r.per_txn(r.driver["mmap_read_lock"] + r.driver["mmap_read_trylock"]),
    ),
    (
        "mm reference ops / txn",
        lambda r: r.per_txn(
            sum(r.counters[k] for k in ("mmgrab", "mmget", "mmput", "mmput_async", "mmdrop"))
        ),
    ),
    (
        "user page faults / txn",
        lambda r: r.per_txn(r.counters["pgfault"] - r.counters["vma_lock_retry"]),
    ),
    ("model time / txn (us)", lambda r: r.per_txn(r.seconds * 1e6)),
]


def render_text(results: Sequence[RunResult], seed: int, times: bool = True) -> str:
    """The report: one table per workload (a column per strategy), the checks, and the
    failure paths of the runs with fault injection."""
    strategies = list(STRATEGIES)
    out = [f"safemm demo: {len(strategies)} binder-style drivers, seed {seed}", ""]
    by = {(r.workload, r.strategy): r for r in results}
    workloads = list(dict.fromkeys(r.workload for r in results))
    width = max(len(label) for label, _ in ROWS) + 2
    for name in workloads:
        w = WORKLOADS[name]
        runs = [by[name, s] for s in strategies]
        rows = [(label, [cell(r) for r in runs]) for label, cell in ROWS]
        if times:
            us = [f"{r.per_txn(r.seconds * 1e6):.0f}" for r in runs]
            rows.append(("model time per transaction (us)", us))
        cols = [
            max(len(s), *(len(cells[i]) for _, cells in rows)) for i, s in enumerate(strategies)
        ]
        out.append(f"== {name}: {w.description}")
        if w.faults:
            sites = ", ".join(f"{k} {v:.0%}" for k, v in w.faults.items())
            out.append(f"   fault injection: {sites}")
        head = "  ".join(s.rjust(c) for s, c in zip(strategies, cols, strict=True))
        out.append(" " * width + head)
        for label, cells in rows:
            out.append(
                label.ljust(width)
                + "  ".join(v.rjust(c) for v, c in zip(cells, cols, strict=True))
            )
        out.append("")
    out.append(
        f"checks: all {len(results)} runs ended with dmesg empty, no leak, every invariant "
        "holding, and every byte read equal to the byte sent"
    )
    injected = [r for r in results if r.injected and any(r.injected.values())]
    if injected:
        out.append("")
        out.append("failure and fallback paths taken under fault injection:")
        for r in injected:
            inj = ", ".join(f"{k} {v}" for k, v in r.injected.items())
            out.append(f"  {r.strategy} ({r.workload}; injected: {inj})")
            paths = ", ".join(f"{k} {v}" for k, v in r.paths.items())
            out.append(f"    {paths}")
    return "\n".join(out) + "\n"


def result_dict(r: RunResult, times: bool = True) -> dict[str, object]:
    """One run as plain data."""
    d: dict[str, object] = {
        "transactions": r.transactions,
        "bytes_verified": r.tally.bytes_verified,
        "sends": r.tally.sends,
        "send_failed": dict(sorted(r.tally.send_failed.items())),
        "recv_failed": dict(sorted(r.tally.recv_failed.items())),
        "unreadable": r.tally.unreadable,
        "driver": r.driver,
        "paths": r.paths,
        "kernel": {k: v for k, v in r.counters.items() if v},
        "fault_injected": r.injected,
        "per_transaction": {
            label: round(value(r), 4) for label, value in COSTS if times or "time" not in label
        },
    }
    if times:
        d["seconds"] = r.seconds
    return d


def render_json(results: Sequence[RunResult], seed: int, times: bool = True) -> str:
    """The same numbers, for machines."""
    runs: dict[str, dict[str, object]] = {}
    for r in results:
        runs.setdefault(r.workload, {})[r.strategy] = result_dict(r, times)
    workloads = {
        name: {
            "description": WORKLOADS[name].description,
            "nr_pages": WORKLOADS[name].nr_pages,
            "faults": WORKLOADS[name].faults,
            "runs": by_strategy,
        }
        for name, by_strategy in runs.items()
    }
    doc = {"seed": seed, "strategies": list(STRATEGIES), "workloads": workloads}
    return json.dumps(doc, indent=2) + "\n"
