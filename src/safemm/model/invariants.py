"""``Kernel.check_invariants()``: the invariants of the machine (docs/invariants.md lists
each with the kernel source that states it), checked all over, each failure naming the
invariant.

Mirrors what the kernel's debug checks validate piecemeal (``validate_mm`` in mm/vma.c,
``mt_validate``, page-state checks in mm/debug.c, lockdep's exit checks), all at once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .errors import InvariantError
from .mman import PAGE_SHIFT, PAGE_SIZE
from .page_alloc import PageKind
from .vm_flags import VM_ACCESS_FLAGS, VM_HUGETLB, VM_MIXEDMAP, VM_PFNMAP

if TYPE_CHECKING:
    from .fs import AddressSpace
    from .kernel import Kernel
    from .mm_types import MmStruct, Vma

__all__ = ["check_invariants"]


def _fail(name: str, detail: str) -> None:
    raise InvariantError(f"invariant '{name}' broken: {detail}", name)


def _check_vmas(k: Kernel, mm: MmStruct, mappings: dict[int, AddressSpace]) -> None:
    prev_end = 0
    count = 0
    for start, end, vma in mm.mm_mt:
        count += 1
        if vma.vm_start != start or vma.vm_end != end:
            _fail("vma-tree", f"{vma!r} is stored in the tree as {start:#x}-{end:#x}")
        if start >= end or start % PAGE_SIZE or end % PAGE_SIZE:
            _fail("vma-aligned", f"{vma!r} is empty or not page aligned")
        if start < prev_end:
            _fail("vma-disjoint", f"{vma!r} overlaps the previous VMA (ends {prev_end:#x})")
        prev_end = end
        if vma.vm_mm is not mm or vma.detached or vma.freed:
            _fail("vma-attached", f"{vma!r} in mm {mm.id} is detached, freed or foreign")
        flags = vma.vm_flags
        if flags & VM_MIXEDMAP and flags & VM_PFNMAP:
            _fail("mixedmap-pfnmap-exclusive", f"{vma!r} has both VM_MIXEDMAP and VM_PFNMAP")
        if (flags & VM_ACCESS_FLAGS) & ~(flags >> 4):
            _fail("access-within-may", f"{vma!r} has access bits beyond its VM_MAY* ceiling")
        f = vma.vm_file
        if f is not None:
            mappings[id(f.f_mapping)] = f.f_mapping
            tree = f.f_mapping.i_mmap
            if vma not in tree:
                _fail("i_mmap", f"file {vma!r} of mm {mm.id} is missing from i_mmap of {f.path}")
        if vma.readers:
            _fail("vma-lock", f"{vma!r} is still read-locked by {vma.readers}")
    # do_mmap refuses only when map_count > sysctl_max_map_count, so a mapping made at
    # exactly the limit takes the mm one above it; nothing goes further (split_vma refuses
    # at the limit, munmap's unchecked splits are followed by removals).
    if count != mm.map_count or count > k.max_map_count + 1:
        _fail(
            "map-count",
            f"mm {mm.id} has {count} VMAs, map_count {mm.map_count}, limit {k.max_map_count}",
        )


def _vma_at(mm: MmStruct, addr: int) -> Vma | None:
    return mm.mm_mt.load(addr)


def _check_ptes(k: Kernel, mm: MmStruct, mapcounts: Counter[int]) -> None:
    rss = Counter[str]()
    pt = mm.pgtables
    for idx, tbl in pt.pmds.items():
        if not tbl:
            _fail("pgtable", f"mm {mm.id} keeps an empty PTE table at PMD {idx}")
        for vpn, pte in tbl.items():
            addr = vpn << PAGE_SHIFT
            vma = _vma_at(mm, addr)
            if vma is None:
                _fail("pte-in-vma", f"mm {mm.id} has a PTE at {addr:#x} outside any VMA")
                continue
            page = pte.page
            if pte.special:
                if page is not None:
                    _fail("special-pte", f"special PTE at {addr:#x} holds a page reference")
                if pte.pfn != 0 and not vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
                    _fail(
                        "special-pte",
                        f"special PTE at {addr:#x} in {vma!r}, which is "
                        "neither VM_PFNMAP nor VM_MIXEDMAP",
                    )
                continue
            if page is None or page.pfn != pte.pfn:
                _fail("pte-page", f"PTE at {addr:#x} does not name its page")
                continue
            if page.kind is PageKind.FREE:
                _fail("page-live", f"PTE at {addr:#x} maps free page pfn {page.pfn:#x}")
            mapcounts[page.pfn] += 1
            if page.kind is PageKind.ANON:
                rss["anon"] += 1
            elif page.mapping is not None and page.mapping.host.kind == "shmem":
                rss["shmem"] += 1
            else:
                rss["file"] += 1
    for idx in pt.huge:
        vma = _vma_at(mm, idx << (PAGE_SHIFT + 9))
        if vma is None or not vma.vm_flags & VM_HUGETLB:
            _fail("pte-in-vma", f"mm {mm.id} has a huge PMD at index {idx} outside a hugetlb VMA")
    got = (mm.rss_anon, mm.rss_file, mm.rss_shmem)
    want = (rss["anon"], rss["file"], rss["shmem"])
    if got != want:
        _fail("rss", f"mm {mm.id} rss (anon, file, shmem) is {got}, PTEs say {want}")


def _check_pages(k: Kernel, mapcounts: Counter[int]) -> None:
    alloc = k.pages
    recycled, unused = alloc.free_parts()
    free = set(recycled)
    if len(free) != len(recycled) or any(pfn >= unused for pfn in recycled):
        _fail("free-list", "a frame is on the free list twice")
    frames = alloc.frames()
    n = len(frames)
    # A pfn above the created frames has never been allocated: it must be free.
    never = sum(1 for pfn in recycled if pfn >= n) + alloc.nr_pages + 1 - max(unused, n)
    if never != alloc.nr_pages + 1 - n:
        _fail("free-list", "a frame that was never allocated is not on the free list")
    for page in frames[1:]:
        is_free = page.pfn in free or page.pfn >= unused
        if is_free != (page.kind is PageKind.FREE):
            _fail("free-list", f"{page!r} free-list membership disagrees with its kind")
        if is_free:
            if page.refcount or page.mapcount:
                _fail("page-refcount", f"free {page!r} has references")
            continue
        want = mapcounts.get(page.pfn, 0)
        if page.mapcount != want:
            _fail("page-mapcount", f"{page!r} has mapcount {page.mapcount}, PTEs say {want}")
        if page.refcount < page.mapcount or page.refcount < 1:
            _fail("page-refcount", f"{page!r} has fewer references than mappings")


def _check_i_mmap(mappings: dict[int, AddressSpace], live_mms: set[int]) -> None:
    for mapping in mappings.values():
        for vma in mapping.i_mmap:
            if vma.detached or vma.vm_mm.id not in live_mms:
                _fail("i_mmap", f"i_mmap of {mapping!r} holds {vma!r}, which is not mapped")
            f = vma.vm_file
            if f is None or f.f_mapping is not mapping:
                _fail("i_mmap", f"{vma!r} sits in the i_mmap of another mapping")


def _check_page_cache(k: Kernel, mappings: dict[int, AddressSpace]) -> None:
    lru = k.lruvec
    for active, lst in ((False, lru.inactive), (True, lru.active)):
        for pfn, page in lst.items():
            if page.pfn != pfn or not page.lru or page.active is not active:
                _fail("lru", f"{page!r} is on the {'in' * (not active)}active list wrongly")
            if page.kind is PageKind.FREE or page.refcount < 1:
                _fail("lru", f"free {page!r} is on an LRU list")
            if page.mapping is not None:
                mappings.setdefault(id(page.mapping), page.mapping)
    if any(pfn in lru.active for pfn in lru.inactive):
        _fail("lru", "a folio is on both LRU lists")
    for mapping in mappings.values():
        for index, page in mapping.pages.items():
            if page.mapping is not mapping or page.index != index or page.refcount < 1:
                _fail(
                    "page-cache",
                    f"{mapping!r} caches {page!r} at {index}, which says index {page.index} "
                    f"of {page.mapping!r}",
                )


def _check_locks(k: Kernel) -> None:
    if len(k._tasks) != 1:
        return
    for p in k.processes.values():
        if p.task.held_locks:
            names = ", ".join(h.lock.name for h in p.task.held_locks)
            _fail("lock-held-return", f"{p!r} is in user space holding {names}")


def _check_quiescent(k: Kernel) -> None:
    """With no process, no open file and no pending work, every mm must be gone."""
    if k.processes or k.open_files or k._work or k._task_work:
        return
    if k.lruvec:
        page = next(iter({**k.lruvec.inactive, **k.lruvec.active}.values()))
        _fail(
            "no-leaks",
            f"{len(k.lruvec)} page-cache folio(s) outlive every file, e.g. {page!r} at index "
            f"{page.index} of {page.mapping!r} (the page cache was never truncated)",
        )
    for mm in k.mms.values():
        _fail(
            "no-leaks",
            f"mm {mm.id} outlives every process and file: mm_users "
            f"{mm.mm_users}, mm_count {mm.mm_count} (a reference was never dropped)",
        )


def check_invariants(k: Kernel) -> None:
    """Check every invariant of the machine ``k``; raise :class:`InvariantError` naming the
    first one broken. Leaks recorded since the last call are raised too."""
    mappings: dict[int, AddressSpace] = {}
    mapcounts: Counter[int] = Counter()
    mms = [mm for mm in k.mms.values() if not mm.exited]
    live = {mm.id for mm in mms}
    for mm in mms:
        _check_vmas(k, mm, mappings)
        _check_ptes(k, mm, mapcounts)
    for dev in k.devices.values():
        mappings[id(dev.inode.i_mapping)] = dev.inode.i_mapping
    for f in k.open_files.values():
        mappings[id(f.f_mapping)] = f.f_mapping
    _check_i_mmap(mappings, live)
    _check_page_cache(k, mappings)
    _check_pages(k, mapcounts)
    _check_locks(k)
    _check_quiescent(k)
    if len(k.leaks) > k.leaks_reported:
        new = k.leaks[k.leaks_reported :]
        k.leaks_reported = len(k.leaks)
        _fail("no-leaks", "; ".join(s.message for s in new))
