"""The reverse map (mm/rmap.c): the ``anon_vma`` a VMA's anonymous pages hang off, and the
walks over the mappings of a page-cache folio (``folio_referenced``, ``try_to_unmap``).

The model gives a VMA its ``anon_vma`` at the first anonymous fault (``anon_vma_prepare``),
reusing a neighbour's when the two could merge, so that splitting and merging back (mprotect)
keeps VMAs mergeable. Only the identity of an ``anon_vma`` matters (see
:class:`~safemm.model.mm_types.AnonVma`): no anon_vma chains, and no anonymous rmap walks
(anonymous pages are never reclaimed: the model has no swap).

A page-cache folio at file offset ``index`` of ``mapping`` can be mapped by any VMA in
``mapping.i_mmap`` whose page-offset range holds ``index``, at
``vma.vm_start + ((index - vma.vm_pgoff) << PAGE_SHIFT)`` (``vma_address``). Both walks visit
exactly those VMAs (``rmap_walk_file`` over the ``i_mmap`` interval tree) and look at the
one PTE each (``page_vma_mapped_walk``); a private COW copy there is another page and is
left alone.

Simplifications: order-0 folios only; TLB flushes and MMU notifiers are implicit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .filemap import folio_assert_locked
from .mm_types import AnonVma, Vma
from .mman import PAGE_SHIFT
from .vm_flags import VM_ACCESS_FLAGS, VM_LOCKED, VM_SOFTDIRTY

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .kernel import Kernel
    from .page_alloc import Page
    from .pgtable import Pte

__all__ = ["anon_vma_prepare", "find_mergeable_anon_vma", "folio_referenced", "try_to_unmap"]

_RMAP_C = "mm/rmap.c:"


def anon_vma_prepare(vma: Vma) -> None:
    """``anon_vma_prepare`` (mm/rmap.c): give the VMA an anon_vma, reusing a neighbour's
    (``find_mergeable_anon_vma``) so that a later mprotect can merge them again."""
    if vma.anon_vma is not None:
        return
    av = find_mergeable_anon_vma(vma)
    vma.anon_vma = av if av is not None else AnonVma(vma.vm_mm.kernel)
    vma.anon_vma_chain = 1


def find_mergeable_anon_vma(vma: Vma) -> AnonVma | None:
    """``find_mergeable_anon_vma`` (mm/vma.c): a compatible neighbour's anon_vma to reuse.

    The kernel defines it with the VMA surgery in mm/vma.c; the model keeps it here, next to
    its only caller, so that the fault path of mm/memory.c needs nothing from
    :mod:`safemm.model.vma` (which calls into mm/memory.c to zap).
    """
    mm = vma.vm_mm

    def compatible(a: Vma, b: Vma) -> bool:
        """``anon_vma_compatible`` (mm/vma.c): adjacent, same file, flags equal but for the
        access bits and soft-dirty, page offsets continuous."""
        return (
            a.vm_end == b.vm_start
            and a.vm_file is b.vm_file
            and not (a.vm_flags ^ b.vm_flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY)
            and b.vm_pgoff == a.vm_pgoff + ((b.vm_start - a.vm_start) >> PAGE_SHIFT)
        )

    nr = mm.mm_mt.next_after(vma.vm_end)
    if nr is not None:
        nxt = nr[2]
        if compatible(vma, nxt) and nxt.anon_vma is not None and nxt.anon_vma_chain <= 1:
            return nxt.anon_vma
    pr = mm.mm_mt.prev(vma.vm_start)
    if pr is not None:
        prev = pr[2]
        if compatible(prev, vma) and prev.anon_vma is not None and prev.anon_vma_chain <= 1:
            return prev.anon_vma
    return None


def _mapped_ptes(page: Page) -> Iterator[tuple[Vma, int, Pte]]:
    """``rmap_walk_file`` + ``page_vma_mapped_walk``: each VMA of the folio's mapping that
    covers its index, with the PTE there if it maps this folio."""
    mapping = page.mapping
    assert mapping is not None
    index = page.index
    for vma in list(mapping.i_mmap.iter_overlapping(index, index)):
        vpn = (vma.vm_start >> PAGE_SHIFT) + index - vma.vm_pgoff
        pte = vma.vm_mm.pgtables.lookup(vpn)
        if pte is not None and pte.page is page:
            yield vma, vpn, pte


def folio_referenced(kernel: Kernel, page: Page, is_locked: bool) -> tuple[int, int]:
    """``folio_referenced``: how many PTEs mapping the folio were young, clearing each young
    bit on the way (``ptep_clear_flush_young_notify``), and the VM flags of the VMAs that
    referenced it. Returns ``(referenced, vm_flags)``.

    An unmapped folio costs no walk (0). The walk is reclaim's (``rwc.try_lock``): it takes
    ``i_mmap_rwsem`` with a trylock and returns -1 when it is contended; a folio the caller
    has not locked is trylocked first and counted as referenced (1) when that fails. A
    ``VM_LOCKED`` VMA ends the walk with ``VM_LOCKED`` in the flags (mlocked: keep).
    """
    if not page.mapcount or page.mapping is None:
        return 0, 0
    k = kernel
    we_locked = False
    if not is_locked:
        if not k.pages.trylock_page(page, _RMAP_C + "folio_referenced"):
            return 1, 0
        we_locked = True
    mapping = page.mapping
    try:
        k.counters.rmap_walk += 1
        if not mapping.i_mmap_rwsem.down_read_trylock(k, _RMAP_C + "rmap_walk_file"):
            return -1, 0
        referenced = 0
        vm_flags = 0
        try:
            for vma, _vpn, pte in _mapped_ptes(page):
                k.counters.rmap_pte += 1
                if vma.vm_flags & VM_LOCKED:
                    vm_flags |= VM_LOCKED
                    break
                if pte.young:
                    pte.young = False
                    referenced += 1
                    vm_flags |= vma.vm_flags & ~VM_LOCKED
        finally:
            mapping.i_mmap_rwsem.up_read(k, _RMAP_C + "rmap_walk_file")
        return referenced, vm_flags
    finally:
        if we_locked:
            k.pages.unlock_page(page, _RMAP_C + "folio_referenced")


def try_to_unmap(kernel: Kernel, page: Page) -> None:
    """``try_to_unmap``: clear every PTE mapping the (locked) folio, in every mm that maps its
    file, taking ``i_mmap_rwsem`` for read (it may sleep). A dirty PTE dirties the folio; each
    PTE's mapcount and reference go. A ``VM_LOCKED`` VMA keeps its PTE
    (``try_to_unmap_one`` stops at it), so the folio stays mapped and reclaim keeps it.
    """
    from .memory import _rss_add  # local: memory.py is a heavier import

    k = kernel
    where = _RMAP_C + "try_to_unmap"
    folio_assert_locked(k, page, "try_to_unmap", where)
    mapping = page.mapping
    if mapping is None or not page.mapcount:
        return
    k.counters.rmap_walk += 1
    mapping.i_mmap_rwsem.down_read(k, _RMAP_C + "rmap_walk_file (i_mmap_lock_read)")
    try:
        for vma, vpn, pte in list(_mapped_ptes(page)):
            k.counters.rmap_pte += 1
            if vma.vm_flags & VM_LOCKED:
                break
            mm = vma.vm_mm
            mm.pgtables.clear(vpn)
            if pte.dirty:
                page.dirty = True
            _rss_add(mm, page, -1)
            page.mapcount -= 1
            k.counters.ptes_zapped += 1
            k.pages.put_page(page, where)
    finally:
        mapping.i_mmap_rwsem.up_read(k, _RMAP_C + "rmap_walk_file")
