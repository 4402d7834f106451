"""The marks on what may sleep and what runs in atomic context: one source of truth.

Every call of the safe layer that may sleep is decorated ``@may_sleep(fix=...)``; a class
whose live instances are atomic context (a spinlock guard, an RCU read-side section) is
decorated ``@atomic_guard(...)``; a function that runs a callable argument in atomic context
(``ListLru.walk`` runs its isolate callback under the list's spinlock) is decorated
``@atomic_callback(param, ...)``; ``@atomic_unlock`` / ``@atomic_relock`` mark the methods
that leave and re-enter an atomic context (``LruWalk.unlock`` / ``relock``).

Two checks read the same marks, so they cannot drift apart:

- at run time, :func:`safemm.model.sched.might_sleep` names the marked call (and its fix) in
  its "sleeping function called from invalid context" report (``sleeping_call``), and a
  test audits that every run-time ``might_sleep`` reached from driver code passes through a
  marked call (``audit``);
- statically, ``safemm check`` (:mod:`safemm.check`) reads the registries below for the safe
  layer, and the same decorators in the source of the user's own code.

The decorators return the function or class unchanged: a mark costs nothing at run time.
This module is the model's (so ``sched`` can read it without importing the safe layer); users
import the decorators from :mod:`safemm.atomic`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from types import CodeType, FrameType

__all__ = [
    "CALLBACKS",
    "CONTEXTS",
    "GUARDS",
    "RELOCKS",
    "SLEEPS",
    "UNLOCKS",
    "CallbackMark",
    "SleepMark",
    "atomic_callback",
    "atomic_context",
    "atomic_guard",
    "atomic_relock",
    "atomic_unlock",
    "may_sleep",
    "sleeping_call",
]

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")


@dataclass(frozen=True)
class SleepMark:
    """A function that may sleep.

    Attributes:
        fullname: ``module.qualname``, as mypy names the function.
        name: how messages name it (``Mutex.lock``).
        fix: what to do instead in atomic context.
        gfp: the parameter whose gfp flags decide (it sleeps only with
            ``__GFP_DIRECT_RECLAIM``), or None when it always may sleep.
        gfp_index: that parameter's position in a call (``self`` not counted).
        gfp_default: its default value, or None when it has none.
    """

    fullname: str
    name: str
    fix: str
    gfp: str | None = None
    gfp_index: int | None = None
    gfp_default: int | None = None


@dataclass(frozen=True)
class CallbackMark:
    """A function that runs its callable parameter ``param`` in atomic context ``what``."""

    fullname: str
    param: str
    index: int
    what: str


#: Functions that may sleep, by full name.
SLEEPS: dict[str, SleepMark] = {}
#: The same marks by code object (what a frame shows at run time).
_BY_CODE: dict[CodeType, SleepMark] = {}
#: Functions whose body runs in atomic context, with a description of the context.
CONTEXTS: dict[str, str] = {}
#: Functions that call a callable argument in atomic context.
CALLBACKS: dict[str, CallbackMark] = {}
#: Classes whose live instances are atomic context; ``{lock}`` in the description is
#: replaced by the expression the guard was taken from.
GUARDS: dict[str, str] = {}
#: Methods that end an atomic context (a guard's unlock, ``LruWalk.unlock``).
UNLOCKS: set[str] = set()
#: Methods that re-enter the atomic context a callback runs in (``LruWalk.relock``).
RELOCKS: set[str] = set()

#: Test hook: when set, called by every run-time ``might_sleep`` with its ``where``.
audit: Callable[[str], None] | None = None


def _fullname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def _display(qualname: str) -> str:
    return ".".join(p for p in qualname.split(".") if p != "<locals>")


def _positional(fn: Callable[P, R]) -> list[inspect.Parameter]:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name in ("self", "cls") and "." in _fullname(fn):
        params = params[1:]
    return params


def may_sleep(
    fix: str = "", *, gfp: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function that may sleep (it takes a sleeping lock, allocates with a gfp that may
    reclaim, waits...). Calling it in atomic context is an ``atomic-sleep`` error.

    Args:
        fix: what to do instead in atomic context (shown with the error).
        gfp: the name of a ``Gfp`` parameter: the call sleeps only when its flags include
            ``__GFP_DIRECT_RECLAIM`` (read where the argument is a constant).
    """

    def mark(fn: Callable[P, R]) -> Callable[P, R]:
        name = _fullname(fn)
        index = default = None
        if gfp is not None:
            params = _positional(fn)
            names = [p.name for p in params]
            if gfp not in names:
                raise TypeError(f"may_sleep(gfp={gfp!r}): {name} has no such parameter")
            index = names.index(gfp)
            value = params[index].default
            default = int(value) if isinstance(value, int) else None
        m = SleepMark(name, _display(getattr(fn, "__qualname__", "?")), fix, gfp, index, default)
        SLEEPS[name] = m
        code = getattr(fn, "__code__", None)
        if code is not None:
            _BY_CODE[code] = m
        return fn

    return mark


def atomic_context(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function whose body always runs in atomic context (a callback its caller runs
    under a spinlock, with interrupts off...): nothing in it may sleep."""

    def mark(fn: Callable[P, R]) -> Callable[P, R]:
        CONTEXTS[_fullname(fn)] = what
        return fn

    return mark


def atomic_callback(param: str, what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function that calls its callable parameter ``param`` in atomic context
    (``ListLru.walk`` and its isolate callback): the callback passed there may not sleep."""

    def mark(fn: Callable[P, R]) -> Callable[P, R]:
        names = [p.name for p in _positional(fn)]
        if param not in names:
            raise TypeError(f"atomic_callback({param!r}): {_fullname(fn)} has no such parameter")
        CALLBACKS[_fullname(fn)] = CallbackMark(_fullname(fn), param, names.index(param), what)
        return fn

    return mark


def atomic_guard(what: str) -> Callable[[type[C]], type[C]]:
    """Mark a class whose live instances are atomic context (a spinlock guard): from the
    statement that takes one (or the ``with`` block) until its ``unlock()``."""

    def mark(cls: type[C]) -> type[C]:
        GUARDS[_fullname(cls)] = what
        return cls

    return mark


def atomic_unlock(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a method that ends the atomic context its receiver stands for."""
    UNLOCKS.add(_fullname(fn))
    return fn


def atomic_relock(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a method that re-enters the atomic context its receiver stands for."""
    RELOCKS.add(_fullname(fn))
    return fn


def sleeping_call() -> SleepMark | None:
    """The innermost marked call on the current stack (run time), if any."""
    f: FrameType | None = sys._getframe(1)
    while f is not None:
        m = _BY_CODE.get(f.f_code)
        if m is not None:
            return m
        f = f.f_back
    return None
