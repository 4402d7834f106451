"""``fuzz_driver``: search for the distinct failures of one driver, within a budget.

It runs the state machine of :func:`~safemm.fuzz.driver_machine` under hypothesis, seeded and
without a database (so a seed names a run). When hypothesis finds and shrinks a failure, the
failure is recorded and the search starts again with what is left of the budget, this time
ending any example that hits a known failure quietly — so each distinct failure (by exception
type and contract) is reported once, with its own shrunk reproducer.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hseed
from hypothesis.stateful import run_state_machine_as_test

from ._machine import Session, ShrinkBudgetSpent, configured, factory_reference
from ._minimize import minimize as shorten
from ._rules import Ioctls
from ._world import Coverage, FailureFound, FuzzFailure

__all__ = ["CONTRACT_OPERATIONS", "FuzzReport", "fuzz_driver"]

#: Steps per example (hypothesis's ``stateful_step_count``).
STEPS = 40
#: Which contracts an operation of the kernel checks (for the coverage summary): a
#: contract counts as exercised when one of its operations ran at least once.
CONTRACT_OPERATIONS: dict[str, tuple[str, ...]] = {
    "insert_page": (
        "insert-needs-mixedmap",
        "insert-pfnmap",
        "foreign-vma",
        "insert-hugetlb",
        "vma-locked",
        "vma-attached",
        "page-refcount",
    ),
    "zap_calls": ("zap-range", "foreign-vma", "vma-locked", "vma-attached"),
    "mmap_read_lock": ("mmap-lock-held", "lock-order", "recursive-lock", "lock-held-return"),
    "mmap_write_lock": ("mmap-write-lock-held", "vma-write-locked", "lock-order"),
    "mutex_lock": ("might-sleep", "lock-order", "recursive-lock", "unlock-balance"),
    "trylock": ("lock-order", "unlock-balance"),
    "vma_lock_success": ("vma-locked", "mm-users"),
    "mmgrab": ("leak",),
    "mmget": ("mm-users", "leak"),
    "pgalloc": ("page-refcount", "leak", "might-sleep"),
    "pgfault": ("fault-progress", "vma-locked"),
    "shrinker_scans": ("lock-order", "might-sleep", "schedule-atomic"),
    "direct_reclaim": ("lock-order",),
    "unmap_mapping_range": ("might-sleep",),
}
#: Contracts checked at every hook return and at every step, whatever ran.
ALWAYS = ("stale-handle", "lock-held-return", "leak", "unlock-balance")
#: Contracts checked by the ``->mmap`` path and the calls that change a driver's VMA.
HOOK_CONTRACTS = {
    "->mmap": ("mmap-hook", "live-flags", "mixedmap-pfnmap-exclusive", "flags-sticky"),
    "->fault": ("fault-progress",),
    "->close": ("split-range", "vma-attached"),
}
OPERATION_CONTRACTS = {
    "mprotect": ("access-after-insert",),
    "userfaultfd": ("mixedmap-uffd",),
    "munmap": ("split-range",),
    "race": ("deadlock", "livelock", "schedule-atomic"),
}


@dataclass
class FuzzReport:
    """What :func:`fuzz_driver` found.

    Attributes:
        failures: each distinct failure once, with its shrunk reproducer.
        coverage: hooks run, outcomes, operations, kernel counters, faults injected.
        driver: the factory's name.
        examples: the budget (programs hypothesis generates, shrinking not counted).
        seed: the seed of the run (``fuzz_driver(..., seed=...)`` repeats it).
        concurrency: whether races were run.
        elapsed: seconds.
    """

    driver: str
    examples: int
    seed: int
    concurrency: bool
    failures: list[FuzzFailure] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """No failure."""
        return not self.failures

    @property
    def contracts(self) -> list[str]:
        """The contracts whose checks ran (see :data:`CONTRACT_OPERATIONS`)."""
        cov = self.coverage
        seen = set(ALWAYS)
        for counter, ids in CONTRACT_OPERATIONS.items():
            if cov.counters.get(counter):
                seen.update(ids)
        for hook in cov.hooks:
            for suffix, ids in HOOK_CONTRACTS.items():
                if hook.endswith(suffix):
                    seen.update(ids)
        for op, ids in OPERATION_CONTRACTS.items():
            if cov.operations.get(op):
                seen.update(ids)
        return sorted(seen)

    def summary(self) -> str:
        """The coverage summary: what ran, how often, and what it ended in."""
        cov = self.coverage
        mode = "with races" if self.concurrency else "sequential"
        lines = [
            f"fuzzed {self.driver}: {cov.examples} programs ({self.examples} budget, seed "
            f"{self.seed}, {mode}), {cov.steps} steps in {self.elapsed:.1f}s "
            f"({cov.steps / max(self.elapsed, 1e-9):.0f} steps/s); "
            f"{len(self.failures)} distinct failure(s)",
            "hooks run: "
            + (", ".join(f"{h} x{n}" for h, n in sorted(cov.hooks.items())) or "none"),
            "operations: " + ", ".join(f"{k} x{n}" for k, n in sorted(cov.operations.items())),
            "outcomes: " + ", ".join(f"{k} x{n}" for k, n in cov.outcomes.most_common()),
            "faults injected: "
            + (", ".join(f"{k} x{n}" for k, n in sorted(cov.injected.items())) or "none"),
            f"contracts exercised ({len(self.contracts)}): " + ", ".join(self.contracts),
        ]
        return "\n".join(lines)

    def report(self) -> str:
        """Each distinct failure (what, contract, splat, reproducer), then the summary."""
        parts: list[str] = []
        for i, f in enumerate(self.failures, 1):
            verified = {True: "reproduces", False: "NOT reproduced by exec", None: "not run"}
            parts.append(
                f"failure {i}: {f.what}\n"
                f"  contract: {f.contract or '-'}; kind: {f.kind}; at: {f.step}; "
                f"{f.steps} steps; reproducer {verified[f.verified]}"
                + (f"\n  raised at: {_short(f.origin)}" if f.kind == "exception" else "")
            )
            if f.splat:
                parts.append(f.splat)
            parts.append("reproducer:\n" + f.reproducer)
        parts.append(self.summary())
        return "\n\n".join(parts)


def _short(path: str) -> str:
    """``file:line`` relative to the current directory when it is under it."""
    cwd = os.getcwd() + os.sep
    return path[len(cwd) :] if path.startswith(cwd) else path


def _failure_in(e: BaseException) -> FuzzFailure | None:
    if isinstance(e, FailureFound):
        return e.failure
    for sub in getattr(e, "exceptions", ()):
        if isinstance(sub, BaseException):
            f = _failure_in(sub)
            if f is not None:
                return f
    return None


def fuzz_driver(
    factory: Callable[[], object],
    *,
    ioctls: Ioctls | None = None,
    examples: int = 200,
    seed: int | None = None,
    concurrency: bool = False,
    max_failures: int = 8,
    minimize: bool = True,
    shrink_time: float | None = 10.0,
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """Drive the driver ``factory()`` makes the way hostile and careless user space would,
    until something breaks; return each distinct failure with the smallest program that
    shows it.

    Args:
        factory: returns a fresh driver (a ``FileOperations``); called once per program and
            registered at ``/dev/fuzz``.
        ioctls: ioctl number → a hypothesis strategy for its argument, or a function of the
            calling process's mappings (a tuple of :class:`UserMapping`) that returns one.
            None: small and random command numbers with hostile arguments (nothing, small
            integers, addresses in the caller's mappings, bytes).
        examples: programs to generate (shrinking a failure is not counted).
        seed: seeds the search (None: a random seed, reported in ``FuzzReport.seed``).
        concurrency: also run races: several threads and processes issue calls at once,
            with kswapd running the shrinkers; the schedule is drawn by hypothesis and shrunk
            with the program.
        max_failures: stop after this many distinct failures.
        minimize: run each reproducer (``FuzzFailure.verified`` says whether it failed the
            same way) and delete the statements it does not need.
        shrink_time: seconds hypothesis may spend shrinking each failure (the statement
            deletion of ``minimize`` comes after, and is quick). ``None``: no clock at all —
            both shrink until nothing shorter fails, so the reproducers depend only on the
            seed, not on how loaded the machine is (slower; what a regression test wants).
        progress: called about once a second with the report so far.
    """
    n: object = examples
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"fuzz_driver: examples must be a positive int, got {examples!r}")
    if not callable(factory):
        raise TypeError(f"fuzz_driver: factory {factory!r} is not callable")
    if seed is None:
        seed = random.randrange(2**32)
    expr, imp = factory_reference(factory)
    name = getattr(factory, "__qualname__", None)
    report = FuzzReport(
        name if isinstance(name, str) else repr(factory), examples, seed, concurrency
    )
    start = time.monotonic()

    def tick() -> None:
        report.elapsed = time.monotonic() - start
        if progress is not None:
            progress(report)

    budget = examples
    rounds = 0
    known: set[tuple[str, str]] = set()
    while budget > 0 and len(report.failures) < max_failures:
        session = Session(
            factory,
            expr,
            imp,
            ioctls,
            concurrency,
            coverage=report.coverage,
            ignore=frozenset(known),
            progress=tick,
            shrink_time=shrink_time,
        )
        machine = hseed(seed + rounds)(configured(session))
        rounds += 1
        cfg = settings(
            max_examples=budget,
            stateful_step_count=STEPS,
            database=None,
            deadline=None,
            derandomize=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
        )
        try:
            run_state_machine_as_test(machine, settings=cfg)
        except (Exception, ShrinkBudgetSpent) as e:
            # The best failure is the last one seen (each failing shrink improves on the one
            # before); hypothesis's own report of it may be a flaky-replay error.
            failure = session.last or _failure_in(e)
            if failure is None:
                raise
            if minimize:
                shorten(failure, expr, factory, None if shrink_time is None else 20.0)
            report.failures.append(failure)
            known.add(failure.key)
            budget -= max(1, session.generated)
            continue
        break
    report.elapsed = time.monotonic() - start
    return report
