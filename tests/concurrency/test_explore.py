"""The explorer (src/safemm/explore/): strategies, tokens, replay, the pytest helper, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from safemm import Deadlock, Kernel, KernelWarning
from safemm.cli import main
from safemm.explore import (
    NondeterministicScenario,
    ScheduleDiverged,
    TokenError,
    explore,
    race_test,
    replay,
)
from safemm.explore._token import Deviation, Token
from safemm.model.locking import Mutex
from safemm.model.process import Process


def _abba(k: Kernel, *, extra: bool = False) -> None:
    p, q = k.spawn(), k.spawn()
    m1, m2 = Mutex("m1"), Mutex("m2")
    m3 = Mutex("m3")

    def body(proc: Process, x: Mutex, y: Mutex) -> None:
        with k.enter(proc.task, "test"):
            if extra:
                m3.lock(k)
                m3.unlock(k)
            x.lock(k)
            try:
                y.lock(k)
                y.unlock(k)
            finally:
                x.unlock(k)

    k.concurrently(lambda: body(p, m1, m2), lambda: body(q, m2, m1))


def _quiet() -> Kernel:
    return Kernel(panic_on_warn=False)


def _ordered(k: Kernel) -> None:
    p, q = k.spawn(), k.spawn()
    m1, m2 = Mutex("m1"), Mutex("m2")

    def body(proc: Process) -> None:
        with k.enter(proc.task, "test"):
            m1.lock(k)
            m2.lock(k)
            m2.unlock(k)
            m1.unlock(k)

    k.concurrently(lambda: body(p), lambda: body(q))


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_every_strategy_finds_both_abba_failures(strategy: str) -> None:
    ex = explore(_abba, strategy=strategy, schedules=150, kernel_factory=_quiet)
    kinds = {(type(f.error), f.contract) for f in ex.failures}
    assert kinds == {(KernelWarning, "lock-order"), (Deadlock, "deadlock")}, ex.report()
    dl = next(f for f in ex.failures if f.contract == "deadlock")
    assert dl.preemptions == 1  # the deadlock needs exactly one preemption
    assert "<-- preempted" in dl.trace and "blocked for more than 120 seconds" in dl.trace
    assert not ex.ok


def test_dfs_exhausts_the_bound_and_reports_the_minimal_schedule() -> None:
    ex0 = explore(_ordered, strategy="dfs", preemptions=0, schedules=10_000)
    ex1 = explore(_ordered, strategy="dfs", preemptions=1, schedules=10_000)
    ex2 = explore(_ordered, strategy="dfs", preemptions=2, schedules=10_000)
    assert ex0.exhausted and ex1.exhausted and ex2.exhausted
    assert ex0.ok and ex1.ok and ex2.ok
    # bound 0: only the orders in which a task runs until it blocks or ends
    assert ex0.schedules_run < ex1.schedules_run < ex2.schedules_run
    cut = explore(_ordered, strategy="dfs", preemptions=2, schedules=3)
    assert not cut.exhausted and cut.schedules_run == 3 and cut.stopped_by == "schedules"


def test_pct_reports_its_guarantee() -> None:
    ex = explore(_ordered, strategy="pct", schedules=50, preemptions=2)
    assert ex.ok and ex.tasks == 3 and ex.max_decisions > 0
    p = 1 / (3 * ex.max_decisions**2)
    assert ex.pct_bound == pytest.approx(p)
    assert ex.pct_cumulative == pytest.approx(1 - (1 - p) ** 50)
    assert "PCT bound for a bug of depth 3" in ex.summary()


def test_hypothesis_shrinks_to_the_fewest_preemptions() -> None:
    ex = explore(_abba, strategy="hypothesis", schedules=200, kernel_factory=_quiet)
    assert ex.stopped_by == "failure" and len(ex.failures) == 1
    assert ex.failures[0].preemptions == 0  # the warning needs no preemption at all


def test_same_seed_same_exploration() -> None:
    a = explore(_abba, strategy="random", schedules=40, seed=3, kernel_factory=_quiet)
    b = explore(_abba, strategy="random", schedules=40, seed=3, kernel_factory=_quiet)
    assert [f.schedule for f in a.failures] == [f.schedule for f in b.failures]
    assert [f.trace for f in a.failures] == [f.trace for f in b.failures]


def test_replay_raises_the_same_failure() -> None:
    ex = explore(_abba, strategy="dfs", kernel_factory=_quiet)
    for f in ex.failures:
        with pytest.raises(type(f.error)) as info:
            replay(_abba, f.schedule, kernel_factory=_quiet)
        assert getattr(info.value, "contract", None) == f.contract


def test_replay_of_changed_code_says_where_instead_of_running_another_schedule() -> None:
    ex = explore(_abba, strategy="dfs", kernel_factory=_quiet)
    dl = next(f for f in ex.failures if f.contract == "deadlock")

    def changed(k: Kernel) -> None:
        _abba(k, extra=True)

    with pytest.raises(ScheduleDiverged, match="no longer makes the same choices"):
        replay(changed, dl.schedule, kernel_factory=_quiet)


def test_replay_of_a_fixed_bug_returns() -> None:
    ex = explore(_abba, strategy="dfs", kernel_factory=_quiet)
    dl = next(f for f in ex.failures if f.contract == "deadlock")
    tok = Token.decode(dl.schedule)
    # the same decisions, no deviation: runs to the end
    plain = Token(tok.strategy, tok.seed, tok.decisions, tok.end_check, ()).encode()
    with pytest.raises(ScheduleDiverged):
        replay(_abba, plain, kernel_factory=_quiet)


def test_token_roundtrip_and_bad_tokens() -> None:
    t = Token("pct", 7, 300, 0xBEEF, (Deviation(3, 1, 0x1234), Deviation(200, 0, 0xFFFF)))
    text = t.encode()
    assert text.startswith("S1.") and len(text) < 40
    assert Token.decode(text) == t
    for bad in ["", "X1.AAAA", "S1.!!!", "S1." + text[3:-2], text + "AAAA"]:
        with pytest.raises(TokenError):
            Token.decode(bad)


def test_nondeterministic_scenario_is_refused() -> None:
    runs = [0]

    def flaky(k: Kernel) -> None:
        runs[0] += 1
        p, q = k.spawn(), k.spawn()
        m = Mutex("m")
        n = 3 if runs[0] == 1 else 1  # depends on a global, not on the schedule

        def body(proc: Process) -> None:
            with k.enter(proc.task, "t"):
                for _ in range(n):
                    m.lock(k)
                    m.unlock(k)

        k.concurrently(lambda: body(p), lambda: body(q))

    with pytest.raises(NondeterministicScenario, match="seed every random source"):
        explore(flaky, strategy="dfs", schedules=200)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"strategy": "chess"}, "unknown strategy"),
        ({"schedules": 0}, "at least 1"),
        ({"preemptions": -1}, "non-negative"),
        ({"seed": True}, "non-negative int"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        explore(_ordered, **kwargs)  # type: ignore[arg-type]


def test_race_test_fails_with_the_report_and_passes_when_correct() -> None:
    @race_test(strategy="dfs", kernel_factory=_quiet)
    def broken(kernel: Kernel) -> None:
        """doc"""
        _abba(kernel)

    @race_test(strategy="dfs")
    def fixed(kernel: Kernel) -> None:
        _ordered(kernel)

    assert broken.__name__ == "broken" and broken.__doc__ == "doc"
    with pytest.raises(AssertionError, match=r"failure 1: .*\nschedule: S1\."):
        broken()
    fixed()


def test_cli_explore_prints_failures_and_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "scen.py"
    src.write_text(
        "from safemm import Kernel\n"
        "from safemm.model.locking import Mutex\n"
        "def scenario(k: Kernel) -> None:\n"
        "    p, q = k.spawn(), k.spawn()\n"
        "    m1, m2 = Mutex('m1'), Mutex('m2')\n"
        "    def body(proc, x, y):\n"
        "        with k.enter(proc.task, 't'):\n"
        "            x.lock(k); y.lock(k); y.unlock(k); x.unlock(k)\n"
        "    k.concurrently(lambda: body(p, m1, m2), lambda: body(q, m2, m1))\n"
        "def fine(k: Kernel) -> None:\n"
        "    k.concurrently(lambda: 1, lambda: 2)\n"
    )
    out: list[str] = []

    class W:
        def write(self, s: str) -> int:
            out.append(s)
            return len(s)

    w = W()
    assert main(["explore", f"{src}::scenario", "--strategy", "dfs"], w) == 1  # type: ignore[arg-type]
    text = "".join(out)
    assert "failure 1: KernelWarning [lock-order]" in text and "schedule: S1." in text
    token = text.split("schedule: ", 1)[1].split()[0]
    out.clear()
    assert main(["explore", f"{src}::scenario", "--replay", token], w) == 1  # type: ignore[arg-type]
    assert "possible circular locking dependency" in "".join(out)
    out.clear()
    assert main(["explore", f"{src}::fine", "--strategy", "random", "--schedules", "5"], w) == 0  # type: ignore[arg-type]
    assert "0 distinct failure(s)" in "".join(out)
    with pytest.raises(SystemExit):
        main(["explore", f"{src}::nope"], w)  # type: ignore[arg-type]
