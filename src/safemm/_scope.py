"""What keeps a safe-layer handle valid, and the token that stops anyone forging one.

A :class:`Scope` is alive while the thing a handle depends on lasts: a lock guard until it is
unlocked, a driver hook until it returns, a borrowed reference until its lender ends. Every
handle checks its scope before touching the model, and raises
:class:`~safemm.StaleReferenceError` naming what ended it — the run-time half of Rust's
lifetimes, which mypy cannot express.

Constructors of state objects take a private :class:`_Token`: ``VmAreaRef(...)`` from user code
is a type error (missing argument) and, at run time, a TypeError.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, NoReturn, final

from typing_extensions import override

from .model.errors import StaleReferenceError

if TYPE_CHECKING:
    from .model.kernel import Kernel

__all__ = ["SafeObject", "Scope"]


class SafeObject:
    """Base of every safe-layer handle: a class marked ``@final`` cannot be subclassed at run
    time either (``typing.final`` sets ``__final__``), so a state cannot be minted by
    subclassing a leaf state, even around the type checker."""

    __slots__ = ()

    @override
    def __init_subclass__(cls, **kwargs: object) -> None:
        for base in cls.__mro__[1:]:
            if base.__dict__.get("__final__", False):
                raise TypeError(
                    f"{base.__name__} is a final state: it cannot be subclassed (a subclass "
                    "could forge its guarantees)"
                )
        super().__init_subclass__()


@final
class _Token:
    """The private key to every safe-layer constructor."""

    __slots__ = ()


_TOKEN = _Token()


def check_token(key: _Token, cls: str) -> None:
    """Refuse construction without the private token."""
    if key is not _TOKEN:
        raise TypeError(
            f"{cls} has no public constructor: obtain it from the safe API (a lock guard, a "
            "driver hook, or a state transition such as as_mixedmap_vma())"
        )


@final
class Scope(SafeObject):
    """A lifetime: alive until :meth:`end` is called with the reason.

    Invariant: once ended, it never becomes alive again; ``ended_by`` says why.
    """

    __slots__ = ("alive", "detached_ok", "ended_by", "kernel", "what")

    def __init__(self, kernel: Kernel, what: str, *, detached_ok: bool = False) -> None:
        self.kernel = kernel
        self.what = what
        self.alive = True
        self.ended_by = ""
        #: Handles may read a VMA that is already detached (inside ``->close``).
        self.detached_ok = detached_ok

    def end(self, why: str) -> None:
        """End the scope; handles that depend on it become stale."""
        self.alive = False
        self.ended_by = why


def stale(handle: str, scope: Scope) -> NoReturn:
    """Raise the error for a handle used after its scope ended."""
    raise StaleReferenceError(
        f"{handle} used after {scope.ended_by} (it was valid only within {scope.what})"
    )


_KERNEL: ContextVar[Kernel | None] = ContextVar("safemm_running_kernel", default=None)
_HOOK_SCOPE: ContextVar[Scope | None] = ContextVar("safemm_hook_scope", default=None)


def running_kernel(what: str) -> Kernel:
    """The kernel whose driver code is running (set around every hook the model calls)."""
    k = _KERNEL.get()
    if k is None:
        raise RuntimeError(
            f"{what} needs a running kernel: call it from driver code (a FileOperations, "
            "VmOperations or Shrinker hook) or inside safemm.testing.driver_context()"
        )
    return k


def hook_scope(what: str) -> Scope:
    """The scope of the hook invocation that is running now."""
    s = _HOOK_SCOPE.get()
    if s is None:
        raise RuntimeError(f"{what} can only be used inside a driver hook")
    return s


class HookCall:
    """Context manager around one call into driver code: sets the running kernel and a fresh
    hook scope, ended (with ``reason``) when the hook returns."""

    __slots__ = ("_k", "_s", "reason", "scope")

    _k: Token[Kernel | None]
    _s: Token[Scope | None]

    def __init__(
        self, kernel: Kernel, what: str, reason: str, *, detached_ok: bool = False
    ) -> None:
        self.scope = Scope(kernel, what, detached_ok=detached_ok)
        self.reason = reason

    def __enter__(self) -> Scope:
        self._k = _KERNEL.set(self.scope.kernel)
        self._s = _HOOK_SCOPE.set(self.scope)
        return self.scope

    def __exit__(self, *exc: object) -> None:
        self.scope.end(self.reason)
        _HOOK_SCOPE.reset(self._s)
        _KERNEL.reset(self._k)
