"""docs/hazards.md tells the truth: its splats are those of a real run, every test it names
exists, every strict-only contract is on it, and the README links it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from safemm.model.contracts import CONTRACTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "hazards.md"
HERE = Path(__file__).resolve().parent


def test_hazards_page_shows_the_splats_of_a_real_run() -> None:
    """Every ``<!-- splat:NAME -->`` block holds exactly what its scenario prints, rendered in
    a fresh interpreter (``python -m tests.hazards.render`` exits 0)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.hazards.render"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def _test_names() -> set[str]:
    names = set()
    for path in HERE.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        names |= {
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
        }
    return names


def test_every_test_the_page_names_exists() -> None:
    """The test names on the page are real tests of tests/hazards (and the hazard tests all
    appear on the page)."""
    named = set(re.findall(r"`(test_\w+)", DOC.read_text()))
    real = _test_names()
    assert named, "the page names no tests"
    assert named - real == set()
    hazard_tests = {n for n in real if re.match(r"test_(h\d+|sched|checked|unmap)", n)}
    assert hazard_tests - named == set()


def test_every_hazard_has_a_section() -> None:
    """H1-H13 and scheduling while atomic each have a section with the four parts."""
    page = DOC.read_text()
    sections = re.split(r"^## ", page, flags=re.M)
    titles = [s.splitlines()[0] for s in sections[1:]]
    for h in range(1, 14):
        assert any(t.startswith(f"H{h}:") for t in titles), f"no section for H{h}"
    assert any(t.startswith("Scheduling while atomic") for t in titles)
    for s in sections[1:]:
        if re.match(r"(H\d+|Scheduling)", s):
            for part in ("**Kernel.**", "**Model.**", "**Safe layer.**", "**Tests**"):
                assert part in s, f"section {s.splitlines()[0]!r} lacks {part}"


def test_strict_only_contracts_are_listed() -> None:
    """Every contract Linux does not check (``kernel_checks=False``) is in the strict-mode
    table, and the page says how to turn strict mode off."""
    page = DOC.read_text()
    table = page.split("## Strict mode", 1)[1].split("\n## ", 1)[0]
    for c in CONTRACTS.values():
        if not c.kernel_checks:
            assert f"`{c.id}`" in table, c.id
    assert "Kernel(strict=False)" in table


def test_readme_links_the_page() -> None:
    """The README links the hazards page."""
    assert "docs/hazards.md" in (ROOT / "README.md").read_text()
