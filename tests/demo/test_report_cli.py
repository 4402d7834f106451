"""The report and the ``safemm`` command: deterministic tables and JSON, the chart, and the
conformance dispatch."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TextIO

import pytest

import safemm.conformance.compare
from safemm.cli import main
from safemm.conformance.generator import MAX_STEPS
from safemm.demo.drivers import STRATEGIES
from safemm.demo.plot import PlotError, render_svg, write_plot
from safemm.demo.report import COSTS, ROWS, render_json, render_text, run_demo
from tests.python_process import run_python


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(list(argv), out)
    return rc, out.getvalue()


def test_text_is_deterministic() -> None:
    """Two runs with one seed print the same tables (without the model times)."""
    a = render_text(run_demo(7, ["receiver-churn"]), 7, times=False)
    b = render_text(run_demo(7, ["receiver-churn"]), 7, times=False)
    assert a == b
    assert "== receiver-churn" in a
    for label, _ in ROWS:
        assert label in a
    for s in STRATEGIES:
        assert s in a
    assert "model time" not in a


def test_demo_command_prints_tables() -> None:
    """``safemm demo --workload ping-pong`` prints the table, the times and the checks."""
    rc, text = _run("demo", "--workload", "ping-pong")
    assert rc == 0
    assert "model time per transaction (us)" in text
    assert f"checks: all {len(STRATEGIES)} runs ended with dmesg empty" in text


def test_json_has_the_same_numbers() -> None:
    """``--json`` gives the table's numbers per workload and strategy; without times it is
    identical across runs."""
    rc, first = _run("demo", "--workload", "ping-pong", "--json", "--no-times")
    _, second = _run("demo", "--workload", "ping-pong", "--json", "--no-times")
    assert rc == 0
    assert first == second
    doc = json.loads(first)
    assert doc["strategies"] == list(STRATEGIES)
    run = doc["workloads"]["ping-pong"]["runs"]["fault-and-unmap"]
    assert run["transactions"] == 120
    assert run["driver"]["mm_refs_taken"] == 0
    assert "seconds" not in run
    rc, timed = _run("demo", "--workload", "ping-pong", "--json")
    assert json.loads(timed)["workloads"]["ping-pong"]["runs"]["eager-insert"]["seconds"] > 0


def test_json_matches_text() -> None:
    """The JSON transactions are the table's."""
    results = run_demo(0, ["bursty-pressure"])
    doc = json.loads(render_json(results, 0, times=False))
    for r in results:
        entry = doc["workloads"]["bursty-pressure"]["runs"][r.strategy]
        assert entry["transactions"] == r.transactions
        assert entry["kernel"]["direct_reclaim"] == r.counters["direct_reclaim"]


def test_svg_plot(tmp_path: Path) -> None:
    """``--plot FILE.svg`` writes a well-formed SVG with a bar per workload and strategy."""
    path = tmp_path / "costs.svg"
    rc, text = _run("demo", "--workload", "ping-pong", "bursty-pressure", "--plot", str(path))
    assert rc == 0
    assert f"chart written to {path}" in text
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    titles = [e.text or "" for e in root.iter() if e.tag.endswith("title")]
    assert any(t.startswith("bursty-pressure, fault-and-unmap") for t in titles)
    assert len(titles) == 2 * len(STRATEGIES) * 5  # workloads x strategies x panels


def test_svg_bars_are_the_costs() -> None:
    """Each bar's title is its run's cost, and within a panel heights are proportional to
    the costs (the tallest bar is the largest cost)."""
    results = run_demo(0, ["ping-pong", "bursty-pressure"])
    root = ET.fromstring(render_svg(results, 0, times=False))
    bars = [e for e in root.iter() if e.tag.endswith("rect") and len(e)]
    by = {(r.workload, r.strategy): r for r in results}
    per_panel = len(results)
    assert len(bars) == per_panel * len([c for c in COSTS if "time" not in c[0]])
    for p, (_, value) in enumerate(c for c in COSTS if "time" not in c[0]):
        panel = bars[p * per_panel : (p + 1) * per_panel]
        costs, heights = [], []
        for bar in panel:
            title = bar[0].text or ""
            key, _, shown = title.rpartition(": ")
            workload, _, strategy = key.partition(", ")
            cost = value(by[workload, strategy])
            assert float(shown) == pytest.approx(cost, abs=5e-4)
            costs.append(cost)
            heights.append(float(bar.get("height", "0")))
        top = max(costs)
        for cost, height in zip(costs, heights, strict=True):
            expected = max(heights) * cost / top if top else 0.0
            assert height == pytest.approx(expected, abs=0.1)


def test_svg_without_times() -> None:
    """Without times the chart is deterministic too."""
    results = run_demo(0, ["ping-pong"])
    assert render_svg(results, 0, times=False) == render_svg(run_demo(0, ["ping-pong"]), 0, False)
    assert "model time" not in render_svg(results, 0, times=False)


@pytest.mark.parametrize("name", ["c.png", "c.pdf", "c"])
def test_only_svg_is_written(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any other file name is refused before the demo runs (status 2, saying how to get a
    PNG), and by write_plot; nothing is written."""
    with pytest.raises(SystemExit) as exit_:
        _run("demo", "--plot", str(tmp_path / name))
    assert exit_.value.code == 2
    assert "convert it for a PNG" in capsys.readouterr().err
    with pytest.raises(PlotError, match="rsvg-convert"):
        write_plot([], 0, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_unknown_workload() -> None:
    """An unknown workload name is a usage error."""
    with pytest.raises(SystemExit):
        _run("demo", "--workload", "nope")
    with pytest.raises(KeyError):
        run_demo(0, ["nope"])


def test_conformance_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``safemm conformance ...`` parses its options and hands them to
    safemm.conformance.compare.run_command; its exit status is the command's."""
    seen: list[dict[str, object]] = []

    def fake(
        *,
        sequences: int,
        seed: int,
        max_steps: int,
        show: int,
        max_shrinks: int,
        kernel_only: bool,
        selftests: bool,
        out: TextIO | None = None,
    ) -> int:
        seen.append(
            {
                "sequences": sequences,
                "seed": seed,
                "max_steps": max_steps,
                "show": show,
                "max_shrinks": max_shrinks,
                "kernel_only": kernel_only,
                "selftests": selftests,
            }
        )
        return 7

    monkeypatch.setattr(safemm.conformance.compare, "run_command", fake)
    rc, _ = _run("conformance", "-n", "5", "--seed", "3")
    assert rc == 7
    rc, _ = _run("conformance", "--max-steps", "4", "--show", "1", "--kernel-only")
    assert rc == 7
    rc, _ = _run("conformance", "--selftests")
    assert rc == 7
    assert seen == [
        {
            "sequences": 5,
            "seed": 3,
            "max_steps": MAX_STEPS,
            "show": 5,
            "max_shrinks": 25,
            "kernel_only": False,
            "selftests": False,
        },
        {
            "sequences": 2000,
            "seed": 0,
            "max_steps": 4,
            "show": 1,
            "max_shrinks": 25,
            "kernel_only": True,
            "selftests": False,
        },
        {
            "sequences": 2000,
            "seed": 0,
            "max_steps": MAX_STEPS,
            "show": 5,
            "max_shrinks": 25,
            "kernel_only": False,
            "selftests": True,
        },
    ]


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """No command, or an unknown one, is a usage error (status 2); ``safemm --help`` lists
    every command."""
    for argv in ((), ("frobnicate",), ("demo", "--frobnicate")):
        with pytest.raises(SystemExit) as exit_:
            _run(*argv)
        assert exit_.value.code == 2
    assert "usage: safemm" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        _run("--help")
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "conformance", "explore", "check", "fuzz"):
        assert re.search(rf"^ +{command}\b", text, re.MULTILINE), command


def test_choices_are_listed_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    """The workload and strategy names appear in the help and in the error for a bad one."""
    with pytest.raises(SystemExit):
        _run("demo", "--help")
    assert "ping-pong" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        _run("explore", "x.py::s", "--strategy", "nope")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: safemm explore" in err
    assert "'pct'" in err and "'dfs'" in err


def test_building_the_parser_imports_no_command() -> None:
    """``safemm check`` starts without importing the demo, the explorer, the conformance
    suite or hypothesis (their names are loaded when an option needs them)."""
    code = (
        "import sys\n"
        "from safemm.cli import build_parser\n"
        "build_parser().parse_args(['check', 'x.py'])\n"
        "heavy = ['safemm.demo.workloads', 'safemm.explore', 'safemm.conformance.compare',"
        " 'hypothesis']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = run_python(code)
    assert done.stdout.strip() == "[]"
