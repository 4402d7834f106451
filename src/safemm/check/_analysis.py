"""The interprocedural part: which functions may sleep (and through what chain), which run in
atomic context, and the errors.

A function may sleep when it is marked ``@may_sleep`` (in the safe layer, or in the user's
source) or when a call in it may sleep. A method call may reach the method the receiver's
type resolves to and every override of it in the checked code. A call whose sleeping depends
on a gfp argument (``Page.alloc_page``) sleeps when the constant has ``__GFP_DIRECT_RECLAIM``,
or when the argument is not a constant.

Two questions per function: does it sleep at all ("any"); and does it sleep while the atomic
context its caller holds is still held ("entry") — which differ only for code that leaves a
list_lru walk's spinlock with ``LruWalk.unlock()`` around the sleeping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from safemm.model import atomic as _marks
from safemm.model.page_alloc import Gfp

from ._summary import Call, Func, ModuleSummary

__all__ = ["Error", "analyze"]

_RECLAIM = int(Gfp.DIRECT_RECLAIM)


@dataclass(frozen=True, order=True)
class Error:
    """One finding, printed the way mypy prints an error."""

    path: str
    line: int
    col: int
    message: str
    code: str

    def render(self) -> str:
        """``path:line:col: error: message  [code]``, with a 1-based column, as mypy prints."""
        return f"{self.path}:{self.line}:{self.col + 1}: error: {self.message}  [{self.code}]"


#: A reason a function may sleep: the calls from it down to the marked one, and that one's fix.
_Why = tuple[tuple[str, ...], str]


class _Program:
    def __init__(self, summaries: list[ModuleSummary]) -> None:
        self.funcs: dict[str, Func] = {}
        classes: dict[str, tuple[list[str], list[str]]] = {}
        for s in summaries:
            for f in s.funcs:
                self.funcs[f.key] = f
            classes.update(s.classes)
        self.overrides: dict[str, list[str]] = {}
        for cls, (mro, methods) in classes.items():
            for base in mro[1:]:
                for m in methods:
                    self.overrides.setdefault(f"{base}.{m}", []).append(f"{cls}.{m}")
        self.why: dict[tuple[str, bool], _Why] = {}
        self.unknown: dict[str, str] = {}

    def targets(self, c: Call) -> list[str]:
        out: list[str] = []
        for t in c.callees:
            for x in [t, *self.overrides.get(t, [])]:
                if x not in out:
                    out.append(x)
        return out

    def name(self, key: str) -> str:
        f = self.funcs.get(key)
        if f is not None:
            return f.name
        m = _marks.SLEEPS.get(key)
        if m is not None:
            return m.name
        parts = key.split(".")
        return ".".join(parts[-2:]) if len(parts) > 1 and parts[-2][:1].isupper() else parts[-1]

    def marked(self, key: str, c: Call) -> _Why | None:
        """Why the call ``c`` of marked function ``key`` sleeps, or None."""
        m = _marks.SLEEPS.get(key)
        f = self.funcs.get(key)
        if m is not None:
            fix, gfp, index, default = m.fix, m.gfp, m.gfp_index, m.gfp_default
        elif f is not None and f.sleeps is not None:
            fix, gfp, index, default = f.sleeps
        else:
            return None
        note = ""
        if gfp is not None:
            slot = gfp if gfp in c.consts else str(index) if str(index) in c.consts else None
            value = default if slot is None else c.consts[slot]
            if value is not None and not value & _RECLAIM:
                return None
            if value is None:
                note = " (gfp is not a constant: assumed to reclaim)"
        return ((c.text + note,), fix or "move the call out of the atomic context")

    def sleeps(self, key: str, entry: bool) -> _Why | None:
        return self.why.get((key, entry))

    def call_sleeps(self, c: Call, entry: bool) -> tuple[str, _Why] | None:
        """(target, why) when the call may sleep; ``entry``: judge callees by whether they
        sleep with the caller's context held."""
        for t in self.targets(c):
            w = self.marked(t, c)
            if w is not None:
                return t, w
            w = self.sleeps(t, entry)
            if w is not None:
                return t, ((c.text, *w[0]), w[1])
        return None

    def solve(self) -> None:
        changed = True
        while changed:
            changed = False
            for key, f in self.funcs.items():
                for entry in (False, True):
                    if (key, entry) in self.why:
                        continue
                    for c in f.calls:
                        if entry and not c.entry and c.ctx is None:
                            continue
                        found = self.call_sleeps(c, entry and c.ctx is None)
                        if found is not None:
                            self.why[key, entry] = found[1]
                            changed = True
                            break
                if key not in self.unknown:
                    for c in f.calls:
                        u = c.unknown
                        if u is None:
                            u = next(
                                (
                                    f"{self.name(t)}() → {self.unknown[t]}"
                                    for t in self.targets(c)
                                    if t in self.unknown
                                ),
                                None,
                            )
                        if u is not None:
                            self.unknown[key] = u
                            changed = True
                            break

    def entered(self) -> dict[str, str]:
        """Functions that run in atomic context from their first line, with the context."""
        out: dict[str, str] = {}
        for key, f in self.funcs.items():
            if f.context is not None:
                out[key] = f"{f.context} (@atomic_context)"
        for f in self.funcs.values():
            for c in f.calls:
                for t in c.callees:
                    m = _marks.CALLBACKS.get(t)
                    g = self.funcs.get(t)
                    if m is not None:
                        param, index, what = m.param, m.index, m.what
                    elif g is not None and g.callback is not None:
                        param, index, what = g.callback
                    else:
                        continue
                    for slot, fns in c.callbacks:
                        if slot not in (param, str(index)):
                            continue
                        for fn in fns:
                            for x in [fn, *self.overrides.get(fn, [])]:
                                out.setdefault(
                                    x, f"{what} passed to {self.name(t)}() at {f.path}:{c.line}"
                                )
        return out


def analyze(summaries: list[ModuleSummary], *, strict: bool = False) -> list[Error]:
    """Every sleeping call in atomic context (and, with ``strict``, every call that could not
    be resolved there)."""
    p = _Program(summaries)
    p.solve()
    entered = p.entered()
    errors: set[Error] = set()
    for key, f in p.funcs.items():
        entry_ctx = entered.get(key)
        for c in f.calls:
            if c.ctx is not None:
                ctx, entry = c.ctx, False
            elif entry_ctx is not None and c.entry:
                ctx, entry = entry_ctx, True
            else:
                continue
            found = p.call_sleeps(c, entry)
            if found is not None:
                _target, (chain, fix) = found
                how = " → ".join(chain)
                if len(chain) == 1:
                    what = f"{how} may sleep"
                else:
                    what = f"{chain[0]} may sleep ({' → '.join(chain[1:])})"
                errors.add(
                    Error(
                        f.path,
                        c.line,
                        c.col,
                        f"{what} in atomic context: {ctx}; fix: {fix}",
                        "atomic-sleep",
                    )
                )
            elif strict:
                u = c.unknown or next(
                    (f"{p.name(t)}() → {p.unknown[t]}" for t in p.targets(c) if t in p.unknown),
                    None,
                )
                if u is not None:
                    errors.add(
                        Error(
                            f.path,
                            c.line,
                            c.col,
                            f"{c.text}: cannot tell whether it sleeps ({u}); assumed not to, in "
                            f"atomic context: {ctx}",
                            "atomic-unknown",
                        )
                    )
    return sorted(errors)
