"""The type tests: one mypy run over the project, one pytest item per rejected call.

Each line of ``tests/typing/reject/*.py`` marked ``# type: ignore[codes]`` is a case: it passes
when mypy reports exactly those codes there (a missing error shows up as an unused ignore, a
different one as an uncovered code). The same run must be clean everywhere else — ``src``,
``tests``, ``examples`` and the accepted flows in ``tests/typing/accept``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
REJECT = ROOT / "tests" / "typing" / "reject"
CASE = re.compile(r"#\s*type:\s*ignore\[([a-z, -]+)\]")
LINE = re.compile(r"^(.+?):(\d+): (error|note): (.*)$")

pytestmark = pytest.mark.xdist_group("mypy")


def reject_cases() -> list[tuple[str, int, str]]:
    """Every case: (file name in ``tests/typing/reject``, line, mypy's codes without spaces)."""
    out = []
    for path in sorted(REJECT.glob("*.py")):
        for no, text in enumerate(path.read_text().splitlines(), 1):
            m = CASE.search(text)
            if m:
                out.append((path.name, no, m.group(1).replace(" ", "")))
    return out


@pytest.fixture(scope="session")
def mypy_report() -> dict[tuple[str, int], list[str]]:
    """Every mypy message of one run over the project, by (absolute path, line)."""
    stdout, stderr, _status = api.run(
        [
            "--config-file",
            str(ROOT / "mypy.ini"),
            "--show-absolute-path",
            "--no-error-summary",
            "--no-pretty",
            "--show-error-codes",
        ]
    )
    assert not stderr, stderr
    report: dict[tuple[str, int], list[str]] = {}
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            report.setdefault((m.group(1), int(m.group(2))), []).append(m.group(4))
        else:
            report.setdefault(("?", 0), []).append(line)
    return report


def test_cases_exist() -> None:
    """Every contract file holds cases, and there are many of them."""
    files = {name for name, _, _ in reject_cases()}
    assert len(files) == len(list(REJECT.glob("*.py")))
    assert len(reject_cases()) >= 60


@pytest.mark.parametrize(("name", "line", "codes"), reject_cases())
def test_rejected_with_code(
    mypy_report: dict[tuple[str, int], list[str]], name: str, line: int, codes: str
) -> None:
    """mypy rejects this line with exactly the codes its ignore comment names."""
    messages = mypy_report.get((str(REJECT / name), line), [])
    assert messages == [], f"expected exactly [{codes}] here, mypy said: {messages}"


def test_project_is_clean(mypy_report: dict[tuple[str, int], list[str]]) -> None:
    """mypy --strict (the project's mypy.ini) is clean over src, tests and examples."""
    assert mypy_report == {}, "\n".join(
        f"{path}:{line}: {msg}" for (path, line), msgs in mypy_report.items() for msg in msgs
    )
