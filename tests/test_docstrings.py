"""Every public name has a docstring, so the API reference (``bash .ci/docs``) documents it.

A public name is one in a public module's ``__all__`` or, for a package without ``__all__``
(:mod:`safemm.model`), one of its explicit ``from .x import y as y`` re-exports. Classes and
functions need ``__doc__``; a class's own public methods and properties need one too (an
override may inherit its base's); a constant needs a ``#:`` comment or a string after its
assignment where it is defined, which is what autodoc shows.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from functools import cache
from pathlib import Path
from types import FunctionType, ModuleType

import pytest
from docs.api_names import imports_of, reexport_chain

#: The modules the API reference documents.
PUBLIC_MODULES = [
    "safemm",
    "safemm.mm",
    "safemm.virt",
    "safemm.page",
    "safemm.fs",
    "safemm.task",
    "safemm.sync",
    "safemm.rcu",
    "safemm.shrinker",
    "safemm.folio",
    "safemm.atomic",
    "safemm.testing",
    "safemm.explore",
    "safemm.fuzz",
    "safemm.check",
    "safemm.model",
    "safemm.cli",
    "safemm.demo",
    "safemm.conformance",
    "safemm.conformance.compare",
    "safemm.conformance.generator",
    "safemm.conformance.kernel_side",
    "safemm.conformance.layout",
    "safemm.conformance.model_side",
    "safemm.conformance.ops",
    "safemm.conformance.selftests",
    "safemm.conformance.steps",
]


def _source(module: ModuleType) -> ast.Module:
    return ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))


def public_names(name: str) -> list[str]:
    """The public names of a module: its ``__all__``, else its explicit re-exports."""
    module = importlib.import_module(name)
    names: list[str] | None = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [local for local, source in imports_of(name).items() if source.explicit]


@cache
def _attribute_docs(name: str) -> frozenset[str]:
    """Names assigned at the top level of a module with a ``#:`` comment on the line above
    or a string statement right after."""
    module = importlib.import_module(name)
    lines = Path(module.__file__ or "").read_text(encoding="utf-8").splitlines()
    body = _source(module).body
    documented: set[str] = set()
    for i, node in enumerate(body):
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        after = body[i + 1] if i + 1 < len(body) else None
        string_after = (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        )
        comment_above = lines[node.lineno - 2].lstrip().startswith("#:")
        if string_after or comment_above:
            documented.update(targets)
    return frozenset(documented)


def constant_documented(module: str, attr: str) -> bool:
    """Whether a constant has its doc comment where it is defined (re-exports followed)."""
    return any(name in _attribute_docs(source) for source, name in reexport_chain(module, attr))


def _has_own_class_doc(cls: type) -> bool:
    doc = cls.__dict__.get("__doc__")
    if not doc or not doc.strip():
        return False
    # dataclasses and NamedTuples make up "Name(field, ...)" when the class has none
    return not (
        (dataclasses.is_dataclass(cls) or issubclass(cls, tuple))
        and doc.startswith(f"{cls.__name__}(")
    )


def missing_docstrings(name: str) -> list[str]:
    """Dotted names of the public objects of ``name`` that have no documentation."""
    module = importlib.import_module(name)
    missing = [] if (module.__doc__ or "").strip() else [name]
    for public in public_names(name):
        obj = getattr(module, public)
        where = f"{name}.{public}"
        if isinstance(obj, type):
            if not _has_own_class_doc(obj):
                missing.append(where)
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(value, classmethod | staticmethod):
                    value = value.__func__
                if isinstance(value, FunctionType):
                    doc = inspect.getdoc(getattr(obj, attr))
                elif isinstance(value, property):
                    doc = inspect.getdoc(value)
                else:
                    continue  # fields, enum members, nested constants
                if not doc:
                    missing.append(f"{where}.{attr}")
        elif callable(obj) and hasattr(obj, "__code__"):
            if not inspect.getdoc(obj):
                missing.append(where)
        elif not constant_documented(name, public):
            missing.append(where)
    return missing


#: Public top-level modules the reference leaves out, each with the reason.
NOT_IN_REFERENCE = {
    "safemm.bench": "a script (python -m safemm.bench); its figures are in the README",
}


def test_every_public_module_is_checked() -> None:
    """A new public module (no leading underscore; at the top level or in
    :mod:`safemm.conformance`, whose modules are public) is added to :data:`PUBLIC_MODULES`."""
    import pkgutil

    import safemm
    import safemm.conformance

    public = {
        f"{package.__name__}.{info.name}"
        for package in (safemm, safemm.conformance)
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    }
    assert public - set(PUBLIC_MODULES) - set(NOT_IN_REFERENCE) == set()


def test_the_reference_documents_every_public_module() -> None:
    """Each module checked here has its ``automodule`` on a page of docs/reference."""
    root = Path(__file__).resolve().parents[1] / "docs" / "reference"
    documented = {
        line.split("::", 1)[1].strip()
        for page in root.glob("*.rst")
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith(".. automodule::")
    }
    assert set(PUBLIC_MODULES) <= documented


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_names_have_docstrings(module: str) -> None:
    """Each public module, class, function, method, property and constant is documented."""
    assert missing_docstrings(module) == []


def test_the_check_reports_each_kind_of_missing_docstring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is not vacuous: a module with one undocumented name of each kind."""
    (tmp_path / "undocumented_example.py").write_text(
        '''"""A module."""

__all__ = ["Documented", "Bare", "LIMIT", "SIZE", "function", "documented_function"]

#: Documented.
LIMIT = 1
SIZE = 2


class Documented:
    """Documented."""

    def method(self) -> None:
        pass

    @property
    def value(self) -> int:
        """Documented."""
        return 1


class Bare:
    pass


def function() -> None:
    pass


def documented_function() -> None:
    """Documented."""
''',
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert missing_docstrings("undocumented_example") == [
        "undocumented_example.Documented.method",
        "undocumented_example.Bare",
        "undocumented_example.SIZE",
        "undocumented_example.function",
    ]
