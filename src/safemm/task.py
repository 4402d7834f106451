"""The current task (``kernel::task``): :func:`current` and :class:`Task`."""

from __future__ import annotations

from ._task import Task as Task
from ._task import current as current

__all__ = ["Task", "current"]
