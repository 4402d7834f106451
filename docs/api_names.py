"""Where the names of a safemm module come from: read by the site (``conf.py``) and by
``tests/test_docstrings.py``, without importing Sphinx."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple


class Imported(NamedTuple):
    """A name bound by ``from MODULE import NAME [as ...]``.

    Attributes:
        module: the absolute name of the module imported from.
        name: the name in that module.
        explicit: written ``NAME as NAME``, the spelling of a deliberate re-export.
    """

    module: str
    name: str
    explicit: bool


@cache
def imports_of(module: str) -> dict[str, Imported]:
    """``local name -> Imported`` for every ``from ... import`` in ``module``, including those
    under ``if TYPE_CHECKING:`` and inside functions."""
    path = Path(importlib.import_module(module).__file__ or "")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, Imported] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = f"{base}.{node.module}" if node.level else node.module
            for alias in node.names:
                local = alias.asname or alias.name
                found.setdefault(local, Imported(source, alias.name, alias.asname == alias.name))
    return found


def reexport_chain(module: str, name: str) -> Iterator[tuple[str, str]]:
    """``(module, name)``, then each ``(module, name)`` it was imported from, in turn, up to
    the module that assigns it."""
    seen: set[tuple[str, str]] = set()
    while (module, name) not in seen:
        seen.add((module, name))
        yield module, name
        source = imports_of(module).get(name)
        if source is None:
            return
        module, name = source.module, source.name
