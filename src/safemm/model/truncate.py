"""Emptying a page cache: mm/truncate.c (``truncate_inode_pages_range``,
``truncate_inode_folio``, ``mapping_evict_folio``, ``invalidate_mapping_pages``) and
fs/drop_caches.c.

Truncation locks each folio (sleeping), unmaps it from every process that maps it
(``unmap_mapping_range`` of its offset) and deletes it from the cache: it cannot fail.
Invalidation (``drop_caches``) only evicts folios nobody uses: it trylocks, skips dirty and
mapped folios, asks ``filemap_release_folio(folio, 0)`` — a gfp mask of 0, so the hook must
not block — and frees the folio only if the cache holds the last reference.

Simplifications: whole pages only (no partial-folio zeroing); no shadow entries; drop_caches
visits the mappings that have folios on the LRU (the model has no superblock inode lists).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .filemap import (
    _free_folio_hook,
    filemap_release_folio,
    folio_lock,
    folio_unlock,
    page_cache_delete,
)
from .mman import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from .fs import AddressSpace
    from .kernel import Kernel

__all__ = ["drop_caches", "invalidate_mapping_pages", "truncate_inode_pages"]

_TRUNCATE_C = "mm/truncate.c:"


def truncate_inode_pages(mapping: AddressSpace, lstart: int) -> int:
    """``truncate_inode_pages(mapping, lstart)``: remove every folio wholly at or past byte
    ``lstart`` — lock it, unmap it everywhere (``truncate_inode_folio`` →
    ``unmap_mapping_folio``), delete it and drop the cache's reference. May sleep. Returns
    the number of folios removed.

    Raises:
        KernelError: EINVAL for a negative or unaligned ``lstart``.
    """
    from .memory import unmap_mapping_range  # local: memory.py imports the fault path

    n: object = lstart
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n % PAGE_SIZE:
        raise KernelError(errno.EINVAL, f"truncate_inode_pages: bad offset {lstart!r}")
    k = mapping.host.kernel
    where = _TRUNCATE_C + "truncate_inode_folio"
    first = lstart >> PAGE_SHIFT
    removed = 0
    for index in sorted(i for i in mapping.pages if i >= first):
        page = mapping.pages.get(index)
        if page is None:
            continue
        page.refcount += 1  # find_lock_entries' reference
        folio_lock(k, page, _TRUNCATE_C + "truncate_inode_pages_range")
        if page.mapping is mapping:
            if page.mapcount:
                unmap_mapping_range(mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
            page_cache_delete(mapping, page, where)
            _free_folio_hook(mapping, page)
            k.pages.put_page(page, where)
            removed += 1
        folio_unlock(k, page, _TRUNCATE_C + "truncate_inode_pages_range")
        k.pages.put_page(page, _TRUNCATE_C + "truncate_inode_pages_range")
    return removed


def invalidate_mapping_pages(mapping: AddressSpace) -> int:
    """``invalidate_mapping_pages(mapping, 0, -1)``: evict every unused folio
    (``mapping_evict_folio``); returns how many went."""
    k = mapping.host.kernel
    where = _TRUNCATE_C + "mapping_evict_folio"
    evicted = 0
    for index in sorted(mapping.pages):
        page = mapping.pages.get(index)
        if page is None:
            continue
        page.refcount += 1  # find_lock_entries' reference
        if not k.pages.trylock_page(page, _TRUNCATE_C + "mapping_evict_folio"):
            k.pages.put_page(page, where)
            continue
        # The cache's reference, ours, and none from a mapping or anybody else.
        if (
            page.mapping is mapping
            and not page.dirty
            and page.refcount <= 2
            and filemap_release_folio(page, 0)
            and page.refcount == 2
        ):
            page_cache_delete(mapping, page, where)
            _free_folio_hook(mapping, page)
            page.refcount -= 1
            evicted += 1
        folio_unlock(k, page, where)
        k.pages.put_page(page, where)
    return evicted


def drop_caches(kernel: Kernel) -> int:
    """``drop_pagecache_sb`` for every mapping with folios on the LRU (``echo 1 >
    /proc/sys/vm/drop_caches``); returns the folios evicted."""
    seen: dict[int, AddressSpace] = {}
    for lst in (kernel.lruvec.inactive, kernel.lruvec.active):
        for page in lst.values():
            if page.mapping is not None:
                seen.setdefault(id(page.mapping), page.mapping)
    return sum(invalidate_mapping_pages(m) for m in seen.values())
