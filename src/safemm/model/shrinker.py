"""Shrinkers and list_lru: mm/shrinker.c (``shrink_slab``/``do_shrink_slab``) and
mm/list_lru.c (``list_lru_walk`` calling the isolate callback under the list's spinlock).

Shrinkers run inside reclaim — from ``Kernel.shrink`` (kswapd) or from an allocation that
found memory short (direct reclaim, in the allocating task, which may hold any lock) — with
the ``fs_reclaim`` lockdep map held, so a blocking lock taken in a shrinker that is also held
around an allocation elsewhere is reported as a circular dependency (H5).

Simplification: one NUMA node, no memcg; ``nr_to_scan`` is honoured as given.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from .locking import SpinLock
from .printk import SplatKind

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["SHRINK_EMPTY", "SHRINK_STOP", "ListLru", "LruStatus", "ShrinkControl", "Shrinker"]

#: ``scan_objects`` result: no progress possible now (e.g. trylocks failed).
SHRINK_STOP = (1 << 64) - 1
#: ``count_objects`` result: nothing to free.
SHRINK_EMPTY = (1 << 64) - 2

T = TypeVar("T")


@dataclass
class ShrinkControl:
    """``struct shrink_control``: ``nr_to_scan`` in, ``nr_scanned`` out."""

    gfp: int
    nr_to_scan: int
    nr_scanned: int = 0


@dataclass(eq=False)
class Shrinker:
    """A registered ``struct shrinker`` (``shrinker_alloc`` + ``shrinker_register``)."""

    name: str
    count_objects: Callable[[ShrinkControl], int]
    scan_objects: Callable[[ShrinkControl], int]
    owner: object = None
    registered: bool = False


def shrink_slab(kernel: Kernel, gfp: int, nr_to_scan: int | None) -> int:
    """``shrink_slab``: ask every shrinker to free up to ``nr_to_scan`` objects (all it
    counts when None). ``SHRINK_STOP`` ends that shrinker's pass. Returns the number freed."""
    freed = 0
    for s in list(kernel.shrinkers):
        with kernel.driver_hook(s.owner, None, f"shrinker {s.name}->count_objects"):
            count = s.count_objects(ShrinkControl(gfp, 0))
        if count in (0, SHRINK_EMPTY):
            continue
        want = count if nr_to_scan is None else min(count, nr_to_scan)
        sc = ShrinkControl(gfp, want)
        kernel.counters.shrinker_scans += 1
        with kernel.driver_hook(s.owner, None, f"shrinker {s.name}->scan_objects"):
            ret = s.scan_objects(sc)
        if ret == SHRINK_STOP:
            continue
        freed += ret
    kernel.counters.shrinker_freed += freed
    return freed


class LruStatus(enum.Enum):
    """``enum lru_status``: what an isolate callback did with an item."""

    #: Item removed from the list.
    REMOVED = 0
    #: Item removed, but the lock was dropped and reacquired.
    REMOVED_RETRY = 1
    #: Item referenced: move it to the tail.
    ROTATE = 2
    #: Item cannot be handled now: leave it.
    SKIP = 3
    #: Lock was dropped: restart the walk.
    RETRY = 4
    #: Stop the walk.
    STOP = 5


class ListLru(Generic[T]):
    """A ``struct list_lru``: items in LRU order behind one spinlock.

    Invariant: ``items`` has no duplicates; the isolate callback runs with ``lock`` held and
    must return with it held.
    """

    def __init__(self, kernel: Kernel, name: str) -> None:
        self.kernel = kernel
        self.lock = SpinLock(f"{name}.lru_lock")
        self.items: list[T] = []

    def add(self, item: T) -> bool:
        """``list_lru_add``: False if already on the list."""
        self.lock.lock(self.kernel, "mm/list_lru.c:list_lru_add")
        try:
            if item in self.items:
                return False
            self.items.append(item)
            return True
        finally:
            self.lock.unlock(self.kernel, "mm/list_lru.c:list_lru_add")

    def delete(self, item: T) -> bool:
        """``list_lru_del``: False if not on the list."""
        self.lock.lock(self.kernel, "mm/list_lru.c:list_lru_del")
        try:
            if item not in self.items:
                return False
            self.items.remove(item)
            return True
        finally:
            self.lock.unlock(self.kernel, "mm/list_lru.c:list_lru_del")

    def isolate(self, item: T) -> None:
        """``list_lru_isolate``: remove ``item`` from inside an isolate callback."""
        if self.lock.owner is not self.kernel.current:
            self.kernel.report(
                SplatKind.WARNING,
                "unlock-balance",
                "list_lru_isolate without the lru lock held",
                "mm/list_lru.c:list_lru_isolate",
            )
        self.items.remove(item)

    def count(self) -> int:
        """``list_lru_count``."""
        return len(self.items)

    def walk(self, isolate: Callable[[T, ListLru[T]], LruStatus], nr_to_walk: int) -> int:
        """``list_lru_walk``: call ``isolate(item, lru)`` with the lock held, oldest first.

        Returns the number of items removed.
        """
        k = self.kernel
        where = "mm/list_lru.c:__list_lru_walk_one"
        removed = 0
        self.lock.lock(k, where)
        try:
            i = 0
            while i < len(self.items) and nr_to_walk > 0:
                item = self.items[i]
                nr_to_walk -= 1
                status = isolate(item, self)
                if self.lock.owner is not k.current:
                    k.report(
                        SplatKind.LOCKDEP,
                        "unlock-balance",
                        f"list_lru isolate callback returned {status.name} without the "
                        "lru lock held",
                        where,
                        title="WARNING: lock not held on return from isolate callback",
                    )
                    self.lock.lock(k, where)
                if status in (LruStatus.REMOVED, LruStatus.REMOVED_RETRY):
                    removed += 1
                    continue
                if status is LruStatus.ROTATE:
                    self.items.append(self.items.pop(i))
                    continue
                if status is LruStatus.RETRY:
                    i = 0
                    continue
                if status is LruStatus.STOP:
                    break
                i += 1
        finally:
            if self.lock.owner is k.current:
                self.lock.unlock(k, where)
        return removed
