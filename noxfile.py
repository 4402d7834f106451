"""The test matrix: the suite on every supported Python, and the lint, type-check, docs and
release jobs, each in a fresh virtual environment (``nox -l`` lists them).

``nox -s tests-3.12`` runs the suite on one Python (arguments after ``--`` go to pytest);
``nox -s lint typecheck`` the static checks alone. The supported Pythons are the ones
``requires-python`` and the classifiers in pyproject.toml name.
"""

from __future__ import annotations

import nox

PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite (tests, type tests under every checker, lint, stubtest, conformance)."""
    session.install("-e", ".[test,typecheck]")
    session.run("python", "-m", "pytest", "-n", "2", *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff, with the pinned version of the test extra."""
    session.install("-e", ".[test]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the project, then the type tests under mypy, basedpyright, pyrefly
    and ty (one pytest item per checker and case)."""
    session.install("-e", ".[test,typecheck]")
    session.run("mypy")
    session.run(
        "python", "-m", "pytest", "-n", "2", "tests/test_typing.py", "tests/test_type_checkers.py"
    )


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """The API reference, built with warnings as errors (.ci/docs)."""
    session.run("bash", ".ci/docs", *session.posargs, external=True)


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """Build, check and install the sdist and the wheel (.ci/release-check)."""
    session.run("bash", ".ci/release-check", *session.posargs, external=True)
