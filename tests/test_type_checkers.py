"""The type tests under the other checkers: basedpyright, pyrefly and ty.

Each checker runs once, with the project's settings (``[tool.basedpyright]``, ``[tool.pyrefly]``,
``[tool.ty]`` in pyproject.toml: the configuration docs/type-checkers.md recommends to a driver
project), over ``examples/``, ``tests/typing/accept`` and ``tests/typing/reject``, with mypy's
``# type: ignore`` comments not honoured. One pytest item per checker and reject case: the line
must be reported as an error (or, where mypy's only code is ``deprecated``, as a deprecation at
any severity). Codes are not compared: each checker names its errors its own way. One item per
checker and file: nothing else is reported anywhere. A case a checker cannot express is listed,
with the reason, in ``tests/typing/checker_gaps.toml`` and expected to stay unreported.
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from tests.test_typing import reject_cases

ROOT = Path(__file__).resolve().parent.parent
REJECT = ROOT / "tests" / "typing" / "reject"
SCOPE = ("examples", "tests/typing/accept", "tests/typing/reject")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
GAPS: dict[str, dict[str, str]] = tomllib.loads(
    (ROOT / "tests" / "typing" / "checker_gaps.toml").read_text(encoding="utf-8")
)

pytestmark = pytest.mark.xdist_group("type-checkers")


@dataclass(frozen=True)
class Diagnostic:
    """One message of a checker: where (path relative to the project root), how bad, which rule."""

    path: str
    line: int
    severity: str
    rule: str
    message: str


def _rel(path: str) -> str:
    p = Path(path)
    return (p if p.is_absolute() else ROOT / p).resolve().relative_to(ROOT).as_posix()


def _parse_basedpyright(stdout: str) -> list[Diagnostic]:
    return [
        Diagnostic(
            _rel(d["file"]), d["range"]["start"]["line"] + 1, d["severity"], d.get("rule", ""),
            d["message"],
        )
        for d in json.loads(stdout)["generalDiagnostics"]
        if d["severity"] != "information"
    ]  # fmt: skip


def _parse_pyrefly(stdout: str) -> list[Diagnostic]:
    return [
        Diagnostic(_rel(e["path"]), e["line"], e["severity"], e["name"], e["description"])
        for e in json.loads(stdout)["errors"]
    ]


_TY_LINE = re.compile(r"^(.+?):(\d+):\d+: (\w+)\[([\w-]+)\] (.*)$")


def _parse_ty(stdout: str) -> list[Diagnostic]:
    out = []
    for line in stdout.splitlines():
        m = _TY_LINE.match(line)
        if m:
            out.append(Diagnostic(_rel(m[1]), int(m[2]), m[3], m[4], m[5]))
        elif line.strip() and not re.match(r"(Found \d+ diagnostics?|All checks passed!)$", line):
            out.append(Diagnostic("?", 0, "unparsed", "", line))
    return out


@dataclass(frozen=True)
class Checker:
    """How to run one checker once over the project and read its messages."""

    name: str
    args: tuple[str, ...]
    parse: Callable[[str], list[Diagnostic]]


CHECKERS = {
    c.name: c
    for c in (
        Checker(
            "basedpyright", ("--outputjson", "--pythonpath", sys.executable), _parse_basedpyright
        ),
        Checker(
            "pyrefly",
            (
                "check", "--python-interpreter-path", sys.executable, "--output-format", "json",
                "--summary=none", "--min-severity", "warn", "--enabled-ignores", "pyrefly",
            ),
            _parse_pyrefly,
        ),
        Checker(
            "ty",
            (
                "check", "--python", sys.executable, "--output-format", "concise", "--no-progress",
                "-c", "analysis.respect-type-ignore-comments=false",
            ),
            _parse_ty,
        ),
    )
}  # fmt: skip


@functools.cache
def _report(name: str) -> dict[tuple[str, int], list[Diagnostic]]:
    """Every message of one run of the checker over the project, by (path, line)."""
    exe = Path(sysconfig.get_path("scripts")) / name
    if not exe.exists():
        why = f"{name} is not installed: pip install -e '.[typecheck]'"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    checker = CHECKERS[name]
    r = subprocess.run([str(exe), *checker.args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode in (0, 1), f"{name} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    report: dict[tuple[str, int], list[Diagnostic]] = {}
    for d in checker.parse(r.stdout):
        report.setdefault((d.path, d.line), []).append(d)
    return report


def _case_id(name: str, line: int) -> str:
    return f"{name}:{line}"


def _case_params() -> list[object]:
    params: list[object] = []
    for checker in CHECKERS:
        gaps = GAPS.get(checker, {})
        for name, line, codes in reject_cases():
            why = gaps.get(_case_id(name, line))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            params.append(
                pytest.param(
                    checker, name, line, codes, marks=marks, id=f"{checker}-{name}:{line}"
                )
            )
    return params


def _scope_files() -> list[str]:
    return sorted(_rel(str(p)) for d in SCOPE for p in (ROOT / d).rglob("*.py"))


def _case_lines() -> set[tuple[str, int]]:
    return {(_rel(str(REJECT / name)), line) for name, line, _ in reject_cases()}


@pytest.mark.parametrize(("checker", "name", "line", "codes"), _case_params())
def test_rejected(checker: str, name: str, line: int, codes: str) -> None:
    """The checker reports this illegal line as an error; a deprecation at any severity counts
    where mypy's only code is ``deprecated``."""
    messages = _report(checker).get((_rel(str(REJECT / name)), line), [])
    errors = [d for d in messages if d.severity == "error"]
    if codes == "deprecated":
        errors += [d for d in messages if "deprecated" in d.rule.lower()]
    assert errors, f"{checker} accepts this line (mypy: [{codes}]); it said: {messages}"


@pytest.mark.parametrize("path", _scope_files())
@pytest.mark.parametrize("checker", CHECKERS)
def test_clean(checker: str, path: str) -> None:
    """Nothing is reported in this file but its reject cases: the legal flows and the examples
    are clean, and each reject case is the only illegal line around it."""
    cases = _case_lines()
    found = [
        f"{d.path}:{d.line}: {d.severity}[{d.rule}] {d.message}"
        for (p, line), ds in sorted(_report(checker).items())
        if p == path and (p, line) not in cases
        for d in ds
    ]
    assert found == []


@pytest.mark.parametrize("checker", CHECKERS)
def test_nothing_outside_scope(checker: str) -> None:
    """Every message is in a checked file: none about the library, none the test cannot read."""
    scope = set(_scope_files())
    stray = [d for ds in _report(checker).values() for d in ds if d.path not in scope]
    assert stray == []


@pytest.mark.parametrize("checker", CHECKERS)
def test_settings_cover_the_scope(checker: str) -> None:
    """The checked-in settings of each checker name exactly the directories this test reads."""
    tool = PYPROJECT["tool"][checker]
    include = {
        "basedpyright": lambda: tool["include"],
        "pyrefly": lambda: tool["project-includes"],
        "ty": lambda: tool["src"]["include"],
    }[checker]()
    assert sorted(include) == sorted(SCOPE)


def _pinned(extra: str) -> dict[str, str]:
    pins = PYPROJECT["project"]["optional-dependencies"][extra]
    return dict(p.split("==") for p in pins)


def test_checkers_are_pinned_and_installed_as_pinned() -> None:
    """Each checker is pinned to one exact version in the ``typecheck`` extra (their messages
    and rules change between releases), and that version is the one installed."""
    pins = _pinned("typecheck")
    assert set(CHECKERS) <= set(pins)
    for name in CHECKERS:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # the per-case items skip (or fail in CI) with the install command
        assert installed == pins[name], name


def test_gaps_name_real_cases_with_a_reason() -> None:
    """Every entry of checker_gaps.toml is a reject case of a known checker, with a reason."""
    cases = {_case_id(name, line) for name, line, _ in reject_cases()}
    for checker, gaps in GAPS.items():
        assert checker in CHECKERS, checker
        for case, why in gaps.items():
            assert case in cases, case
            assert len(why.split()) >= 5, (case, why)


README = (ROOT / "README.md").read_text(encoding="utf-8")


def checkers_table() -> list[str]:
    """The README's type-checker table as it must read: versions from the pins, cases reported
    from the case count less the listed gaps (this module and test_typing.py fail if either
    checker does otherwise)."""
    total = len(reject_cases())
    clean = len([p for p in _scope_files() if not p.startswith("tests/typing/reject/")])
    rows = [
        "| checker | version | reject cases reported | accept files and examples "
        "| cannot express |",
        "|---|---|---|---|---|",
        f"| mypy | {_pinned('test')['mypy']} | {total}/{total}, each with its exact error code "
        f"| clean ({clean} files) | nothing |",
    ]
    for name in CHECKERS:
        gaps = GAPS.get(name, {})
        cannot = ", ".join(f"`{case}`" for case in gaps) or "nothing"
        rows.append(
            f"| {name} | {_pinned('typecheck')[name]} | {total - len(gaps)}/{total} "
            f"| clean ({clean} files) | {cannot} |"
        )
    return rows


def test_readme_table() -> None:
    """The README's type-checker table says what the checkers do, and why for each gap."""
    expected = checkers_table()
    assert "\n".join(expected) in README, "the README table must read:\n" + "\n".join(expected)
    for gaps in GAPS.values():
        for why in gaps.values():
            assert why in README, why


# Settings that say where the project's own files are, not how strictly to check them.
_LOCATION_KEYS = {"include", "project-includes", "src", "stubPath", "search-path", "environment"}
_LOCATION_KEYS |= {"pythonVersion", "python-version", "files", "mypy_path", "python_version"}


def _documented() -> dict[str, dict[str, object]]:
    """The ``[tool.X]`` settings of each TOML block of docs/type-checkers.md."""
    page = (ROOT / "docs" / "type-checkers.md").read_text(encoding="utf-8")
    tools: dict[str, dict[str, object]] = {}
    for block in re.findall(r"```toml\n(.*?)```", page, re.S):
        tools.update(tomllib.loads(block)["tool"])
    return tools


def test_documented_mypy_settings_are_the_projects() -> None:
    """docs/type-checkers.md recommends for mypy a subset of the project's own mypy.ini."""
    ini = configparser.ConfigParser()
    ini.read(ROOT / "mypy.ini")
    project = ini["mypy"]
    for key, value in _documented()["mypy"].items():
        if key == "enable_error_code":
            assert isinstance(value, list)
            assert set(value) <= {c.strip() for c in project[key].split(",")}, value
        else:
            assert project.get(key) == str(value), key


@pytest.mark.parametrize("checker", CHECKERS)
def test_documented_settings_are_the_projects(checker: str) -> None:
    """docs/type-checkers.md recommends the settings the project checks itself with: its TOML
    for each checker holds exactly the strictness settings of pyproject.toml."""
    documented = {k: v for k, v in _documented()[checker].items() if k not in _LOCATION_KEYS}
    project = {k: v for k, v in PYPROJECT["tool"][checker].items() if k not in _LOCATION_KEYS}
    assert documented == project
