"""The drivers are written against the safe layer only: no module of safemm.demo.drivers
imports safemm.model (or a private safe-layer module), names typing.cast or Any."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import safemm.demo.drivers

DRIVERS = Path(safemm.demo.drivers.__file__).parent
#: What driver code may import: the safe layer, the package's public top level (errors and
#: constants), its own modules, and the standard library helpers it uses.
ALLOWED = {
    "safemm",
    "safemm.folio",
    "safemm.fs",
    "safemm.mm",
    "safemm.page",
    "safemm.shrinker",
    "safemm.sync",
    "safemm.task",
    "safemm.virt",
    "__future__",
    "abc",
    "collections",
    "dataclasses",
    "errno",
    "typing",
    "typing_extensions",
}
SOURCES = sorted(DRIVERS.glob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_there_are_driver_modules() -> None:
    """The check looks at the real files."""
    names = {p.stem for p in SOURCES}
    assert {"alloc", "device", "eager", "on_receive", "fault_unmap", "abi"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_the_safe_layer(path: Path) -> None:
    """Absolute imports are the safe layer, ``safemm`` itself or the standard library; a
    ``from safemm import`` names no model module."""
    tree = ast.parse(path.read_text(), str(path))
    for module, names in _imports(tree):
        assert module in ALLOWED, f"{path.name} imports {module}"
        assert not module.startswith("safemm.model"), f"{path.name} imports {module}"
        if module == "safemm":
            assert "model" not in names, f"{path.name} imports safemm.model"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_cast_no_any(path: Path) -> None:
    """No ``cast`` and no ``Any``: the typestate has no holes in the drivers."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id not in ("cast", "Any"), f"{path.name}:{node.lineno} uses {node.id}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("cast", "Any"), f"{path.name}:{node.lineno}"
