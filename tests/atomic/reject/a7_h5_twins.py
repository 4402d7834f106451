"""Static twins of the run-time H5 tests (tests/hazards/test_h5_reclaim_sleep.py): each
broken isolate-callback body of the hazard driver, called from an isolate callback, is
flagged before it runs. ``TWINS`` maps each ``SLEEPERS`` key to its line here."""

from __future__ import annotations

from safemm.page import Page
from safemm.shrinker import LruStatus, LruWalk
from tests.hazards.test_h5_reclaim_sleep import (
    LruDriver,
    _alloc,
    _mmap_read_lock,
    _mmput,
    _mutex,
    _unmap_mapping_range,
    _zap,
)


class StaticLruDriver(LruDriver):
    """The hazard driver with its body called directly from the isolate callback."""

    def scan_each(self) -> None:
        self.lru.walk(self.i_mutex, 1)
        self.lru.walk(self.i_mmap, 1)
        self.lru.walk(self.i_unmap, 1)
        self.lru.walk(self.i_zap, 1)
        self.lru.walk(self.i_mmput, 1)
        self.lru.walk(self.i_alloc, 1)

    def i_mutex(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        _mutex(self, page)  # atomic: atomic-sleep
        return LruStatus.SKIP

    def i_mmap(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        _mmap_read_lock(self, page)  # atomic: atomic-sleep
        return LruStatus.SKIP

    def i_unmap(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        _unmap_mapping_range(self, page)  # atomic: atomic-sleep
        return LruStatus.SKIP

    def i_zap(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        _zap(self, page)  # atomic: atomic-sleep
        return LruStatus.SKIP

    def i_mmput(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        _mmput(self, page)  # atomic: atomic-sleep
        return LruStatus.SKIP

    def i_alloc(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        _alloc(self, page)  # atomic: atomic-sleep
        return LruStatus.SKIP


#: SLEEPERS key -> the name of the isolate callback above that calls it.
TWINS = {
    "mutex_lock": "i_mutex",
    "mmap_read_lock": "i_mmap",
    "unmap_mapping_range": "i_unmap",
    "zap_page_range_single": "i_zap",
    "mmput": "i_mmput",
    "alloc_page(GFP_KERNEL)": "i_alloc",
}
