"""Page reclaim: mm/vmscan.c, in outline.

``shrink_node`` is what kswapd (``Kernel.shrink``) and direct reclaim (an allocation that
found memory short, ``Kernel.direct_reclaim``) both run: the file LRU lists first
(``shrink_lruvec``: ``shrink_inactive_list``, then ``shrink_active_list`` when the inactive
list is low), then the shrinkers (``shrink_slab``).

``shrink_folio_list`` follows the kernel's order for each isolated folio: ``folio_trylock``
(busy: keep); ``folio_check_references`` (young PTEs through the reverse map, and
``PG_referenced``: activate, keep, or reclaim); ``try_to_unmap`` when mapped (still mapped:
activate); a dirty folio is kept (activated); ``filemap_release_folio`` — the mapping's
``release_folio`` — when the folio needs release (refused: activate); ``__remove_mapping``,
which frees the folio only if nobody but the cache and the isolation holds a reference
(``folio_ref_freeze``), calls ``->free_folio`` and the folio is unlocked and freed.

Simplifications: one node, no memcg, no anon/swap lists, no multi-gen LRU, no writeback
(dirty folios are activated, as ``pageout`` does for a mapping that cannot write back);
kswapd makes one pass over what it is asked to scan (everything when ``nr_to_scan`` is None)
instead of looping until the watermarks are met; direct reclaim loops the priorities until
``SWAP_CLUSTER_MAX`` folios are freed and asks the shrinkers once; the inactive list is
"low" when it is smaller than the active list (``inactive_is_low`` with the ratio 1 of a
node under 1 GiB).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .filemap import (
    _free_folio_hook,
    filemap_release_folio,
    folio_assert_locked,
    folio_needs_release,
    folio_unlock,
    page_cache_delete,
)
from .rmap import folio_referenced, try_to_unmap
from .shrinker import shrink_slab
from .vm_flags import VM_EXEC, VM_LOCKED

if TYPE_CHECKING:
    from .kernel import Kernel
    from .page_alloc import Page

__all__ = ["ScanControl", "shrink_folio_list", "shrink_node", "try_to_free_pages"]

_VMSCAN_C = "mm/vmscan.c:"


class FolioRef(enum.Enum):
    """``enum folio_references``."""

    RECLAIM = 0
    RECLAIM_CLEAN = 1
    KEEP = 2
    ACTIVATE = 3


class ScanControl:
    """A ``struct scan_control``: the reclaim pass's mask and what it did.

    Invariant: the counts only grow during one pass.
    """

    __slots__ = ("gfp", "kswapd", "nr_reclaimed", "nr_scanned")

    def __init__(self, gfp: int, kswapd: bool) -> None:
        self.gfp = gfp
        self.kswapd = kswapd
        self.nr_scanned = 0
        self.nr_reclaimed = 0


def folio_check_references(k: Kernel, page: Page) -> FolioRef:
    """``folio_check_references``: a mapped folio is kept on first use seen in a PTE (and
    marked ``PG_referenced``), activated on the second, or at once when it is in a
    ``VM_EXEC`` file mapping; ``VM_LOCKED`` activates; rmap contention keeps it; an unused
    folio is reclaimed."""
    referenced_ptes, vm_flags = folio_referenced(k, page, is_locked=True)
    if vm_flags & VM_LOCKED:
        return FolioRef.ACTIVATE
    if referenced_ptes == -1:
        return FolioRef.KEEP
    referenced_folio = page.referenced
    page.referenced = False
    if referenced_ptes:
        page.referenced = True
        if referenced_folio or referenced_ptes > 1:
            return FolioRef.ACTIVATE
        if vm_flags & VM_EXEC:
            return FolioRef.ACTIVATE
        return FolioRef.KEEP
    if referenced_folio:
        return FolioRef.RECLAIM_CLEAN
    return FolioRef.RECLAIM


def remove_mapping(k: Kernel, page: Page) -> bool:
    """``__remove_mapping``: free a locked, unmapped folio from its page cache if only the
    cache and the isolation hold references (``folio_ref_freeze(folio, 1 + nr)``) and it is
    clean; then ``->free_folio``. Returns whether the folio left the cache (its refcount is
    then 0: the caller frees it)."""
    mapping = page.mapping
    where = _VMSCAN_C + "__remove_mapping"
    folio_assert_locked(k, page, "__remove_mapping", where)
    if mapping is None or page.refcount != 2 or page.dirty:
        return False
    page_cache_delete(mapping, page, where)
    page.refcount = 0
    _free_folio_hook(mapping, page)
    return True


def shrink_folio_list(k: Kernel, folios: list[Page], sc: ScanControl) -> list[Page]:
    """``shrink_folio_list``: try to free each isolated folio (each holds an isolation
    reference). Returns the folios to put back, each with its isolation reference; freed
    ones are gone. ``PG_active`` on a returned folio sends it to the active list."""
    keep: list[Page] = []
    c = k.counters
    for page in folios:
        if not k.pages.trylock_page(page, _VMSCAN_C + "shrink_folio_list"):
            keep.append(page)
            continue
        sc.nr_scanned += 1
        ref = folio_check_references(k, page)
        if ref is FolioRef.RECLAIM or (ref is FolioRef.RECLAIM_CLEAN and page.mapcount):
            try_to_unmap(k, page)
        activate = False
        if ref is FolioRef.ACTIVATE:
            activate = True
        elif ref is FolioRef.KEEP:
            pass
        elif page.mapcount:
            activate = True  # still mapped (an mlocked VMA)
        elif page.dirty:
            activate = True  # no writeback: pageout() says PAGE_ACTIVATE
        elif folio_needs_release(page) and not filemap_release_folio(page, sc.gfp):
            activate = True
        elif remove_mapping(k, page):
            folio_unlock(k, page, _VMSCAN_C + "shrink_folio_list")
            sc.nr_reclaimed += 1
            k.pages._free(page, _VMSCAN_C + "shrink_folio_list")
            continue
        if activate:
            page.active = True
            c.pgactivate += 1
        folio_unlock(k, page, _VMSCAN_C + "shrink_folio_list")
        keep.append(page)
    return keep


def _isolate(k: Kernel, active: bool, nr: int) -> list[Page]:
    """``isolate_lru_folios``: take up to ``nr`` folios off a list's cold end, each with a
    new reference (``folio_try_get``)."""
    lru = k.lruvec
    taken = lru.coldest(active, nr)
    for page in taken:
        lru.del_folio(page)
        page.refcount += 1
    return taken


def _putback(k: Kernel, folios: list[Page]) -> None:
    """``move_folios_to_lru``: back on the list ``PG_active`` names, dropping the isolation
    reference (the last one frees the folio)."""
    for page in folios:
        k.lruvec.add_folio(page)
        k.pages.put_page(page, _VMSCAN_C + "move_folios_to_lru")


def shrink_inactive_list(k: Kernel, nr_to_scan: int, sc: ScanControl) -> None:
    """``shrink_inactive_list``: isolate, ``shrink_folio_list``, put the rest back."""
    folios = _isolate(k, False, nr_to_scan)
    if not folios:
        return
    before = sc.nr_scanned, sc.nr_reclaimed
    _putback(k, shrink_folio_list(k, folios, sc))
    scanned, stolen = sc.nr_scanned - before[0], sc.nr_reclaimed - before[1]
    c = k.counters
    if sc.kswapd:
        c.pgscan_kswapd += scanned
        c.pgsteal_kswapd += stolen
    else:
        c.pgscan_direct += scanned
        c.pgsteal_direct += stolen


def shrink_active_list(k: Kernel, nr_to_scan: int) -> None:
    """``shrink_active_list``: deactivate folios from the active list's cold end; a
    referenced folio in a ``VM_EXEC`` file mapping gets another trip around the active list.
    ``folio_referenced`` clears the young bits it finds (the folio is not locked: it is
    trylocked for the walk)."""
    folios = _isolate(k, True, nr_to_scan)
    k.counters.pgrefill += len(folios)
    for page in folios:
        referenced, vm_flags = folio_referenced(k, page, is_locked=False)
        if referenced and vm_flags & VM_EXEC:
            continue
        page.active = False
        k.counters.pgdeactivate += 1
    _putback(k, folios)


def shrink_lruvec(k: Kernel, sc: ScanControl, nr_inactive: int, nr_active: int) -> None:
    """``shrink_lruvec`` for the file lists: scan ``nr_inactive`` folios of the inactive list;
    then, when the inactive list was smaller than the active one as the pass began
    (``prepare_scan_control``: ``inactive_is_low``), deactivate ``nr_active``."""
    lru = k.lruvec
    may_deactivate = len(lru.inactive) < len(lru.active)
    if nr_inactive:
        shrink_inactive_list(k, nr_inactive, sc)
    if may_deactivate and nr_active:
        shrink_active_list(k, nr_active)


def shrink_node(k: Kernel, gfp: int, nr_to_scan: int | None, *, kswapd: bool) -> int:
    """One kswapd pass (``balance_pgdat`` → ``shrink_node``): the LRU lists, then the
    shrinkers; returns pages and objects freed. ``nr_to_scan`` folios of each list are looked
    at (all of them when None) and ``nr_to_scan`` objects asked of each shrinker."""
    sc = ScanControl(gfp, kswapd)
    lru = k.lruvec
    if nr_to_scan is None:
        shrink_lruvec(k, sc, len(lru.inactive), len(lru.active))
    else:
        shrink_lruvec(k, sc, nr_to_scan, nr_to_scan)
    return sc.nr_reclaimed + shrink_slab(k, gfp, nr_to_scan)


#: The first scan priority of direct reclaim (``DEF_PRIORITY``): a list is scanned
#: ``size >> priority`` at a time, then more as the priority drops to 0.
DEF_PRIORITY = 12


def try_to_free_pages(k: Kernel, gfp: int, nr_to_reclaim: int) -> int:
    """Direct reclaim (``try_to_free_pages`` → ``do_try_to_free_pages``): from
    ``DEF_PRIORITY`` down to 0, scan ``size >> priority`` folios of each file list until
    ``nr_to_reclaim`` are freed (at priority 0 the whole list); then the shrinkers are asked
    for ``nr_to_reclaim`` objects. Returns pages and objects freed."""
    sc = ScanControl(gfp, kswapd=False)
    lru = k.lruvec
    for priority in range(DEF_PRIORITY, -1, -1):
        if not lru:
            break
        shrink_lruvec(k, sc, len(lru.inactive) >> priority, len(lru.active) >> priority)
        if sc.nr_reclaimed >= nr_to_reclaim:
            break
    return sc.nr_reclaimed + shrink_slab(k, gfp, nr_to_reclaim)
