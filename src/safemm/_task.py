"""The running task, as driver code sees it (see :mod:`safemm.task`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from typing_extensions import override

from . import _mm
from ._scope import _TOKEN, SafeObject, _Token, check_token, hook_scope, running_kernel
from .model import sched as _sched
from .model.atomic import may_sleep

if TYPE_CHECKING:
    from ._scope import Scope
    from .model.sched import Task as _RawTask

__all__ = ["Task", "current", "msleep"]


@final
class Task(SafeObject):
    """The task running the current hook (``current``), valid for the hook's duration.

    Invariant: the task is running (it is ``current``) while this handle is valid.
    """

    __slots__ = ("_scope", "_task")

    def __init__(self, _key: _Token, task: _RawTask, scope: Scope) -> None:
        check_token(_key, "Task")
        self._task = task
        self._scope = scope

    @property
    def pid(self) -> int:
        """The task's pid (0 for kernel threads)."""
        return self._task.pid

    @property
    def comm(self) -> str:
        """The task's name."""
        return self._task.comm

    def mm(self) -> _mm.MmWithUser | None:
        """The task's mm, borrowed for the duration of the hook (``current->mm``); None for a
        kernel thread or an exiting task. ``CurrentTask::mm()`` in Rust: no refcount change;
        take :meth:`MmWithUser.mmgrab` to keep it."""
        mm = self._task.mm
        if mm is None:
            return None
        return _mm.MmWithUser(_TOKEN, mm, self._scope)

    @override
    def __repr__(self) -> str:
        return f"<Task {self._task.comm}:{self._task.pid}>"


def current() -> Task:
    """The task running the current driver hook (``current!()``)."""
    k = running_kernel("current()")
    return Task(_TOKEN, k.current, hook_scope("current()"))


@may_sleep("sleep after the unlock")
def msleep(msecs: int) -> None:
    """``msleep``: sleep for ``msecs`` milliseconds (``kernel::time::delay::fsleep``).

    Sleeping is illegal while a :class:`~safemm.sync.SpinLockGuard` is held (or inside a list
    walk): the model reports "BUG: sleeping function called from invalid context" and, if that
    does not raise, "scheduling while atomic" — see :func:`safemm.model.sched.msleep`.
    """
    if isinstance(msecs, bool) or not isinstance(msecs, int):
        raise TypeError(f"msecs must be an int, got {type(msecs).__name__}")
    _sched.msleep(running_kernel("msleep()"), msecs)
