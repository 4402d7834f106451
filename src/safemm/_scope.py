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

from abc import abstractmethod
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, NoReturn, Self, final

from typing_extensions import override

from .model.errors import StaleReferenceError

if TYPE_CHECKING:
    from types import TracebackType

    from .model.kernel import Kernel

__all__ = ["Releasable", "SafeObject", "Scope"]


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


class Releasable(SafeObject):
    """Base of what a ``with`` block releases when it ends: a lock guard, an owned reference.

    The block's end calls :meth:`_end_block`, which releases only what is still held: a
    release inside the block (an explicit ``unlock()`` or ``mmput()``, or a move such as
    ``into_mmput_async()``) is not repeated.
    """

    __slots__ = ()

    @abstractmethod
    def _end_block(self) -> None:
        """Release what is still held when the ``with`` block ends."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end_block()


@final
class _Token:
    """The private key to every safe-layer constructor."""

    __slots__ = ()


_TOKEN = _Token()


class Missing:
    """A run-time stand-in for a method a state does not have: reading it raises the
    AttributeError the type checker's ``attr-defined`` would, plus the legal spelling.

    Installed on the base state class for the names of methods its subclasses add (a
    subclass's real method wins the lookup), so only a call around the types reaches it — at
    no cost to attribute lookups, unlike a ``__getattr__`` hook.
    """

    __slots__ = ("hint", "name")

    def __init__(self, name: str, hint: str) -> None:
        self.name = name
        self.hint = hint

    def __get__(self, obj: object, objtype: type | None = None) -> object:
        if obj is None:
            return self
        raise AttributeError(
            f"{type(obj).__name__!r} object has no attribute {self.name!r}: {self.hint}"
        )


def install_missing(cls: type, hints: dict[str, str]) -> None:
    """Give ``cls`` a :class:`Missing` for each hinted name it does not define itself."""
    for name, hint in hints.items():
        if name not in cls.__dict__:
            setattr(cls, name, Missing(name, hint))


def check_token(key: _Token, cls: str) -> None:
    """Refuse construction without the private token."""
    if key is not _TOKEN:
        raise TypeError(
            f"{cls} has no public constructor: obtain it from the safe API (a lock guard, a "
            "driver hook, or a state transition such as as_mixedmap_vma())"
        )


class Scope(SafeObject):
    """A lifetime: alive until it ends, and then ``ended_by`` says why.

    Lock guards are scopes themselves (one object per lock hold, with ``what`` and
    ``detached_ok`` as class attributes); :class:`HookScope` is the scope of one call into
    driver code. Invariant: once ended, a scope never becomes alive again.
    """

    __slots__ = ("alive", "ended_by")

    #: What the scope is, for messages ("the mmap read lock", "hello->mmap").
    what: str
    #: Handles may read a VMA that is already detached (inside ``->close``).
    detached_ok: bool

    def end(self, why: str) -> None:
        """End the scope; handles that depend on it become stale."""
        self.alive = False
        self.ended_by = why


@final
class HookScope(Scope):
    """The scope of one call into driver code (a hook, a shrinker, a test context)."""

    __slots__ = ("detached_ok", "kernel", "what")

    def __init__(self, kernel: Kernel, what: str, *, detached_ok: bool = False) -> None:
        self.alive = True
        self.ended_by = ""
        self.kernel = kernel
        self.what = what
        self.detached_ok = detached_ok


def stale(handle: str, scope: Scope) -> NoReturn:
    """Raise the error for a handle used after its scope ended."""
    raise StaleReferenceError(
        f"{handle} used after {scope.ended_by} (it was valid only within {scope.what})"
    )


_KERNEL: ContextVar[Kernel | None] = ContextVar("safemm_running_kernel", default=None)
_HOOK_SCOPE: ContextVar[HookScope | None] = ContextVar("safemm_hook_scope", default=None)


def running_kernel(what: str) -> Kernel:
    """The kernel whose driver code is running (set around every hook the model calls)."""
    k = _KERNEL.get()
    if k is None:
        raise RuntimeError(
            f"{what} needs a running kernel: call it from driver code (a FileOperations, "
            "VmOperations or Shrinker hook) or inside safemm.testing.driver_context()"
        )
    return k


def hook_scope(what: str) -> HookScope:
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
    _s: Token[HookScope | None]

    def __init__(
        self, kernel: Kernel, what: str, reason: str, *, detached_ok: bool = False
    ) -> None:
        self.scope = HookScope(kernel, what, detached_ok=detached_ok)
        self.reason = reason

    def __enter__(self) -> HookScope:
        self._k = _KERNEL.set(self.scope.kernel)
        self._s = _HOOK_SCOPE.set(self.scope)
        return self.scope

    def __exit__(self, *exc: object) -> None:
        self.scope.end(self.reason)
        _HOOK_SCOPE.reset(self._s)
        _KERNEL.reset(self._k)
