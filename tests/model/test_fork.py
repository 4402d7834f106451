"""fork(2) and exit(2): kernel/fork.c ``dup_mmap``/``copy_mm``, mm/memory.c
``copy_page_range``/``copy_present_pte``/``vma_needs_copy``, kernel/exit.c ``exit_mm``,
kernel/fork.c ``mmput``/``__mmput``/``mmgrab``/``mmdrop``/``mmget_not_zero`` and mm/mmap.c
``exit_mmap``."""

from __future__ import annotations

import errno

import pytest

from safemm.model import Kernel, KernelError, MmStruct, Process
from safemm.model.fork import mmdrop, mmget_not_zero, mmgrab, mmput
from safemm.model.mman import (
    MAP_FIXED,
    MAP_LOCKED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from safemm.model.pgtable import Pte
from safemm.model.vm_flags import (
    VM_DONTCOPY,
    VM_LOCKED,
    VM_UFFD_MISSING,
    VM_WIPEONFORK,
)
from safemm.model.vm_flags_update import vm_flags_set

from .strategies import (
    ANON,
    RW,
    SHANON,
    P,
    TestDevice,
    in_task,
    layout,
    locked,
    page_at,
    pte_at,
    vma_at,
)


def mm_state(mm: MmStruct) -> tuple[bool, bool]:
    """(exited, freed), read afresh (no narrowing across calls)."""
    return mm.exited, mm.freed


def pte(p: Process, addr: int) -> Pte | None:
    return p.mm.pgtables.lookup(addr >> PAGE_SHIFT)


def test_cow_write_protects_both_sides(k: Kernel, p: Process) -> None:
    """``copy_present_pte``: in a COW mapping a writable PTE is write-protected in the parent
    and the child; the anonymous page is shared (refcount and mapcount 2); a later write
    copies (``wp_page_copy``) and the other side keeps the old contents."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.write(a, b"orig")
    page = page_at(p, a)
    c = p.fork()
    cp = pte_at(c, a)
    assert cp.page is page
    assert not pte_at(p, a).write and not cp.write
    assert (page.refcount, page.mapcount) == (2, 2)
    assert c.mm.rss_anon == 1
    c.write(a, b"kid!")
    assert p.read(a, 4) == b"orig"
    assert c.read(a, 4) == b"kid!"
    assert page_at(c, a) is not page
    assert (page.refcount, page.mapcount) == (1, 1)
    p.write(a, b"PARN")  # now exclusive again: reused in place (wp_page_reuse)
    assert page_at(p, a) is page
    k.check_invariants()


def test_child_vma_copies(k: Kernel, p: Process) -> None:
    """``dup_mmap``: every VMA is copied with its flags and pgoff; the child gets its own
    anon_vma linked to the parent's (``anon_vma_fork``)."""
    a = p.mmap(None, 3 * P, RW, ANON)
    p.mprotect(a + P, P, PROT_READ)
    p.write(a, b"x")
    c = p.fork()
    assert layout(c) == layout(p)
    pv, cv = vma_at(p, a), vma_at(c, a)
    assert cv is not pv and cv.vm_mm is c.mm
    assert cv.vm_pgoff == pv.vm_pgoff and cv.vm_flags == pv.vm_flags
    assert cv.anon_vma is not None and cv.anon_vma is not pv.anon_vma
    assert pv.anon_vma is not None and cv.anon_vma.root is pv.anon_vma.root
    k.check_invariants()


def test_dontcopy_vma_is_absent_in_child(k: Kernel, p: Process) -> None:
    """``dup_mmap``: VM_DONTCOPY (MADV_DONTFORK) VMAs are skipped."""
    a = p.mmap(None, 2 * P, RW, ANON)
    b = p.mmap(None, P, RW, MAP_SHARED | ANON & ~MAP_PRIVATE)
    p.write(a, b"x")
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_DONTCOPY)
    c = p.fork()
    assert c.mm.mm_mt.load(a) is None
    assert [s for s, _, _ in layout(c)] == [b]
    assert c.mm.rss_anon == 0
    k.check_invariants()


def test_driver_dontcopy_gets_no_open(k: Kernel, p: Process) -> None:
    """``dup_mmap``: a VM_DONTCOPY driver VMA is neither copied nor ``->open``ed."""
    dev = TestDevice(k, "/dev/t", hooks=True, set_flags=VM_DONTCOPY)
    fd = p.open("/dev/t")
    p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    c = p.fork()
    assert c.mm.map_count == 0
    assert dev.objs[0].opens == 0
    dev.check_pieces()


def test_wipeonfork_child_gets_empty_range(k: Kernel, p: Process) -> None:
    """``dup_mmap``: VM_WIPEONFORK copies the VMA with a fresh (no) anon_vma and copies no PTEs;
    the child reads zeros, the parent keeps its data."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.write(a, b"secret")
    with locked(p):
        vm_flags_set(vma_at(p, a), VM_WIPEONFORK)
    c = p.fork()
    cv = vma_at(c, a)
    assert cv.vm_flags & VM_WIPEONFORK
    assert cv.anon_vma is None
    assert pte(c, a) is None
    assert c.read(a, 6) == bytes(6)
    assert p.read(a, 6) == b"secret"
    assert pte_at(p, a).write  # no COW protection: nothing shared
    k.check_invariants()


def test_open_on_child_copies_and_close_on_exit(k: Kernel, p: Process) -> None:
    """``dup_mmap`` calls ``->open`` on each copy (after linking it); the child's exit
    ``->close``s it (``exit_mmap`` → ``remove_vma``)."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    p.mprotect(a + P, P, 0)
    obj = dev.objs[0]
    assert (obj.opens, obj.closes) == (2, 0)
    c = p.fork()
    assert (obj.opens, obj.closes) == (5, 0)
    dev.check_pieces()
    c.exit()
    assert obj.closes == 3
    assert {pid for _, _, pid in obj.closed_ranges} == {c.pid}
    dev.check_pieces()
    k.check_invariants()


def test_mixedmap_ptes_are_copied_with_references(k: Kernel, p: Process) -> None:
    """``vma_needs_copy``: VM_MIXEDMAP VMAs always have their page tables copied; a normal
    inserted page gains a reference and a mapcount; shared mappings stay writable and the
    child's PTE is clean."""
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, RW, MAP_SHARED, fd)
    p.write(a, b"w")
    assert pte_at(p, a).dirty
    c = p.fork()
    cp = pte(c, a)
    assert cp is not None and cp.page is dev.pool[0]
    assert cp.write and not cp.dirty and not cp.special
    assert pte_at(p, a).write  # not a COW mapping
    assert (dev.pool[0].refcount, dev.pool[0].mapcount) == (3, 2)
    assert c.mm.rss_file == 2
    c.write(a, b"C")
    assert p.read(a, 1) == b"C"
    k.check_invariants()


def test_special_ptes_copied_without_references(k: Kernel, p: Process) -> None:
    """``copy_present_pte`` on VM_PFNMAP: special PTEs are copied verbatim; no struct page
    reference is taken (H11)."""
    dev = TestDevice(k, "/dev/pfn", insert=False, pfnmap=True)
    fd = p.open("/dev/pfn")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    pg = dev.pool[0]
    assert (pg.refcount, pg.mapcount) == (1, 0)
    c = p.fork()
    cp = pte(c, a)
    assert cp is not None and cp.special and cp.page is None and cp.pfn == pg.pfn
    assert (pg.refcount, pg.mapcount) == (1, 0)
    assert c.read(a, 4) == b"dev0"
    k.check_invariants()


def test_shared_anon_ptes_are_not_copied(k: Kernel, p: Process) -> None:
    """``vma_needs_copy``: a shmem VMA without an anon_vma is not copied — the child faults
    the same page-cache page in (``shmem_fault``)."""
    a = p.mmap(None, P, RW, SHANON)
    p.write(a, b"shm")
    c = p.fork()
    assert pte(c, a) is None
    assert c.read(a, 3) == b"shm"
    assert page_at(c, a) is page_at(p, a)
    k.check_invariants()


def test_zero_page_only_anon_is_not_copied(k: Kernel, p: Process) -> None:
    """``vma_needs_copy``: an anonymous VMA only read (zero page, no anon_vma) has no PTEs
    copied; one with an anon_vma has its zero-page PTEs copied as special PTEs."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.read(a, 1)
    c = p.fork()
    assert pte(c, a) is None
    p.write(a + P, b"x")  # anon_vma now exists
    c2 = p.fork()
    zp = pte(c2, a)
    assert zp is not None and zp.special and zp.pfn == 0
    k.check_invariants()


def test_child_drops_vm_locked_and_uffd(k: Kernel, p: Process) -> None:
    """``dup_mmap``: the child copy loses VM_LOCKED/VM_LOCKONFAULT; ``dup_userfaultfd``
    without UFFD_FEATURE_EVENT_FORK drops the uffd flags and context."""
    a = p.mmap(None, P, RW, ANON | MAP_LOCKED)
    b = p.mmap(None, P, PROT_READ, ANON)
    p.userfaultfd_register(b, P)
    assert vma_at(p, b).vm_flags & VM_UFFD_MISSING
    c = p.fork()
    assert vma_at(p, a).vm_flags & VM_LOCKED and not vma_at(c, a).vm_flags & VM_LOCKED
    cv = vma_at(c, b)
    assert not cv.vm_flags & VM_UFFD_MISSING and cv.vm_userfaultfd_ctx is None


def test_fork_shares_descriptors(k: Kernel, p: Process) -> None:
    """``copy_files``: the child's descriptors reference the same files."""
    dev = TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    f = p.fds[fd]
    c = p.fork()
    assert c.fds[fd] is f and f.f_count == 2
    p.close(fd)
    assert dev.releases == 0
    c.exit()
    assert dev.releases == 1


# -- exit -----------------------------------------------------------------------------------------


def test_exit_closes_everything_and_frees(k: Kernel, p: Process) -> None:
    """``exit_mm`` → ``mmput`` → ``__mmput`` → ``exit_mmap``: every VMA is zapped, closed
    (``->close`` once each) and freed; anonymous pages go back to the allocator; the mm is
    freed; then ``exit_files`` releases the files (``->release`` runs once)."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    free = k.pages.nr_free
    a = p.mmap(None, 4 * P, PROT_READ, MAP_SHARED, fd)
    p.mprotect(a + P, P, 0)
    b = p.mmap(None, 8 * P, RW, ANON)
    for i in range(8):
        p.write(b + i * P, b"x")
    mm = p.mm
    p.exit()
    obj = dev.objs[0]
    assert (obj.opens, obj.closes) == (2, 3)
    assert mm.exited and mm.freed and mm.id not in k.mms
    assert k.pages.nr_free == free
    assert all(pg.mapcount == 0 and pg.refcount == 1 for pg in dev.pool)
    assert dev.releases == 1
    assert not k.open_files
    with pytest.raises(KernelError) as ei:
        p.mmap(None, P, RW, ANON)
    assert ei.value.errno == errno.ESRCH
    k.check_invariants()


def test_mmgrab_keeps_the_struct_but_not_the_address_space(k: Kernel, p: Process) -> None:
    """``mmgrab`` pins ``mm_count`` only: after exit the address space is torn down,
    ``mmget_not_zero`` fails, and the struct lives until ``mmdrop``."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    k.spawn("bystander")  # keeps the machine from being quiescent (no-leaks check)
    fd = p.open("/dev/t")
    p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    mm = p.mm
    mmgrab(mm)
    assert mm.mm_count == 2
    p.exit()
    assert mm_state(mm) == (True, False) and mm.id in k.mms
    assert mm.map_count == 0
    assert dev.objs[0].closes == 1
    assert not mmget_not_zero(mm)
    assert k.counters.mmget_not_zero_failed == 1
    k.check_invariants()
    mmdrop(mm)
    assert mm_state(mm) == (True, True) and mm.id not in k.mms
    k.check_invariants()


def test_mmget_delays_teardown(k: Kernel, p: Process) -> None:
    """``mmget_not_zero`` while the process lives keeps the address space after exit; the
    last ``mmput`` tears it down (running ``->close`` in the caller's context)."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    mm = p.mm
    assert mmget_not_zero(mm)
    p.exit()
    assert mm_state(mm) == (False, False) and mm.map_count == 1
    assert dev.objs[0].closes == 0
    mmput(mm)
    assert mm_state(mm) == (True, True)
    assert dev.objs[0].closes == 1
    k.check_invariants()


def test_quiescent_leak_check(k: Kernel, p: Process) -> None:
    """``check_invariants`` (no-leaks): with no process and no open file left, an mm still
    pinned by ``mmgrab`` is a leak."""
    from safemm.model import InvariantError

    mm = p.mm
    mmgrab(mm)
    p.exit()
    with pytest.raises(InvariantError, match="no-leaks"):
        k.check_invariants()
    mmdrop(mm)
    k.check_invariants()


def test_parent_exit_leaves_child_pages(k: Kernel, p: Process) -> None:
    """Shared COW pages survive the parent's exit with the child's reference."""
    a = p.mmap(None, P, RW, ANON)
    p.write(a, b"inherit")
    c = p.fork()
    p.exit()
    assert c.read(a, 7) == b"inherit"
    page = page_at(c, a)
    assert (page.refcount, page.mapcount) == (1, 1)
    c.write(a, b"I")  # exclusive now: no copy
    assert page_at(c, a) is page
    k.check_invariants()


def test_exit_closes_vmas_before_releasing_files(k: Kernel, p: Process) -> None:
    """kernel/exit.c ``do_exit``: ``exit_mm`` (``->close`` of every VMA) runs before
    ``exit_files``; the last ``fput``'s ``->release`` comes after, as task work."""
    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, 3 * P, PROT_READ, MAP_SHARED, fd)
    p.mprotect(a + P, P, 0)
    dev.log.clear()
    p.exit()
    assert [e for e, _ in dev.log] == ["close", "close", "close", "release"]
    assert {pid for _, pid in dev.log} == {p.pid}


def test_mmput_async_defers_teardown_to_a_kworker(k: Kernel, p: Process) -> None:
    """``mmput_async``: dropping the last user reference queues ``__mmput`` to a workqueue;
    the VMAs are closed later, by a kworker (not in the caller's context)."""
    from safemm.model.fork import mmput_async

    dev = TestDevice(k, "/dev/t", hooks=True)
    fd = p.open("/dev/t")
    p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    mm = p.mm
    assert mmget_not_zero(mm)
    p.exit()
    assert mm_state(mm) == (False, False)
    dev.log.clear()
    with in_task(k.spawn("reclaimer")):
        mmput_async(mm)
        assert mm_state(mm) == (False, False)  # deferred: nothing torn down yet
    assert mm_state(mm) == (True, True)  # the work ran when the entry returned
    # in a kworker; the VMA held the file's last reference, so ->release follows (the
    # kworker's fput is delayed to its own task work, as for kernel threads)
    assert dev.log == [("close", 0), ("release", 0)]
    assert k.counters.mmput_async == 1
    k.check_invariants()


def test_fork_child_faulted_vma_does_not_merge_into_an_unfaulted_neighbour(
    k: Kernel, p: Process
) -> None:
    """``is_mergeable_anon_vma`` case 1 (mm/vma.c): a change to a fork child's faulted VMA
    that would hand its anon_vma to an unfaulted neighbour (``dup_anon_vma``) is refused —
    the child's anon_vma chain is not singular (``vma_is_fork_child``). In the parent, whose
    chain is singular, the same mprotect merges. Checked on Linux 6.18."""
    base = p.mmap(None, 4 * P, PROT_NONE, ANON)
    p.mprotect(base + 3 * P, P, PROT_WRITE)
    p.write(base + 3 * P, b"x")
    c = p.fork()
    c.mprotect(base + 2 * P, 2 * P, PROT_WRITE | PROT_EXEC)
    assert [(s - base) // P for s, _, _ in layout(c)] == [0, 2, 3]
    p.mprotect(base + 2 * P, 2 * P, PROT_WRITE | PROT_EXEC)
    assert [(s - base) // P for s, _, _ in layout(p)] == [0, 2]
    k.check_invariants()


def test_fork_child_vma_moved_back_next_to_an_unfaulted_one_stays_apart(
    k: Kernel, p: Process
) -> None:
    """``copy_vma`` → ``vma_merge_copied_range``: the moved VMA is ``copied_from``, not the
    middle of the merge, and a fork child's faulted VMA moved back behind an unfaulted one
    whose page offset lines up is not merged into it; the parent's is (and with the faulted
    rest above it, which shares its anon_vma). Checked on Linux 6.18."""
    base = p.mmap(None, 12 * P, PROT_NONE, ANON)
    a = base + 2 * P
    p.mmap(a, 2 * P, RW, ANON | MAP_FIXED)
    p.write(a, b"x")
    c = p.fork()
    for proc in (c, p):
        proc.mremap(a, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, a + 8 * P)
        proc.mmap(a - P, P, RW, ANON | MAP_FIXED)  # unfaulted: vm_pgoff is its own page
        proc.mremap(a + 8 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, a)
        assert proc.read(a, 1) == b"x"
    assert vma_at(c, a - P) is not vma_at(c, a)
    assert vma_at(c, a) is vma_at(c, a + P)
    assert vma_at(p, a - P) is vma_at(p, a) is vma_at(p, a + P)
    k.check_invariants()
