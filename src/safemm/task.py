"""The current task (``kernel::task``): :func:`current`, :class:`Task` and :func:`msleep`."""

from __future__ import annotations

from ._task import Task as Task
from ._task import current as current
from ._task import msleep as msleep

__all__ = ["Task", "current", "msleep"]
