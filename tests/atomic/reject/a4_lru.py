"""list_lru isolate callbacks run under the list's spinlock: nothing may sleep until
``LruWalk.unlock()``, and again after ``relock()``."""

from __future__ import annotations

from safemm.mm import MmWithUser
from safemm.page import Page
from safemm.shrinker import ListLru, LruStatus, LruWalk
from safemm.sync import Mutex
from safemm.task import msleep


class Driver:
    def __init__(self, lru: ListLru[Page], mutex: Mutex, mm: MmWithUser) -> None:
        self.lru = lru
        self.mutex = mutex
        self.mm = mm

    def scan(self) -> int:
        self.lru.walk(self.isolate_direct, 1)
        self.lru.walk(self.isolate_helper, 1)
        self.lru.walk(self.isolate_relocked, 1)
        self.lru.walk(self.isolate_mmput, 1)
        return self.lru.walk(isolate_function, 1)

    def isolate_direct(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        self.mutex.lock().unlock()  # atomic: atomic-sleep
        return LruStatus.SKIP

    def refill(self) -> None:
        Page.alloc_page().free()

    def isolate_helper(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        self.refill()  # atomic: atomic-sleep
        return LruStatus.SKIP

    def isolate_relocked(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        walk.unlock()
        msleep(1)
        walk.relock()
        msleep(1)  # atomic: atomic-sleep
        return LruStatus.SKIP

    def isolate_mmput(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        user = self.mm.mmget_not_zero()
        if user is not None:
            user.mmput()  # atomic: atomic-sleep
        return LruStatus.SKIP


def isolate_function(page: Page, walk: LruWalk[Page]) -> LruStatus:
    msleep(1)  # atomic: atomic-sleep
    return LruStatus.SKIP


def lambda_callback(lru: ListLru[Page]) -> int:
    return lru.walk(lambda page, walk: sleepy_status(), 1)  # atomic: atomic-sleep


def sleepy_status() -> LruStatus:
    msleep(1)
    return LruStatus.SKIP
