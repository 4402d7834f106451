"""Check that a reproducer reproduces, and make it as short as it can be.

Hypothesis shrinks the choices that made a program; what it leaves can still hold statements
the failure does not need (it stops after a number of successful shrinks, and deleting a
step changes what later steps' drawn indices point at). So the rendered reproducer is run —
as the user will run it, with ``exec`` — and then statements are deleted one at a time, from
the end, keeping each deletion after which the reproducer still fails the same way
(:func:`same_failure`): a deletion that leaves a name undefined, changes an outcome a
``pytest.raises`` pins, or diverges from a race's schedule token fails differently and is
undone. Finally the variables are renumbered in order (``p1, p2, ...``).
"""

from __future__ import annotations

import gc
import math
import re
import sys
import time
from dataclasses import replace

from safemm.model import exit_report
from safemm.model.errors import InvariantError
from safemm.model.kernel import Kernel

from ._render import Program, render
from ._world import FuzzFailure

__all__ = ["minimize", "run_reproducer", "same_failure"]


def _first_line(text: str) -> str:
    first = (text.strip().splitlines() or [""])[0]
    return re.sub(r"0x[0-9a-f]+|\d+", "N", first)


def same_failure(exc: BaseException, f: FuzzFailure) -> bool:
    """Whether ``exc``, raised by a reproducer, is the failure ``f`` the fuzzer saw."""
    text = str(exc)
    if f.kind == "report":
        return getattr(exc, "contract", None) == f.contract or f"contract: {f.contract}:" in text
    if f.kind == "leak":
        return isinstance(exc, AssertionError) and "outlived every process" in text
    if f.kind == "invariant":
        return isinstance(exc, InvariantError) and f"invariant '{f.contract}'" in text
    return type(exc).__name__ == type(f.error).__name__ and _first_line(text) == _first_line(
        str(f.error)
    )


def run_reproducer(
    source: str, namespace: dict[str, object] | None = None
) -> BaseException | None:
    """``exec`` a reproducer and call its test function; the exception it raised, or None."""
    ns: dict[str, object] = {"__name__": "safemm_fuzz_reproducer"}
    if namespace:
        ns.update(namespace)
    exec(compile(source, "<safemm.fuzz reproducer>", "exec"), ns)
    tests = [v for k, v in ns.items() if k.startswith("test_fuzz_")]
    test = tests[0] if tests else None
    if not callable(test):
        raise ValueError("the reproducer defines no test_fuzz_* function")
    try:
        test()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        return e.with_traceback(None)
    return None


def _factory_namespace(prog: Program, expr: str, factory: object) -> tuple[str, dict[str, object]]:
    """Run with the factory object itself rather than importing it (it may live in a script
    or be a lambda): the import line is dropped and the name bound."""
    top = expr.split(".")[0]
    obj: object = factory
    if top != expr:
        mod = sys.modules.get(getattr(factory, "__module__", "") or "")
        obj = getattr(mod, top, None)
    return prog.factory_import, {top: obj}


def _renumber(lines: list[str]) -> list[str]:
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for ln in lines:
        m = re.match(r"([pfmr])(\d+) = ", ln)
        if m and m.group(0)[:-3] not in names:
            prefix = m.group(1)
            counts[prefix] = counts.get(prefix, 0) + 1
            names[m.group(0)[:-3]] = f"{prefix}{counts[prefix]}"
    if all(k == v for k, v in names.items()):
        return lines

    def sub(m: re.Match[str]) -> str:
        return names.get(m.group(0), m.group(0))

    return [re.sub(r"\b[pfmr]\d+\b", sub, ln) for ln in lines]


def minimize(
    f: FuzzFailure, factory_expr: str, factory: object, time_limit: float | None = 20.0
) -> None:
    """Verify ``f``'s reproducer (sets ``f.verified``) and shorten it in place.

    Args:
        f: the failure; its program, steps and reproducer are replaced by the shorter one.
        factory_expr: how the reproducer names the driver factory.
        factory: the factory itself.
        time_limit: seconds the deletion passes may take (``None``: until a pass deletes
            nothing; every loop is bounded by the program's length).
    """
    prog = f.program
    if prog is None:
        return
    strip, ns = _factory_namespace(prog, factory_expr, factory)
    deadline = math.inf if time_limit is None else time.monotonic() + time_limit
    before = exit_report.watched()

    def fails(p: Program) -> bool:
        src = render(p, f)
        if strip:
            src = src.replace(strip + "\n", "")
        # With gc off, the program's cyclic garbage is all in generation 0: collecting it
        # alone finds the same leaks as a full collection, much faster.
        src = src.replace("gc.collect()", "gc.collect(0)")
        enabled = gc.isenabled()
        gc.disable()
        try:
            e = run_reproducer(src, ns)
        except Exception:  # the source itself did not run (an import missing, say)
            return False
        finally:
            if enabled:
                gc.enable()
        return e is not None and same_failure(e, f)

    if not fails(prog):
        f.verified = False
        _reap(before)
        return
    f.verified = True
    lines = list(prog.lines)
    for _ in range(4):
        changed = False
        i = len(lines) - 1
        while i >= 1 and time.monotonic() < deadline:
            cand = lines[:i] + lines[i + 1 :]
            if fails(replace(prog, lines=tuple(cand))):
                lines = cand
                changed = True
            i -= 1
        if not changed:
            break
    # Pairs: a call and the one whose outcome depends on it (an injected failure and the
    # call it fails) go together or not at all.
    if len(lines) <= 30:
        i = len(lines) - 1
        while i >= 2 and time.monotonic() < deadline:
            for j in range(i - 1, 0, -1):
                cand = lines[:j] + lines[j + 1 : i] + lines[i + 1 :]
                if fails(replace(prog, lines=tuple(cand))):
                    lines = cand
                    break
            i = min(i - 1, len(lines) - 1)
    if prog.token is None:
        renamed = _renumber(lines)
        if renamed != lines and fails(replace(prog, lines=tuple(renamed))):
            lines = renamed
    f.program = replace(prog, lines=tuple(lines))
    f.steps = len(lines)
    f.reproducer = render(f.program, f)
    _reap(before)


def _reap(before: frozenset[Kernel]) -> None:
    """Take the reproducers' machines out of the interpreter's exit report (their leaks and
    held locks were the point), and collect them."""
    for k in exit_report.watched() - before:
        exit_report.forget(k)
    gc.collect()
