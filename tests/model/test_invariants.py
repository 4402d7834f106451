"""``Kernel.check_invariants()``: each invariant of docs/invariants.md (as checked by
mm/vma.c ``validate_mm``, lib/maple_tree.c ``mt_validate``, mm/debug.c page checks and
lockdep's exit checks) is named when broken.

Each case builds a healthy machine, corrupts one thing directly, and expects an
:class:`~safemm.model.errors.InvariantError` naming the right invariant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from safemm.model import InvariantError, Kernel, Process, Vma
from safemm.model.locking import HeldLock, Mutex
from safemm.model.mman import MAP_SHARED, PAGE_SHIFT, PROT_READ
from safemm.model.page_alloc import PageKind
from safemm.model.pgtable import Pte
from safemm.model.vm_flags import VM_MAYWRITE, VM_MIXEDMAP, VM_PFNMAP

from .strategies import ANON, RW, P, TestDevice, page_at, vma_at


@dataclass
class World:
    """A healthy machine: a process with written anonymous memory and a device mapping with
    inserted pages, and a fork child."""

    k: Kernel
    p: Process
    c: Process
    dev: TestDevice
    anon: int
    devmap: int

    @property
    def av(self) -> Vma:
        return vma_at(self.p, self.anon)

    @property
    def dv(self) -> Vma:
        return vma_at(self.p, self.devmap)


def world() -> World:
    k = Kernel()
    p = k.spawn()
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    anon = p.mmap(0x2000_0000, 4 * P, RW, ANON)
    for i in range(4):
        p.write(anon + i * P, b"x")
    devmap = p.mmap(0x3000_0000, 2 * P, PROT_READ, MAP_SHARED, fd)
    c = p.fork()
    k.check_invariants()
    return World(k, p, c, dev, anon, devmap)


def _unaligned(w: World) -> None:
    v = w.av
    w.p.mm.mm_mt.set_range(v.vm_start, v.vm_start, v.vm_end - 1)
    v.vm_end -= 1


def _empty_table(w: World) -> None:
    w.p.mm.pgtables.pmds[0x1234] = {}


def _pte_outside(w: World) -> None:
    pg = page_at(w.p, w.anon)
    w.p.mm.pgtables.set((0x5000_0000 >> PAGE_SHIFT), Pte(pg.pfn, pg, write=False, special=False))


def _special_with_page(w: World) -> None:
    e = w.p.mm.pgtables.lookup(w.anon >> PAGE_SHIFT)
    assert e is not None
    e.special = True


def _special_in_anon(w: World) -> None:
    w.p.mm.pgtables.set((w.anon >> PAGE_SHIFT), Pte(1 << 20, None, write=False, special=True))
    w.p.mm.rss_anon -= 1  # keep rss consistent; the page's mapcount now disagrees too


def _wrong_pfn(w: World) -> None:
    e = w.p.mm.pgtables.lookup(w.anon >> PAGE_SHIFT)
    assert e is not None
    e.pfn += 1


def _free_page_mapped(w: World) -> None:
    e = w.c.mm.pgtables.lookup(w.anon >> PAGE_SHIFT)
    assert e is not None and e.page is not None
    w.k.pages.free.append(e.page.pfn)
    e.page.kind = PageKind.FREE


def _dup_free(w: World) -> None:
    w.k.pages.free.append(w.k.pages.free[-1])


def _kind_mismatch(w: World) -> None:
    w.k.pages.pages[w.k.pages.free[-1]].kind = PageKind.KERNEL


def _refcount_below_mapcount(w: World) -> None:
    page_at(w.p, w.anon).refcount = 1  # mapped by parent and child: mapcount 2


def _mapcount(w: World) -> None:
    page_at(w.p, w.anon).mapcount += 1


def _free_with_refs(w: World) -> None:
    w.k.pages.pages[w.k.pages.free[-1]].refcount = 1


def _rss(w: World) -> None:
    w.p.mm.rss_anon += 1


def _not_in_i_mmap(w: World) -> None:
    v = w.dv
    assert v.vm_file is not None
    v.vm_file.f_mapping.i_mmap.remove(v)


def _stale_in_i_mmap(w: World) -> None:
    v = w.dv
    assert v.vm_file is not None
    mapping = v.vm_file.f_mapping
    w.p.munmap(w.devmap, 2 * P)
    mapping.i_mmap.insert(v, 0, 1)


def _detached(w: World) -> None:
    w.av.detached = True


def _both_mixed_and_pfn(w: World) -> None:
    w.dv.vm_flags |= VM_MIXEDMAP | VM_PFNMAP


def _beyond_may(w: World) -> None:
    w.av.vm_flags &= ~VM_MAYWRITE


def _vma_reader_left(w: World) -> None:
    w.av.readers.append(w.p.task)


def _too_many_vmas(w: World) -> None:
    w.k.max_map_count = 0


def _lock_in_user_space(w: World) -> None:
    w.p.task.held_locks.append(HeldLock(Mutex("forgotten"), False, "test"))


def _leak(w: World) -> None:
    w.k.leak("test", "a reference that was never dropped")


CASES: list[tuple[str, Callable[[World], None]]] = [
    ("vma-aligned", _unaligned),
    ("pgtable", _empty_table),
    ("pte-in-vma", _pte_outside),
    ("special-pte", _special_with_page),
    ("special-pte", _special_in_anon),
    ("pte-page", _wrong_pfn),
    ("page-live", _free_page_mapped),
    ("free-list", _dup_free),
    ("free-list", _kind_mismatch),
    ("page-refcount", _refcount_below_mapcount),
    ("page-refcount", _free_with_refs),
    ("page-mapcount", _mapcount),
    ("rss", _rss),
    ("i_mmap", _not_in_i_mmap),
    ("i_mmap", _stale_in_i_mmap),
    ("vma-attached", _detached),
    ("mixedmap-pfnmap-exclusive", _both_mixed_and_pfn),
    ("access-within-may", _beyond_may),
    ("vma-lock", _vma_reader_left),
    ("map-count", _too_many_vmas),
    ("lock-held-return", _lock_in_user_space),
    ("no-leaks", _leak),
]


@pytest.mark.parametrize(("name", "corrupt"), CASES, ids=[f.__name__[1:] for _, f in CASES])
def test_corruption_is_named(name: str, corrupt: Callable[[World], None]) -> None:
    """Each broken invariant raises InvariantError naming it."""
    w = world()
    corrupt(w)
    with pytest.raises(InvariantError, match=f"invariant '{name}' broken"):
        w.k.check_invariants()


def test_vma_tree_mismatch() -> None:
    """``validate_mm``: a VMA's fields must match its range in the maple tree."""
    w = world()
    w.av.vm_end -= P
    with pytest.raises(InvariantError, match="'vma-tree'"):
        w.k.check_invariants()


def test_leaks_are_reported_once() -> None:
    """A recorded leak is raised by the next ``check_invariants`` only."""
    w = world()
    w.k.leak("test", "once")
    with pytest.raises(InvariantError, match="once"):
        w.k.check_invariants()
    w.k.check_invariants()


def test_quiescent_machine_must_have_no_mm() -> None:
    """With no process, no open file and no pending work left, every mm must be freed."""
    w = world()
    w.c.exit()
    w.p.exit()
    w.k.check_invariants()
    assert not w.k.mms


def test_healthy_after_a_busy_workload() -> None:
    """A workload touching every syscall keeps every invariant."""
    w = world()
    p, c = w.p, w.c
    p.mprotect(w.anon + P, P, PROT_READ)
    p.mremap(w.anon + 2 * P, 2 * P, 6 * P, 1)
    c.munmap(w.anon + P, 2 * P)
    c.write(w.anon, b"child")
    g = c.fork()
    g.exit()
    w.k.check_invariants()
    c.exit()
    p.exit()
    w.k.check_invariants()
