"""The README and docs/contracts.md stay true: the full contract table covers every contract
and names tests that exist, the README's short table names real contracts, and CI runs
exactly the README's Quick-start test command."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from safemm.model.contracts import CONTRACTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRACTS_PAGE = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")


def _rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith(("| `", "| **`")):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def _table_rows() -> list[list[str]]:
    """The rows of the full contract table, on docs/contracts.md."""
    return _rows(CONTRACTS_PAGE)


def _readme_rows() -> list[list[str]]:
    """The rows of the README's short table of the contracts a driver author meets first."""
    section = README.split("## The contracts", 1)[1].split("\n## ", 1)[0]
    return [row for row in _rows(section) if re.match(r"\**`[a-z-]+`", row[0])]


def _id(cell: str) -> str:
    m = re.search(r"`([a-z-]+)`", cell)
    assert m is not None, cell
    return m.group(1)


def test_every_contract_has_a_row() -> None:
    """Each id of the registry (src/safemm/model/contracts.py) has a row on docs/contracts.md,
    and no row names an unknown id."""
    ids = [_id(row[0]) for row in _table_rows()]
    assert sorted(ids) == sorted(CONTRACTS), set(ids) ^ set(CONTRACTS)


def test_strict_rows_are_bold_exactly_for_strict_only_contracts() -> None:
    """A bold id marks a check Linux does not make: exactly the registry's
    ``kernel_checks=False`` contracts (``zap-range`` is the Rust abstraction's own check)."""
    bold = {_id(r[0]) for r in _table_rows() if "**" in r[0]}
    strict = {c.id for c in CONTRACTS.values() if not c.kernel_checks}
    assert bold == strict


def test_readme_short_table() -> None:
    """The README keeps ten contracts of the registry, bold exactly where the full table is,
    and links to the full table."""
    full = {_id(r[0]): r[0] for r in _table_rows()}
    short = [r[0] for r in _readme_rows()]
    assert len(short) == 10, short
    for cell in short:
        assert _id(cell) in CONTRACTS, cell
        assert cell == full[_id(cell)], cell
    assert "(docs/contracts.md)" in README


def test_ids_defined_before_use() -> None:
    """The README defines the hazard ids (H1 to H13) and the reject-case ids before its first
    use of one."""
    for definition, use in (
        ("Hazard ids H1", r"\bH\d{1,2}\b"),
        ("Reject-case ids", r"\b(r\d\d|a\d)\b(?![_.])"),
    ):
        first_use = min(m.start() for m in re.finditer(use, README))
        assert README.index(definition) <= first_use, definition


def test_reject_files_sort_in_order() -> None:
    """Reject cases are numbered with two digits, so that they sort in order, and no two
    share a number (an id names one file)."""
    names = [p.name for p in (ROOT / "tests" / "typing" / "reject").glob("r*.py")]
    assert names and all(re.match(r"r\d\d_", n) for n in names), names
    numbers = sorted(n[:3] for n in names)
    assert len(set(numbers)) == len(numbers), numbers


def test_every_named_test_exists() -> None:
    """Every test file and test function the table names exists."""
    missing = []
    for row in _table_rows():
        last: Path | None = None
        for token in re.findall(r"`([^`]+)`", row[4]):
            path_part, _, func = token.partition("::")
            if path_part:
                path = ROOT / path_part if "/" in path_part else (last or ROOT).parent / path_part
                if not path.exists():
                    missing.append(token)
                    continue
                last = path
            if func:
                assert last is not None, token
                if not re.search(rf"^\s*def {re.escape(func)}\(", last.read_text(), re.M):
                    missing.append(f"{last.relative_to(ROOT)}::{func}")
    assert missing == []


def test_ci_runs_the_quick_start_test_command() -> None:
    """.ci/run executes the README's second Quick-start command, and it is the full suite."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    command = [line for line in blocks[1].splitlines() if line and not line.startswith("#")]
    assert len(command) == 1
    assert "pytest" in command[0]
    assert "-k" not in command[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "blocks[1]" in ci


def test_docs_are_linked() -> None:
    """The hazards, conformance, demo, invariants, static-checking, fuzzing, contracts and
    type-checker pages are reachable from the README."""
    for page in (
        "docs/hazards.md",
        "docs/conformance.md",
        "docs/binder-demo.md",
        "docs/invariants.md",
        "docs/static-checking.md",
        "docs/fuzzing.md",
        "docs/contracts.md",
        "docs/type-checkers.md",
    ):
        assert f"({page})" in README, page
        assert (ROOT / page).exists(), page


def test_invariants_page_lists_every_invariant() -> None:
    """docs/invariants.md has one row for each invariant check_invariants can name, and no
    other."""
    code = (ROOT / "src" / "safemm" / "model" / "invariants.py").read_text()
    checked = set(re.findall(r'_fail\(\s*"([a-z_-]+)"', code))
    page = (ROOT / "docs" / "invariants.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_-]+)` \|", page, re.M))
    assert checked == rows, checked ^ rows


def test_static_column_for_atomic_context() -> None:
    """``might-sleep`` and ``schedule-atomic`` have their static column on docs/contracts.md:
    the ``safemm check`` code, and reject cases that exist."""
    rows = {_id(r[0]): r for r in _table_rows()}
    for contract in ("might-sleep", "schedule-atomic"):
        static = rows[contract][2]
        assert "`atomic-sleep`" in static and "safemm check" in static, static
        for case in re.findall(r"\ba(\d)\b", static):
            assert list((ROOT / "tests" / "atomic" / "reject").glob(f"a{case}_*.py")), case


def test_supported_pythons_agree() -> None:
    """The nox matrix, the classifiers, ``requires-python``, .ci/run and the README name the
    same CPython versions: what ``requires-python`` admits from below is what is tested."""
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    m = re.search(r"^PYTHONS = (\[.*\])$", noxfile, re.M)
    assert m is not None
    pythons = ast.literal_eval(m.group(1))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    versions = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    classified = [m[1] for c in project["classifiers"] if (m := versions.fullmatch(c))]
    assert classified == pythons
    assert project["requires-python"] == f">={pythons[0]}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"-s {' '.join(f'tests-{v}' for v in pythons[1:])}" in ci
    listed = ", ".join(pythons[:-1]) + f" or {pythons[-1]}"
    assert f"CPython {listed} (the versions CI tests)" in README
