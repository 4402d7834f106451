"""User accesses and page faults: arch/x86/mm/fault.c ``do_user_addr_fault``/
``access_error``/``mm_fault_error`` and mm/memory.c ``handle_mm_fault``, ``do_anonymous_page``,
``do_fault`` (``do_read_fault``/``do_cow_fault``/``do_shared_fault``, ``vmf_can_call_fault``),
``do_wp_page``."""

from __future__ import annotations

import errno

import pytest

from safemm.model import BusError, Kernel, KernelError, Process, SegmentationFault
from safemm.model.errors import SEGV_ACCERR, SEGV_MAPERR
from safemm.model.mm_types import VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV
from safemm.model.mman import (
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
)
from safemm.model.page_alloc import PageKind
from safemm.model.pgtable import Pte

from .strategies import ANON, RW, SHANON, P, TestDevice, page_at, pte_at, vma_at


def pte(p: Process, addr: int) -> Pte | None:
    return p.mm.pgtables.lookup(addr >> PAGE_SHIFT)


# -- anonymous memory -----------------------------------------------------------------------------


def test_read_maps_the_zero_page(k: Kernel, p: Process) -> None:
    """``do_anonymous_page``: a read fault maps the shared zero page (special, read-only) and
    allocates nothing."""
    a = p.mmap(None, P, RW, ANON)
    free = k.pages.nr_free
    assert p.read(a, 16) == bytes(16)
    e = pte(p, a)
    assert e is not None and e.special and e.pfn == 0 and not e.write and e.page is None
    assert k.pages.nr_free == free
    assert p.mm.rss_anon == 0
    assert vma_at(p, a).anon_vma is None


def test_write_zero_fills_a_new_page(k: Kernel, p: Process) -> None:
    """``do_anonymous_page``: a write fault allocates a zeroed anonymous page, maps it
    writable and dirty (``anon_vma_prepare`` gives the VMA an anon_vma)."""
    a = p.mmap(None, P, RW, ANON)
    free = k.pages.nr_free
    p.write(a + 8, b"hi")
    e = pte(p, a)
    assert e is not None and e.page is not None and e.page.kind is PageKind.ANON
    assert e.write and e.dirty and not e.special
    assert (e.page.refcount, e.page.mapcount) == (1, 1)
    assert p.read(a, 12) == bytes(8) + b"hi" + bytes(2)
    assert k.pages.nr_free == free - 1
    assert p.mm.rss_anon == 1
    assert vma_at(p, a).anon_vma is not None
    k.check_invariants()


def test_write_after_read_replaces_the_zero_page(k: Kernel, p: Process) -> None:
    """``do_wp_page`` on the zero page → ``wp_page_copy``: a new zeroed page replaces it."""
    a = p.mmap(None, P, RW, ANON)
    p.read(a, 1)
    p.write(a, b"z")
    e = pte(p, a)
    assert e is not None and e.page is not None and e.pfn != 0 and e.write
    assert p.read(a, 2) == b"z\x00"
    k.check_invariants()


def test_cow_fault_counters(k: Kernel, p: Process) -> None:
    """``wp_page_copy`` after fork copies; ``wp_page_reuse`` for the last mapper."""
    a = p.mmap(None, P, RW, ANON)
    p.write(a, b"a")
    c = p.fork()
    cow = k.counters.cow_fault
    c.write(a, b"b")
    assert k.counters.cow_fault == cow + 1
    reuse = k.counters.wp_reuse
    p.write(a, b"c")
    assert k.counters.wp_reuse == reuse + 1
    assert (p.read(a, 1), c.read(a, 1)) == (b"c", b"b")


def test_write_only_mapping_is_readable(p: Process) -> None:
    """x86 ``access_error``: a read needs any of VM_READ/WRITE/EXEC (``vma_is_accessible``),
    so PROT_WRITE alone can be read."""
    a = p.mmap(None, P, PROT_WRITE, ANON)
    p.write(a, b"w")
    assert p.read(a, 1) == b"w"
    b = p.mmap(None, P, PROT_EXEC, ANON)
    assert p.read(b, 1) == b"\x00"


# -- signals --------------------------------------------------------------------------------------


def test_sigsegv_maperr_where_nothing_is_mapped(p: Process) -> None:
    """``do_user_addr_fault``: no VMA (``lock_mm_and_find_vma`` fails) → SIGSEGV/SEGV_MAPERR,
    also in a hole and above TASK_SIZE."""
    a = p.mmap(None, 3 * P, RW, ANON)
    p.munmap(a + P, P)
    for addr in (0, a + P, a + 3 * P + 5, TASK_SIZE + 16):
        with pytest.raises(SegmentationFault) as ei:
            p.read(addr, 1)
        assert ei.value.code == SEGV_MAPERR and ei.value.addr == addr
    with pytest.raises(SegmentationFault) as ei:
        p.write(a + P, b"x")
    assert ei.value.code == SEGV_MAPERR


def test_sigsegv_accerr_where_the_vma_forbids(p: Process) -> None:
    """``access_error``: write without VM_WRITE, or any access to PROT_NONE → SEGV_ACCERR."""
    a = p.mmap(None, P, PROT_READ, ANON)
    b = p.mmap(None, P, PROT_NONE, ANON)
    with pytest.raises(SegmentationFault) as ei:
        p.write(a, b"x")
    assert ei.value.code == SEGV_ACCERR
    with pytest.raises(SegmentationFault) as ei:
        p.read(b, 1)
    assert ei.value.code == SEGV_ACCERR


def test_access_spanning_pages_faults_at_the_first_bad_page(p: Process) -> None:
    """A store crossing into an unmapped page faults at that page's first byte, after the
    bytes before it were stored."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.munmap(a + P, P)
    with pytest.raises(SegmentationFault) as ei:
        p.write(a + P - 2, b"abcd")
    assert ei.value.addr == a + P
    assert p.read(a + P - 2, 2) == b"ab"


def test_sigbus_on_an_unpopulated_driver_page(k: Kernel, p: Process) -> None:
    """``do_fault``: a VMA with vm_ops but no ``->fault`` and a none PTE → VM_FAULT_SIGBUS
    ("the VMA was not fully populated on mmap()")."""
    TestDevice(k, "/dev/t", insert=False)
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    with pytest.raises(BusError) as ei:
        p.read(a, 1)
    assert ei.value.addr == a


@pytest.mark.parametrize(
    ("ret", "exc", "code"),
    [
        (VM_FAULT_SIGBUS, BusError, None),
        (VM_FAULT_SIGSEGV, SegmentationFault, SEGV_MAPERR),
    ],
)
def test_fault_handler_errors_become_signals(
    k: Kernel, p: Process, ret: int, exc: type[Exception], code: int | None
) -> None:
    """``mm_fault_error``: VM_FAULT_SIGBUS → ``do_sigbus``; VM_FAULT_SIGSEGV →
    ``bad_area_nosemaphore``, i.e. SEGV_MAPERR."""
    TestDevice(k, "/dev/t", insert=False, fault=ret)
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    with pytest.raises(exc) as ei:
        p.read(a, 1)
    if code is not None:
        assert isinstance(ei.value, SegmentationFault) and ei.value.code == code


def test_fault_handler_oom(k: Kernel, p: Process) -> None:
    """``mm_fault_error``: VM_FAULT_OOM → ``pagefault_out_of_memory`` (the model has no OOM
    killer: the access fails with ENOMEM)."""
    TestDevice(k, "/dev/t", insert=False, fault=VM_FAULT_OOM)
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    with pytest.raises(KernelError) as ei:
        p.read(a, 1)
    assert ei.value.errno == errno.ENOMEM


# -- driver ->fault -------------------------------------------------------------------------------


def test_read_fault_maps_the_handler_page(k: Kernel, p: Process) -> None:
    """``do_read_fault`` → ``__do_fault`` → ``finish_fault``: the page ``->fault`` returns
    (with a reference) is mapped; the PTE keeps that reference and adds a mapcount."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd, 3 * P)
    assert p.read(a + P, 4) == b"dev4"
    pg = dev.pool[4]
    assert (pg.refcount, pg.mapcount) == (2, 1)
    assert page_at(p, a + P) is pg
    assert p.mm.rss_file == 1
    p.munmap(a, 2 * P)
    assert (pg.refcount, pg.mapcount) == (1, 0)
    k.check_invariants()


def test_private_write_fault_copies(k: Kernel, p: Process) -> None:
    """``do_cow_fault``: a write fault in a private file mapping copies the handler's page
    into a new anonymous page and releases the handler's reference."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, RW, MAP_PRIVATE, fd)
    p.write(a + 4, b"!")
    assert p.read(a, 5) == b"dev0!"
    assert dev.pool[0].read(0, 5) == b"dev0\x00"
    assert (dev.pool[0].refcount, dev.pool[0].mapcount) == (1, 0)
    assert p.mm.rss_anon == 1
    k.check_invariants()


def test_private_write_after_read_fault_copies(k: Kernel, p: Process) -> None:
    """``do_wp_page``: a private file page mapped by a read fault is read-only; the write
    copies it (``wp_page_copy``) and drops the file page's mapping."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, RW, MAP_PRIVATE, fd)
    assert p.read(a, 4) == b"dev0"
    assert not pte_at(p, a).write
    p.write(a, b"D")
    assert dev.pool[0].read(0, 4) == b"dev0"
    assert (dev.pool[0].refcount, dev.pool[0].mapcount) == (1, 0)
    k.check_invariants()


def test_shared_write_fault_writes_the_page(k: Kernel, p: Process) -> None:
    """``do_shared_fault``: a write fault in a shared mapping maps the handler's page
    writable."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, RW, MAP_SHARED, fd)
    p.write(a, b"S")
    assert dev.pool[0].read(0, 4) == b"Sev0"
    e = pte(p, a)
    assert e is not None and e.write and e.dirty


def test_fault_handler_inserting_itself(k: Kernel, p: Process) -> None:
    """``__do_fault``: a handler that installs the PTE (``vm_insert_page`` on a VM_MIXEDMAP
    VMA) returns VM_FAULT_NOPAGE and the fault path maps nothing more."""
    from safemm.model.vm_flags import VM_MIXEDMAP

    dev = TestDevice(k, "/dev/t", insert=False, fault="insert", set_flags=VM_MIXEDMAP)
    fd = p.open("/dev/t")
    a = p.mmap(None, 2 * P, PROT_READ, MAP_SHARED, fd)
    assert p.read(a + P, 4) == b"dev1"
    assert (dev.pool[1].refcount, dev.pool[1].mapcount) == (2, 1)
    k.check_invariants()


def test_shmem_fault(k: Kernel, p: Process) -> None:
    """Shared anonymous memory faults through shmem's ``->fault`` (page cache)."""
    a = p.mmap(None, 2 * P, RW, SHANON)
    p.write(a + P, b"s")
    e = pte(p, a + P)
    assert e is not None and e.page is not None and e.page.kind is PageKind.FILE
    assert p.mm.rss_shmem == 1
    assert p.read(a, 1) == b"\x00"
    k.check_invariants()


# -- locking of the fault path --------------------------------------------------------------------


def test_anon_fault_under_the_vma_lock(k: Kernel, p: Process) -> None:
    """``do_user_addr_fault``: ``lock_vma_under_rcu`` succeeds and the fault completes under
    the per-VMA lock (anon VMA that already has an anon_vma)."""
    a = p.mmap(None, 2 * P, RW, ANON)
    p.write(a, b"x")
    c0 = k.counters.snapshot()
    p.write(a + P, b"y")
    c1 = k.counters.snapshot()
    assert c1["vma_lock_success"] - c0["vma_lock_success"] == 1
    assert c1["vma_lock_retry"] == c0["vma_lock_retry"]
    assert c1["mmap_read_lock"] == c0["mmap_read_lock"]


def test_first_anon_write_takes_mmap_lock_by_trylock(k: Kernel, p: Process) -> None:
    """``__vmf_anon_prepare`` under the VMA lock: allocating the anon_vma needs the mmap lock,
    taken with ``mmap_read_trylock``; the fault completes under the VMA lock."""
    a = p.mmap(None, P, RW, ANON)
    c0 = k.counters.snapshot()
    p.write(a, b"x")
    c1 = k.counters.snapshot()
    assert c1["mmap_read_trylock"] - c0["mmap_read_trylock"] == 1
    assert c1["vma_lock_retry"] == c0["vma_lock_retry"]
    assert c1["mmap_read_lock"] == c0["mmap_read_lock"]
    assert vma_at(p, a).anon_vma is not None
    assert not p.task.held_locks


def test_first_anon_write_retries_when_the_trylock_fails(k: Kernel, p: Process) -> None:
    """``vmf_anon_prepare``: when that trylock fails, the VMA lock is dropped and the fault is
    retried (VM_FAULT_RETRY) under ``mmap_read_lock``."""
    a = p.mmap(None, P, RW, ANON)
    c0 = k.counters.snapshot()
    k.fault_inject.fail_next("trylock")
    p.write(a, b"x")
    c1 = k.counters.snapshot()
    assert c1["vma_lock_retry"] - c0["vma_lock_retry"] == 1
    assert c1["mmap_read_lock"] - c0["mmap_read_lock"] == 1
    assert p.read(a, 1) == b"x"
    assert not p.task.held_locks


def test_driver_fault_without_map_pages_runs_under_mmap_lock(k: Kernel, p: Process) -> None:
    """``vmf_can_call_fault``: a VMA whose vm_ops lack ``->map_pages`` drops the VMA lock and
    retries; ``->fault`` runs under the mmap read lock."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page")
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    retry = k.counters.vma_lock_retry
    p.read(a, 1)
    assert dev.fault_locks == [(True, False)]
    assert k.counters.vma_lock_retry == retry + 1


def test_driver_fault_with_map_pages_runs_under_vma_lock(k: Kernel, p: Process) -> None:
    """``vmf_can_call_fault``: with ``->map_pages`` the handler may run under the VMA lock
    only."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page", map_pages=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    p.read(a, 1)
    assert dev.fault_locks == [(False, True)]
    assert not p.task.held_locks
    k.check_invariants()


def test_vma_lock_failure_falls_back(k: Kernel, p: Process) -> None:
    """``lock_vma_under_rcu`` failing (fault injection) → ``lock_mm_and_find_vma``."""
    dev = TestDevice(k, "/dev/t", insert=False, fault="page", map_pages=True)
    fd = p.open("/dev/t")
    a = p.mmap(None, P, PROT_READ, MAP_SHARED, fd)
    k.fault_inject.fail_next("lock_vma_under_rcu")
    abort = k.counters.vma_lock_abort
    p.read(a, 1)
    assert k.counters.vma_lock_abort == abort + 1
    assert dev.fault_locks == [(True, False)]
