"""The version is written in one place, pyproject.toml, and the changelog describes it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import safemm

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert isinstance(version, str)
    return version


def test_version_comes_from_the_package_metadata() -> None:
    """``safemm.__version__`` is the version pyproject.toml sets (through the metadata)."""
    assert safemm.__version__ == _pyproject_version()


def test_version_is_written_nowhere_else() -> None:
    """No module of the package spells the version out."""
    literal = re.compile(rf"""["']{re.escape(_pyproject_version())}["']""")
    spelled = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src").rglob("*.py")
        if literal.search(path.read_text(encoding="utf-8"))
    ]
    assert spelled == []


def test_changelog_has_the_version_and_unreleased() -> None:
    """CHANGELOG.md has a section for the current version and one for Unreleased changes."""
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert _pyproject_version() in headings
