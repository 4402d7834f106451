"""The static atomic-context check (``safemm check``): one analysis pass, one pytest item per
case.

Each line of ``tests/atomic/reject/*.py`` marked ``# atomic: <code>`` is a case: it passes
when the check reports exactly that code on that line. The same pass (``--strict``) must
report nothing anywhere else — not in ``tests/atomic/accept`` (the legal patterns) and not on
unmarked lines of the reject files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from safemm.check import CheckResult, check
from safemm.cli import main

from .reject.a7_h5_twins import TWINS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REJECT = HERE / "reject"
ACCEPT = HERE / "accept"
CASE = re.compile(r"#\s*atomic:\s*([a-z-]+)")

pytestmark = pytest.mark.xdist_group("mypy")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _cases() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(REJECT.glob("*.py")):
        for no, text in enumerate(path.read_text().splitlines(), 1):
            m = CASE.search(text)
            if m:
                out.append((path.name, no, m.group(1)))
    return out


def _in_root() -> Iterator[None]:
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def report() -> Iterator[dict[tuple[str, int], list[str]]]:
    """Every finding of one ``--strict`` pass over reject/ and accept/, by (path, line)."""
    for _ in _in_root():
        result = check([_rel(REJECT), _rel(ACCEPT)], strict=True)
        assert result.blocking == []
        out: dict[tuple[str, int], list[str]] = {}
        for e in result.errors:
            out.setdefault((e.path, e.line), []).append(e.code)
        yield out


@pytest.fixture(scope="session")
def clean_run() -> Iterator[CheckResult]:
    """One pass over the demo drivers, the examples and the hazard tests."""
    for _ in _in_root():
        yield check(["src/safemm/demo", "examples", "tests/hazards"])


def test_cases_exist() -> None:
    """Every reject file holds cases, every code is a real one, and there are many."""
    cases = _cases()
    assert {name for name, _, _ in cases} == {p.name for p in REJECT.glob("a*.py")}
    assert {code for _, _, code in cases} == {"atomic-sleep", "atomic-unknown"}
    assert len(cases) >= 25


@pytest.mark.parametrize(("name", "line", "code"), _cases())
def test_rejected_with_code(
    report: dict[tuple[str, int], list[str]], name: str, line: int, code: str
) -> None:
    """The check reports exactly this code on this line."""
    assert report.get((_rel(REJECT / name), line)) == [code]


def test_nothing_else_is_reported(report: dict[tuple[str, int], list[str]]) -> None:
    """No finding on an unmarked line, and none in the accepted patterns."""
    expected = {(_rel(REJECT / name), line) for name, line, _ in _cases()}
    ours = {key for key in report if key[0].startswith("tests/atomic/")}
    assert ours - expected == set()


def test_every_h5_sleeper_has_a_static_twin() -> None:
    """Each broken isolate body of the run-time H5 test is called from a twin callback in
    a7_h5_twins.py (whose lines are cases above)."""
    from tests.hazards.test_h5_reclaim_sleep import SLEEPERS

    assert set(TWINS) == set(SLEEPERS)
    text = (REJECT / "a7_h5_twins.py").read_text()
    for callback in TWINS.values():
        body = text.split(f"def {callback}(", 1)[1].split("\n\n", 1)[0]
        assert "# atomic: atomic-sleep" in body, callback


def test_drivers_examples_and_correct_hazard_drivers_are_clean(clean_run: CheckResult) -> None:
    """The demo drivers, the tutorial and the examples produce no error; in the hazard tests
    the only errors are the broken sched drivers' sleeps (the static twins of
    test_sched_atomic_*): the correct drivers — the H5 trylocking shrinker, the sched reader
    that sleeps after unlocking — are clean."""
    sched = ROOT / "tests" / "hazards" / "test_sched_atomic_rcu.py"
    lines = sched.read_text().splitlines()
    broken = {
        (_rel(sched), no)
        for no, text in enumerate(lines, 1)
        if "msleep(10)  # the bug" in text or text.strip() == "msleep(1)"
    }
    assert len(broken) == 2
    found = {(e.path, e.line) for e in clean_run.errors}
    assert found == broken, [e.render() for e in clean_run.errors]
    assert {e.code for e in clean_run.errors} == {"atomic-sleep"}
    assert clean_run.modules >= 30


def test_messages_name_the_call_the_chain_the_context_and_the_fix(
    clean_run: CheckResult,
) -> None:
    """An error says what sleeps, where the atomic context began, and the fix."""
    spin, rcu = clean_run.errors
    assert "msleep(10) may sleep in atomic context: SpinLock 'reader.lock' taken" in spin.message
    assert "fix: sleep after the unlock" in spin.message
    assert "RCU read-side section entered at line" in rcu.message


def test_cli_format_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    """``safemm check`` prints mypy-format errors and exits 1 on any error, 0 when clean;
    ``--strict`` adds the unresolved calls."""
    for _ in _in_root():
        assert main(["check", _rel(REJECT / "a2_rcu.py")]) == 1
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 5
        pattern = r"tests/atomic/reject/a2_rcu\.py:\d+:\d+: error: .+  \[atomic-sleep\]$"
        assert all(re.match(pattern, line) for line in out[:4])
        assert out[4].startswith("safemm check: found 4 errors in 1 file")
        assert main(["check", _rel(REJECT / "a6_strict.py")]) == 0
        capsys.readouterr()
        assert main(["check", "--strict", _rel(REJECT / "a6_strict.py")]) == 1
        assert "[atomic-unknown]" in capsys.readouterr().out
        assert main(["check", "--mypy", _rel(ACCEPT / "legal.py")]) == 0
        out_text = capsys.readouterr().out
        assert "Success: no issues found" in out_text
        assert "no sleeping calls in atomic context" in out_text


def test_cli_reports_mypy_errors_with_mypy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--mypy`` runs mypy first: a type error alone makes the exit status 1."""
    bad = tmp_path / "bad.py"
    bad.write_text("x: int = 'no'\n")
    assert main(["check", "--mypy", str(bad)]) == 1
    assert "[assignment]" in capsys.readouterr().out
    assert main(["check", str(bad)]) == 0
