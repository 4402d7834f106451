"""Shrinkers and list_lru for drivers: mm/shrinker.c and mm/list_lru.c through the model.

A :class:`Shrinker` gives memory back under pressure. It runs inside reclaim — from
``Kernel.shrink`` (kswapd) or from *any* allocation that finds memory short, in the allocating
task, which may hold any lock — so it must only trylock, and must not sleep while a
:class:`ListLru` walk holds the list's spinlock (hazard H5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, final

from ._scope import _TOKEN, HookCall, SafeObject, _Token, check_token, running_kernel
from .model import shrinker as _raw
from .model.atomic import atomic_callback, atomic_relock, atomic_unlock
from .model.shrinker import SHRINK_EMPTY, SHRINK_STOP, LruStatus

__all__ = [
    "SHRINK_EMPTY",
    "SHRINK_STOP",
    "ListLru",
    "LruStatus",
    "LruWalk",
    "ShrinkControl",
    "Shrinker",
]

T = TypeVar("T")


@final
class ShrinkControl(SafeObject):
    """``struct shrink_control``: how many objects reclaim asks for."""

    __slots__ = ("_sc",)

    def __init__(self, _key: _Token, sc: _raw.ShrinkControl) -> None:
        check_token(_key, "ShrinkControl")
        self._sc = sc

    @property
    def nr_to_scan(self) -> int:
        """Objects to scan in this call."""
        return self._sc.nr_to_scan

    @property
    def nr_scanned(self) -> int:
        """Objects scanned so far (set it to report progress)."""
        return self._sc.nr_scanned

    @nr_scanned.setter
    def nr_scanned(self, value: int) -> None:
        self._sc.nr_scanned = value


class Shrinker:
    """A driver's shrinker: override :meth:`count_objects` and :meth:`scan_objects`, then
    :meth:`register` it (from ``probe`` or any hook).

    ``scan_objects`` returns the number of objects freed, or ``SHRINK_STOP`` when no progress
    is possible now (its trylocks failed).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._raw: _raw.Shrinker | None = None

    def count_objects(self, sc: ShrinkControl) -> int:
        """How many objects could be freed (``SHRINK_EMPTY`` for none)."""
        return SHRINK_EMPTY

    def scan_objects(self, sc: ShrinkControl) -> int:
        """Free up to ``sc.nr_to_scan`` objects; return how many were freed."""
        return SHRINK_STOP

    @final
    def register(self) -> None:
        """``shrinker_register`` with the running kernel (owned by the running driver)."""
        k = running_kernel("Shrinker.register")
        name = self.name

        def count(sc: _raw.ShrinkControl) -> int:
            with HookCall(k, f"shrinker {name}->count_objects", "count_objects returned"):
                return self.count_objects(ShrinkControl(_TOKEN, sc))

        def scan(sc: _raw.ShrinkControl) -> int:
            with HookCall(k, f"shrinker {name}->scan_objects", "scan_objects returned"):
                return self.scan_objects(ShrinkControl(_TOKEN, sc))

        self._raw = _raw.Shrinker(name, count, scan, owner=k.driver_owner() or self)
        k.register_shrinker(self._raw)

    @final
    def unregister(self) -> None:
        """``shrinker_free``: never called again after this returns."""
        if self._raw is not None:
            running_kernel("Shrinker.unregister").unregister_shrinker(self._raw)
            self._raw = None


@final
class LruWalk(SafeObject, Generic[T]):
    """The state an isolate callback gets: the list, whose spinlock is held."""

    __slots__ = ("_lru",)

    def __init__(self, _key: _Token, lru: _raw.ListLru[T]) -> None:
        check_token(_key, "LruWalk")
        self._lru = lru

    def isolate(self, item: T) -> None:
        """``list_lru_isolate``: take ``item`` off the list (the lock must be held)."""
        self._lru.isolate(item)

    @atomic_unlock
    def unlock(self) -> None:
        """``spin_unlock(lock)``: drop the list lock (to do work that may sleep)."""
        k = running_kernel("LruWalk.unlock")
        self._lru.lock.unlock(k, "mm/list_lru.c:isolate callback")

    @atomic_relock
    def relock(self) -> None:
        """``spin_lock(lock)``: retake it before returning."""
        k = running_kernel("LruWalk.relock")
        self._lru.lock.lock(k, "mm/list_lru.c:isolate callback")


@final
class ListLru(SafeObject, Generic[T]):
    """A ``struct list_lru`` of driver objects, oldest first, behind one spinlock."""

    __slots__ = ("_lru",)

    def __init__(self, name: str) -> None:
        k = running_kernel("ListLru()")
        self._lru: _raw.ListLru[T] = _raw.ListLru(k, name)

    def add(self, item: T) -> bool:
        """``list_lru_add``: False if already listed."""
        return self._lru.add(item)

    def delete(self, item: T) -> bool:
        """``list_lru_del``: False if not listed."""
        return self._lru.delete(item)

    def count(self) -> int:
        """``list_lru_count``."""
        return self._lru.count()

    def __contains__(self, item: object) -> bool:
        return item in self._lru.items

    @atomic_callback("isolate", "list_lru isolate callback")
    def walk(self, isolate: Callable[[T, LruWalk[T]], LruStatus], nr_to_walk: int) -> int:
        """``list_lru_walk``: call ``isolate(item, walk)`` with the list lock held (atomic
        context) for up to ``nr_to_walk`` items; returns how many were removed."""
        walk = LruWalk(_TOKEN, self._lru)
        return self._lru.walk(lambda item, _lru: isolate(item, walk), nr_to_walk)
