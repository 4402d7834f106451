"""Anonymous-memory reverse mapping: the ``anon_vma`` a VMA's anonymous pages hang off
(mm/rmap.c).

The model gives a VMA its ``anon_vma`` at the first anonymous fault (``anon_vma_prepare``),
reusing a neighbour's when the two could merge, so that splitting and merging back (mprotect)
keeps VMAs mergeable. Only the identity of an ``anon_vma`` matters (see
:class:`~safemm.model.mm_types.AnonVma`): no anon_vma chains, no rmap walks.
"""

from __future__ import annotations

from .mm_types import AnonVma, Vma
from .mman import PAGE_SHIFT
from .vm_flags import VM_ACCESS_FLAGS, VM_SOFTDIRTY

__all__ = ["anon_vma_prepare", "find_mergeable_anon_vma"]


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
