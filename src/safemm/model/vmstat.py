"""Event counters, the model's ``/proc/vmstat`` (mm/vmstat.c) plus lock statistics.

Counters only go up; :meth:`Counters.snapshot` copies them and :func:`delta` subtracts two
snapshots, so a workload's cost is measured without resetting anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Counters", "delta"]


@dataclass(slots=True)
class Counters:
    """Monotonic event counts for one kernel (names follow /proc/vmstat where one exists)."""

    mmap_read_lock: int = 0
    mmap_read_trylock: int = 0
    mmap_read_trylock_failed: int = 0
    mmap_write_lock: int = 0
    mmap_write_trylock: int = 0
    mmap_write_trylock_failed: int = 0
    mmap_write_downgrade: int = 0
    #: lock_vma_under_rcu calls that returned a locked VMA (VMA_LOCK_SUCCESS).
    vma_lock_success: int = 0
    #: lock_vma_under_rcu calls that returned NULL (VMA_LOCK_ABORT / MISS), caller fell back.
    vma_lock_abort: int = 0
    #: faults begun under a VMA lock and retried under the mmap lock (VMA_LOCK_RETRY).
    vma_lock_retry: int = 0
    vma_start_write: int = 0
    trylock: int = 0
    trylock_failed: int = 0
    mutex_lock: int = 0
    pgfault: int = 0
    pgfault_anon: int = 0
    pgfault_file: int = 0
    cow_fault: int = 0
    wp_reuse: int = 0
    insert_page: int = 0
    insert_pfn: int = 0
    zap_calls: int = 0
    ptes_zapped: int = 0
    unmap_mapping_range: int = 0
    unmap_mapping_range_trylock_failed: int = 0
    pgalloc: int = 0
    pgfree: int = 0
    alloc_failed: int = 0
    direct_reclaim: int = 0
    shrinker_scans: int = 0
    shrinker_freed: int = 0
    #: Folios scanned / reclaimed off the inactive file LRU, by kswapd and by direct reclaim.
    pgscan_kswapd: int = 0
    pgscan_direct: int = 0
    pgsteal_kswapd: int = 0
    pgsteal_direct: int = 0
    #: Folios moved to the active list / back to the inactive one; active folios scanned.
    pgactivate: int = 0
    pgdeactivate: int = 0
    pgrefill: int = 0
    #: Reverse-map walks (folio_referenced, try_to_unmap) and the PTEs they looked at.
    rmap_walk: int = 0
    rmap_pte: int = 0
    #: Folios added to / removed from a page cache.
    pagecache_add: int = 0
    pagecache_remove: int = 0
    #: Calls of a mapping's ->release_folio, and how many said no.
    release_folio: int = 0
    release_folio_refused: int = 0
    mmgrab: int = 0
    mmdrop: int = 0
    mmget: int = 0
    mmget_not_zero_failed: int = 0
    mmput: int = 0
    mmput_async: int = 0
    syscalls: int = 0

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, by name."""
        return asdict(self)


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """``after - before`` per counter."""
    return {k: v - before.get(k, 0) for k, v in after.items()}
