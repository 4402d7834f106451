"""The page cache and the folio lock: mm/filemap.c and include/linux/pagemap.h.

A mapping's page cache (``mapping.pages``, the ``i_pages`` xarray) holds folios by file
offset. ``filemap_add_folio`` inserts a new folio locked, with a reference for the cache, and
puts it on the inactive file LRU; ``filemap_get_folio`` finds one and takes a reference;
``filemap_lock_folio`` also locks it and re-checks that it is still in the mapping (the
truncate re-check every page-cache lookup does); ``filemap_remove_folio`` deletes a locked
folio; ``filemap_release_folio`` asks the mapping's ``release_folio`` whether a locked folio
may go.

The folio lock (``PG_locked``) has no owner in the kernel and no lockdep; the model records
the task holding it to name it in reports. ``folio_lock`` sleeps until the lock is free (a
switch point inside ``Kernel.concurrently``); ``folio_unlock`` wakes the sleepers. Every
operation that needs the lock checks it, as the kernel's ``VM_BUG_ON_FOLIO`` does.

Simplifications: order-0 folios; no shadow entries, readahead, writeback or memcg charge;
an absent folio is never read in from storage (the driver's anonymous inodes have none).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .page_alloc import Gfp, PageKind
from .printk import SplatKind
from .runqueue import SwitchKind
from .sched import might_sleep
from .swap import folio_add_lru

if TYPE_CHECKING:
    from .fs import AddressSpace
    from .kernel import Kernel
    from .page_alloc import Page

__all__ = [
    "filemap_add_folio",
    "filemap_get_folio",
    "filemap_lock_folio",
    "filemap_release_folio",
    "filemap_remove_folio",
    "folio_lock",
    "folio_trylock",
    "folio_unlock",
]

_FILEMAP_C = "mm/filemap.c:"
_PAGEMAP_H = "include/linux/pagemap.h:"
_GFP_DIRECT_RECLAIM = int(Gfp.DIRECT_RECLAIM)


def folio_lock(kernel: Kernel, page: Page, where: str = _PAGEMAP_H + "folio_lock") -> None:
    """``folio_lock``: take ``PG_locked``, sleeping (``__folio_lock``) while another task holds
    it. May sleep (``might_sleep``). Outside ``Kernel.concurrently`` a folio locked by
    anybody — the caller included — can never be unlocked: a deadlock report."""
    k = kernel
    might_sleep(k, where, switch=False)
    if page.refcount <= 0:
        k.report(
            SplatKind.BUG,
            "page-refcount",
            f"folio_lock on a free page {page!r}",
            where,
            title=f"kernel BUG at {where}!",
        )
    s = k._sched
    label = f"folio_lock pfn {page.pfn:#x}"
    if s is not None:
        s.point(SwitchKind.LOCK, label)
    t = k.current
    while page.locked_by is not None:
        holder = page.locked_by
        if holder is t or s is None:
            who = "itself" if holder is t else f"{holder.comm}:{holder.pid}"
            k.report(
                SplatKind.DEADLOCK,
                "deadlock",
                f"{t.comm}/{t.pid} sleeps in folio_lock on pfn {page.pfn:#x}, held by {who}, "
                "which can never unlock it",
                where,
                title=f"INFO: task {t.comm}:{t.pid} blocked forever",
            )
        assert s is not None
        s.wait_var(page, lambda: f"folio lock of pfn {page.pfn:#x}, held by {page.locked_by!r}")
    page.locked_by = t


def folio_trylock(kernel: Kernel, page: Page, where: str = _PAGEMAP_H + "folio_trylock") -> bool:
    """``folio_trylock``: take ``PG_locked`` if it is clear; never sleeps."""
    return kernel.pages.trylock_page(page, where)


def folio_unlock(kernel: Kernel, page: Page, where: str = _FILEMAP_C + "folio_unlock") -> None:
    """``folio_unlock``: ``VM_BUG_ON_FOLIO(!folio_test_locked(folio))``, then wake sleepers."""
    kernel.pages.unlock_page(page, where)


def folio_assert_locked(kernel: Kernel, page: Page, what: str, where: str) -> None:
    """``VM_BUG_ON_FOLIO(!folio_test_locked(folio), folio)`` (``BUG_ON`` in some callers)."""
    if page.locked_by is None:
        kernel.report(
            SplatKind.BUG,
            "folio-locked",
            f"{what} of {page!r} without the folio lock",
            where,
            title=f"kernel BUG at {where}!",
        )


def check_mapping_owner(mapping: AddressSpace, what: str, where: str) -> None:
    """Strict mode: report a driver changing the page cache of a mapping it did not create
    (the kernel checks nothing; a folio in another file's cache is that file's data)."""
    k = mapping.host.kernel
    owner = k.driver_owner()
    if owner is None or not k.strict or mapping.owner is owner:
        return
    k.report(
        SplatKind.STRICT,
        "pagecache-foreign",
        f"{k.driver_name()} {what} the page cache of {mapping!r}, which it did not create "
        f"(inode kind {mapping.host.kind})",
        where,
    )


def filemap_add_folio(mapping: AddressSpace, page: Page, index: int, gfp: int) -> None:
    """``filemap_add_folio``: insert a new folio at ``index``, return it locked.

    ``__folio_set_locked``, then ``__filemap_add_folio`` (the cache takes a reference,
    ``folio->mapping`` and ``folio->index`` are set), then ``folio_add_lru`` (inactive file
    list). With ``__GFP_DIRECT_RECLAIM`` the xarray allocation may sleep.

    Raises:
        KernelError: EEXIST when the index is taken; EINVAL for a negative index, or a folio
            that is not new (free, in a page cache, on an LRU, locked or mapped). Nothing
            changes on failure.
    """
    k = mapping.host.kernel
    where = _FILEMAP_C + "filemap_add_folio"
    i: object = index
    if isinstance(i, bool) or not isinstance(i, int) or i < 0:
        raise KernelError(errno.EINVAL, f"filemap_add_folio: bad index {index!r}")
    if page.refcount <= 0 or page.kind is not PageKind.KERNEL:
        raise KernelError(
            errno.EINVAL,
            f"filemap_add_folio: {page!r} is not a new folio (it is {page.kind.value})",
        )
    if page.mapping is not None or page.lru or page.locked_by is not None or page.mapcount:
        raise KernelError(
            errno.EINVAL,
            f"filemap_add_folio: {page!r} is already in use (in a page cache, on an LRU, "
            "locked or mapped)",
        )
    if gfp & _GFP_DIRECT_RECLAIM:
        might_sleep(k, where)
    check_mapping_owner(mapping, "adds a folio to", where)
    if index in mapping.pages:
        raise KernelError(
            errno.EEXIST, f"filemap_add_folio: index {index} of {mapping!r} is already cached"
        )
    page.locked_by = k.current
    page.kind = PageKind.FILE
    page.refcount += 1
    page.mapping = mapping
    page.index = index
    page.referenced = page.dirty = False
    mapping.pages[index] = page
    folio_add_lru(k, page)
    k.counters.pagecache_add += 1


def filemap_get_folio(mapping: AddressSpace, index: int) -> Page | None:
    """``filemap_get_folio``: the folio at ``index`` with a new reference, or None
    (``-ENOENT``)."""
    page = mapping.pages.get(index)
    if page is not None:
        page.refcount += 1
    return page


def filemap_lock_folio(mapping: AddressSpace, index: int) -> Page | None:
    """``filemap_lock_folio`` (``__filemap_get_folio`` with ``FGP_LOCK``): the folio at
    ``index``, referenced and locked, or None. ``folio_lock`` may sleep; after it, a folio
    that left the mapping meanwhile ("has the page been truncated?") is dropped and the
    lookup repeated."""
    k = mapping.host.kernel
    while True:
        page = filemap_get_folio(mapping, index)
        if page is None:
            return None
        folio_lock(k, page, _FILEMAP_C + "__filemap_get_folio")
        if page.mapping is mapping and page.index == index:
            return page
        folio_unlock(k, page, _FILEMAP_C + "__filemap_get_folio")
        k.pages.put_page(page, _FILEMAP_C + "__filemap_get_folio")


def page_cache_delete(mapping: AddressSpace, page: Page, where: str) -> None:
    """``__filemap_remove_folio``: take a locked folio out of the page cache.

    ``filemap_unaccount_folio`` (CONFIG_DEBUG_VM) reports a folio that is still mapped —
    "BUG: Bad page cache" — since its PTEs would outlive the cache's knowledge of it; the
    model then zaps nothing and carries on, as the kernel does.
    """
    k = mapping.host.kernel
    if page.mapcount:
        k.report(
            SplatKind.WARNING,
            "pagecache-free",
            f"{page!r} leaves the page cache of {mapping!r} while still mapped "
            f"{page.mapcount} time(s): unmap it first (unmap_mapping_range)",
            where,
            title=f"BUG: Bad page cache in process {k.current.comm} pfn:{page.pfn:05x}",
        )
    del mapping.pages[page.index]
    page.mapping = None
    k.counters.pagecache_remove += 1


def _free_folio_hook(mapping: AddressSpace, page: Page) -> None:
    """``mapping->a_ops->free_folio(folio)``, after the folio left the page cache."""
    ops = mapping.a_ops
    if ops is not None and ops.free_folio is not None:
        k = mapping.host.kernel
        with k.driver_hook(ops.owner, None, f"{ops.name}->free_folio"):
            ops.free_folio(page)


def filemap_remove_folio(page: Page) -> None:
    """``filemap_remove_folio``: delete a locked folio from its page cache and drop the
    cache's reference (``filemap_free_folio``, which calls ``->free_folio``). The folio must
    be unmapped (``truncate_inode_folio`` unmaps first)."""
    mapping = page.mapping
    k = page_kernel(page, mapping)
    where = _FILEMAP_C + "filemap_remove_folio"
    folio_assert_locked(k, page, "filemap_remove_folio", where)
    if mapping is None:
        raise KernelError(errno.EINVAL, f"filemap_remove_folio: {page!r} is in no page cache")
    check_mapping_owner(mapping, "removes a folio from", where)
    page_cache_delete(mapping, page, where)
    _free_folio_hook(mapping, page)
    k.pages.put_page(page, where)


def page_kernel(page: Page, mapping: AddressSpace | None) -> Kernel:
    """The machine a page belongs to (through its mapping; a removed folio has none)."""
    if mapping is None:
        raise KernelError(errno.EINVAL, f"{page!r} is in no page cache")
    return mapping.host.kernel


def folio_needs_release(page: Page) -> bool:
    """``folio_needs_release`` (mm/internal.h): private data (the model has none) or
    ``AS_RELEASE_ALWAYS`` on the mapping."""
    mapping = page.mapping
    return mapping is not None and mapping.release_always


def filemap_release_folio(page: Page, gfp: int) -> bool:
    """``filemap_release_folio``: ask the mapping whether a locked folio may be freed.

    ``BUG_ON(!folio_test_locked(folio))``; True without asking when the folio needs no
    release; False for a dirty folio (under writeback in the kernel's words); otherwise the
    mapping's ``release_folio(folio, gfp)`` decides. ``gfp`` says whether the hook may block
    (``__GFP_DIRECT_RECLAIM``) and enter the filesystem: reclaim passes its own mask,
    ``mapping_evict_folio`` (drop_caches) passes 0. Linux does not check that a hook honours
    it; strict mode reports a hook that sleeps when ``gfp`` lacks ``__GFP_DIRECT_RECLAIM``
    (``release-folio-gfp``).
    """
    mapping = page.mapping
    k = page_kernel(page, mapping)
    assert mapping is not None
    where = _FILEMAP_C + "filemap_release_folio"
    folio_assert_locked(k, page, "filemap_release_folio", where)
    if not folio_needs_release(page):
        return True
    if page.dirty:
        return False
    ops = mapping.a_ops
    if ops is None or ops.release_folio is None:
        return True
    k.counters.release_folio += 1
    t = k.current
    old = t.nosleep
    if not gfp & _GFP_DIRECT_RECLAIM:
        t.nosleep = f"{ops.name}->release_folio with gfp {Gfp(gfp)!s} (no __GFP_DIRECT_RECLAIM)"
    try:
        with k.driver_hook(ops.owner, None, f"{ops.name}->release_folio"):
            ok = ops.release_folio(page, gfp)
    finally:
        t.nosleep = old
    if not ok:
        k.counters.release_folio_refused += 1
    return bool(ok)
