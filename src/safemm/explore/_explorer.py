"""``explore``: run a scenario under many schedules and report each distinct failure once.

A scenario is a function ``scenario(kernel)`` that builds its world (devices, processes,
mappings) on the fresh kernel it is given and calls ``kernel.concurrently(...)``. The explorer
runs it once per schedule, each time on a new kernel from ``kernel_factory``, with a
scheduling policy that makes the strategy's choices and records them. A schedule *fails* when
the scenario raises (a splat under ``panic_on_warn``, a :class:`Deadlock`, an assertion of
the scenario's own) or, with ``fail_on_splat``, when it leaves a report in ``dmesg``.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from safemm.model.errors import KernelBug, KernelWarning
from safemm.model.kernel import Kernel
from safemm.model.printk import WARN_KINDS
from safemm.model.runqueue import DEFAULT_MAX_STEPS

from ._strategies import (
    Chooser,
    DfsChooser,
    HypothesisChooser,
    NondeterministicScenario,
    PctChooser,
    RandomChooser,
    Recorder,
    ReplayChooser,
    ScheduleDiverged,
)
from ._token import Token

if TYPE_CHECKING:
    from safemm.model.runqueue import TraceEvent

__all__ = ["STRATEGIES", "Exploration", "Failure", "explore", "race_test", "replay"]

#: The strategies :func:`explore` knows.
STRATEGIES = ("random", "pct", "dfs", "hypothesis")

Scenario = Callable[[Kernel], object]


@dataclass
class Failure:
    """One distinct failure, with the smallest schedule that showed it.

    Attributes:
        schedule: the token that replays it (:func:`replay`).
        error: the exception the schedule ended with.
        trace: the interleaving, one line per switch point, ending in the splat.
        preemptions: switches away from a task that could have gone on.
        steps: decisions the schedule made.
        contract: the contract id of the report, if the failure is one.
    """

    schedule: str
    error: BaseException
    trace: str
    preemptions: int
    steps: int
    contract: str | None

    @property
    def what(self) -> str:
        """One line: the contract (or exception) and its first message line."""
        head = str(self.error).strip().splitlines()
        title = next((ln for ln in head if ln and not ln.startswith("---")), "")
        name = type(self.error).__name__
        return f"{name} [{self.contract}] {title}" if self.contract else f"{name}: {title}"


@dataclass
class Exploration:
    """What an exploration found.

    Attributes:
        failures: each distinct failure once, with its smallest schedule.
        schedules_run: schedules tried.
        exhausted: (``dfs``) every schedule within the preemption bound was tried.
        strategy: the strategy it ran.
        seed: the seed it ran with.
        preemptions: the preemption bound (``dfs``) or PCT depth - 1 it ran with.
        max_decisions: the most decisions one schedule made (PCT's ``k``).
        tasks: the most tasks (bodies and the kworker) one schedule ran (PCT's ``n``).
        stopped_by: why it stopped: ``"schedules"``, ``"exhausted"``, ``"time"`` or
            ``"failure"`` (hypothesis stops at its first failure).
        elapsed: seconds.
    """

    strategy: str
    seed: int
    preemptions: int
    failures: list[Failure] = field(default_factory=list)
    schedules_run: int = 0
    exhausted: bool = False
    max_decisions: int = 0
    tasks: int = 0
    stopped_by: str = "schedules"
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """No schedule failed."""
        return not self.failures

    @property
    def pct_bound(self) -> float:
        """PCT's per-schedule lower bound ``1/(n·k^(d-1))`` on finding a bug of depth
        ``d = preemptions + 1``, with this run's ``n`` and ``k``."""
        n = max(1, self.tasks)
        k = max(1, self.max_decisions)
        return 1.0 / (n * float(k) ** self.preemptions)

    @property
    def pct_cumulative(self) -> float:
        """The bound over all schedules run: ``1 - (1 - p)^N``."""
        p = self.pct_bound
        return 1.0 - math.exp(self.schedules_run * math.log1p(-p)) if p < 1 else 1.0

    def summary(self) -> str:
        """One paragraph: what ran, what it achieved, what failed."""
        lines = [
            f"{self.schedules_run} schedules ({self.strategy}, seed {self.seed}, "
            f"preemptions {self.preemptions}) in {self.elapsed:.1f}s; "
            f"{len(self.failures)} distinct failure(s); stopped by {self.stopped_by}"
        ]
        if self.strategy == "dfs":
            lines.append(
                "every schedule within the bound was tried"
                if self.exhausted
                else "NOT exhausted: schedules within the bound remain"
            )
        if self.strategy == "pct":
            lines.append(
                f"PCT bound for a bug of depth {self.preemptions + 1} with n={self.tasks} "
                f"tasks, k={self.max_decisions} decisions: {self.pct_bound:.2e} per schedule, "
                f"{self.pct_cumulative:.1%} over {self.schedules_run} schedules"
            )
        return "\n".join(lines)

    def report(self) -> str:
        """The summary, then each failure: what, its token, the interleaving."""
        parts = [self.summary()]
        for i, f in enumerate(self.failures, 1):
            parts.append(
                f"\nfailure {i}: {f.what}\nschedule: {f.schedule} ({f.preemptions} "
                f"preemption(s), {f.steps} decisions)\n{f.trace}"
            )
        return "\n".join(parts)


def _error_from_splats(k: Kernel) -> BaseException | None:
    if not k.splats:
        return None
    s = k.splats[0]
    text = "\n".join(k.dmesg)
    if s.kind in WARN_KINDS:
        return KernelWarning(text, s)
    return KernelBug(text, s)


def _run_once(
    scenario: Scenario,
    chooser: Chooser,
    kernel_factory: Callable[[], Kernel],
    max_steps: int,
    fail_on_splat: bool,
) -> tuple[BaseException | None, Recorder]:
    rec = Recorder(chooser)
    k = kernel_factory()
    if not isinstance(k, Kernel):
        raise TypeError(f"kernel_factory returned {k!r}, not a Kernel")
    k.sched_policy = rec
    k.max_steps = max_steps
    err: BaseException | None = None
    try:
        scenario(k)
    except (NondeterministicScenario, ScheduleDiverged):
        raise  # the explorer's own verdicts, not failures of the scenario
    except Exception as e:
        err = e
    if err is None and fail_on_splat:
        err = _error_from_splats(k)
    return err, rec


def _key(err: BaseException) -> tuple[str, str]:
    contract = getattr(err, "contract", None)
    if isinstance(contract, str):
        return type(err).__name__, contract
    first = (str(err).strip().splitlines() or [""])[0]
    return type(err).__name__, re.sub(r"0x[0-9a-f]+|\d+", "N", first)


def format_trace(rec: Recorder, err: BaseException | None) -> str:
    """The interleaving: each switch point of each ``concurrently`` run, one line, indented
    by task, preemptions marked; then the report the schedule ended with."""
    lines: list[str] = []
    for n, sched in enumerate(rec.schedulers):
        names = {c.index: c.name for c in sched.contexts}
        if len(rec.schedulers) > 1:
            lines.append(f"-- concurrently() run {n + 1} --")
        lines.extend(_event_line(e, names) for e in sched.trace)
    if err is not None:
        lines.append("")
        lines.append(str(err).rstrip())
    return "\n".join(lines)


def _event_line(e: TraceEvent, names: dict[int, str]) -> str:
    mark = {"preempted": "  <-- preempted", "blocked": "  (blocks)", "yield": "  (yields)"}
    indent = "    " * max(0, e.context)
    who = f"[{names.get(e.context, e.context)}] {e.task}"
    return f"{e.step:5d} {indent}{who}: {e.kind.value} {e.label}{mark.get(e.note, '')}"


def explore(
    scenario: Scenario,
    *,
    strategy: str = "pct",
    schedules: int = 1000,
    preemptions: int = 2,
    seed: int = 0,
    kernel_factory: Callable[[], Kernel] = Kernel,
    max_steps: int = DEFAULT_MAX_STEPS,
    time_limit: float | None = None,
    fail_on_splat: bool = True,
    progress: Callable[[Exploration], None] | None = None,
) -> Exploration:
    """Run ``scenario`` under up to ``schedules`` schedules; each distinct failure once.

    Args:
        scenario: ``scenario(kernel)`` builds its world and calls ``kernel.concurrently``.
        strategy: ``"random"`` (a uniformly random task at each decision), ``"pct"``
            (probabilistic concurrency testing with ``preemptions + 1`` as its depth; see
            :class:`~safemm.explore._strategies.PctChooser` for its guarantee), ``"dfs"``
            (every schedule with at most ``preemptions`` preemptions; ``exhausted`` says when
            it got through them all) or ``"hypothesis"`` (choices drawn by hypothesis, which
            shrinks a failing schedule to the fewest preemptions and steps; stops at the
            first failure).
        schedules: the most schedules to run.
        preemptions: the preemption bound (``dfs``) or PCT's depth minus one.
        seed: seeds the strategy's choices; the same seed explores the same schedules.
        kernel_factory: makes the fresh kernel of each schedule (``lambda:
            Kernel(panic_on_warn=False)``, ``lambda: Kernel(strict=False)``, ...).
        max_steps: switch points per ``concurrently`` run before it is a :class:`Livelock`.
        time_limit: stop after this many seconds (``stopped_by == "time"``).
        fail_on_splat: a schedule that leaves a report in ``dmesg`` fails even if nothing
            was raised (``panic_on_warn=False`` kernels).
        progress: called about once a second with the exploration so far.
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"explore: unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})"
        )
    checked: tuple[tuple[str, object], ...] = (
        ("schedules", schedules),
        ("preemptions", preemptions),
        ("seed", seed),
        ("max_steps", max_steps),
    )
    for name, v in checked:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"explore: {name} must be a non-negative int, got {v!r}")
    if schedules < 1 or max_steps < 1:
        raise ValueError("explore: schedules and max_steps must be at least 1")
    if not callable(scenario):
        raise TypeError(f"explore: scenario {scenario!r} is not callable")
    ex = Exploration(strategy, seed, preemptions)
    found: dict[tuple[str, str], Failure] = {}
    start = time.monotonic()
    last_progress = start

    def record(err: BaseException | None, rec: Recorder) -> None:
        nonlocal last_progress
        ex.schedules_run += 1
        ex.max_decisions = max(ex.max_decisions, len(rec.decisions))
        ex.tasks = max([ex.tasks, *(len(s.contexts) for s in rec.schedulers)])
        if err is not None:
            key = _key(err)
            old = found.get(key)
            pre = rec.preemptions
            if old is None or (pre, len(rec.decisions)) < (old.preemptions, old.steps):
                contract = getattr(err, "contract", None)
                found[key] = Failure(
                    rec.token(strategy, seed),
                    err,
                    format_trace(rec, err),
                    pre,
                    len(rec.decisions),
                    contract if isinstance(contract, str) else None,
                )
        now = time.monotonic()
        ex.elapsed = now - start
        if progress is not None and now - last_progress >= 1.0:
            last_progress = now
            ex.failures = list(found.values())
            progress(ex)

    def out_of_time() -> bool:
        if time_limit is not None and time.monotonic() - start >= time_limit:
            ex.stopped_by = "time"
            return True
        return False

    if strategy == "hypothesis":
        _explore_hypothesis(
            scenario,
            ex,
            schedules,
            seed,
            kernel_factory,
            max_steps,
            fail_on_splat,
            record,
            time_limit,
        )
    elif strategy == "dfs":
        dfs = DfsChooser(preemptions)
        while ex.schedules_run < schedules and not out_of_time():
            dfs.start()
            err, rec = _run_once(scenario, dfs, kernel_factory, max_steps, fail_on_splat)
            record(err, rec)
            if not dfs.advance():
                ex.exhausted = True
                ex.stopped_by = "exhausted"
                break
    else:
        k_est = 0
        for i in range(schedules):
            if out_of_time():
                break
            rng = random.Random(f"{seed}:{i}")
            chooser: Chooser
            if strategy == "random":
                chooser = RandomChooser(rng)
            else:
                chooser = PctChooser(rng, preemptions + 1, k_est)
            err, rec = _run_once(scenario, chooser, kernel_factory, max_steps, fail_on_splat)
            k_est = max(k_est, len(rec.decisions))
            record(err, rec)
    ex.failures = sorted(found.values(), key=lambda f: (f.preemptions, f.steps))
    ex.elapsed = time.monotonic() - start
    return ex


def _explore_hypothesis(
    scenario: Scenario,
    ex: Exploration,
    schedules: int,
    seed: int,
    kernel_factory: Callable[[], Kernel],
    max_steps: int,
    fail_on_splat: bool,
    record: Callable[[BaseException | None, Recorder], None],
    time_limit: float | None,
) -> None:
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hseed
        from hypothesis import strategies as st
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        raise RuntimeError(
            "explore(strategy='hypothesis') needs hypothesis: pip install hypothesis"
        ) from None
    last: list[tuple[BaseException | None, Recorder]] = []

    class _Failed(Exception):
        pass

    def run(data: st.DataObject) -> None:
        chooser = HypothesisChooser(
            lambda: data.draw(st.booleans()),
            lambda n: data.draw(st.integers(0, n - 1)),
        )
        err, rec = _run_once(scenario, chooser, kernel_factory, max_steps, fail_on_splat)
        last[:] = [(err, rec)]
        ex.schedules_run += 1
        if err is not None:
            raise _Failed

    test = hseed(seed)(
        settings(
            max_examples=schedules,
            database=None,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )(given(st.data())(run))
    )
    try:
        test()
    except _Failed:
        err, rec = last[0]
        ex.schedules_run -= 1
        record(err, rec)
        ex.stopped_by = "failure"


def replay(
    scenario: Scenario,
    token: str,
    *,
    kernel_factory: Callable[[], Kernel] = Kernel,
    max_steps: int = DEFAULT_MAX_STEPS,
    fail_on_splat: bool = True,
) -> None:
    """Re-run exactly the schedule ``token`` names and raise the failure it ends in.

    Raises :class:`ScheduleDiverged` at the first recorded switch whose stretch of switch
    points differs (the code changed since the token was made) — it never runs a different
    schedule. Returns normally only if the schedule ran as recorded and nothing failed (the
    bug is fixed).
    """
    tok = Token.decode(token)
    chooser = ReplayChooser(tok)
    err, _ = _run_once(scenario, chooser, kernel_factory, max_steps, fail_on_splat)
    chooser.verify_end()
    if err is not None:
        raise err


def race_test(
    *,
    strategy: str = "pct",
    schedules: int = 200,
    preemptions: int = 2,
    seed: int = 0,
    kernel_factory: Callable[[], Kernel] = Kernel,
    time_limit: float | None = None,
) -> Callable[[Scenario], Callable[[], None]]:
    """Make a scenario a pytest test: it explores and fails with the report (the failing
    interleavings and their tokens) if any schedule fails::

        @race_test(strategy="dfs", preemptions=2)
        def test_binder_races(kernel: Kernel) -> None:
            ...
            kernel.concurrently(sender, receiver)
    """

    def wrap(scenario: Scenario) -> Callable[[], None]:
        def test() -> None:
            ex = explore(
                scenario,
                strategy=strategy,
                schedules=schedules,
                preemptions=preemptions,
                seed=seed,
                kernel_factory=kernel_factory,
                time_limit=time_limit,
            )
            if not ex.ok:
                raise AssertionError(ex.report())

        test.__name__ = scenario.__name__
        test.__qualname__ = scenario.__qualname__
        test.__doc__ = scenario.__doc__
        test.__module__ = scenario.__module__
        return test

    return wrap
