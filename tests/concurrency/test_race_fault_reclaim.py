"""Race 7: a fault against reclaim in the fault-and-unmap design
(src/safemm/demo/drivers/fault_unmap.py).

The receiver touches a page of its area for the first time (``vm_ops->fault``) while kswapd
runs the driver's shrinker on that page's slot. The demo driver as it was had the race: its
``->fault`` read the slot's page under ``area.lock``, dropped the lock and returned the page,
and only then did the kernel take its reference; the shrinker could run in between — take
``area.lock``, ``unmap_mapping_range`` (nothing mapped yet), empty the slot and free the page
— and the fault then mapped a freed page. The explorer finds it at one preemption, at the
``spin_unlock`` of ``area.lock`` in ``->fault``: the safe layer stops it at the first use of
the freed page handle (``StaleReferenceError``); in C it is ``get_page`` on a free page.

Truncate closes this race in the kernel with the page lock: ``filemap_fault`` returns the
folio locked (``VM_FAULT_LOCKED``), ``finish_fault`` installs the PTE and only then is the
folio unlocked, and ``truncate_inode_folio`` locks the folio before it unmaps and deletes it.
The safe layer's ``->fault`` contract is now that: ``fault`` returns a
:class:`~safemm.page.PageLock` (``page.trylock()``, which pins and locks the page) or a
:class:`~safemm.fs.VmFaultReason`, never a bare ``Page`` (tests/typing/reject/
r13_fault_returns_locked_page.py). The driver takes the page lock under ``area.lock`` while
the slot still holds the page, so no ``page->mapping`` re-check is needed; its reclaim
trylocks the page (and skips it when a fault holds it) before unmapping and freeing.

Both halves are needed, and the explorer shows each: a ``->fault`` that locks the page only
after dropping ``area.lock`` still uses a freed page; a reclaim that does not lock the page
frees it between the fault's lookup and its PTE install, and the PTE left behind maps a
page the slot no longer holds — user space reads old bytes where the next buffer is.
"""

from __future__ import annotations

from collections.abc import Callable

from typing_extensions import override

from safemm import MAP_PRIVATE, PAGE_SIZE, BusError, Kernel, StaleReferenceError
from safemm.demo.drivers import FaultAndUnmapDriver
from safemm.demo.drivers.abi import (
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)
from safemm.demo.drivers.alloc import Area, PageSlot
from safemm.demo.drivers.device import BinderVmOps
from safemm.demo.drivers.fault_unmap import FaultVmOps
from safemm.explore import explore
from safemm.fs import VmFault, VmFaultReason
from safemm.page import PageLock
from safemm.shrinker import LruStatus, LruWalk

from .races import (
    assert_dfs_passes,
    assert_pct_finds_one,
    assert_replays,
    received_and_freed,
    small_kernel,
)

OLD = b"old!" * 3
NEW = b"new!" * 3


class LateLockVmOps(FaultVmOps):
    """Broken: looks the page up under ``area.lock`` but locks it after dropping the lock."""

    @override
    def fault(self, vmf: VmFault[Area]) -> PageLock | VmFaultReason:
        area = vmf.vma.private_data
        with area.lock.lock():
            page = area.slots[vmf.pgoff].page if vmf.pgoff < area.npages else None
        if page is None:
            return VmFaultReason.SIGBUS
        locked = page.trylock()  # the slot may have been reclaimed since the lookup
        return VmFaultReason.NOPAGE if locked is None else locked


class LateLockDriver(FaultAndUnmapDriver):
    """The demo driver with :class:`LateLockVmOps`."""

    @override
    def make_vm_ops(self) -> BinderVmOps:
        return LateLockVmOps(self)


class NoPageLockReclaimDriver(FaultAndUnmapDriver):
    """Broken: reclaim unmaps and frees without taking the page lock (the demo's old
    reclaim), so a fault holding the locked page is not noticed."""

    @override
    def reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        area = slot.area
        mapping = area.mapping
        if mapping is None:
            return self.skip("shrink.no_mapping")
        sguard = area.lock.try_lock()
        if sguard is None:
            return self.skip("shrink.skip_spinlock")
        if not mapping.unmap_mapping_range_trylock(slot.index * PAGE_SIZE, PAGE_SIZE):
            sguard.unlock()
            return self.skip("shrink.skip_unmap_trylock")
        page = slot.require_page()
        slot.page = None
        slot.inserted = False
        walk.isolate(slot)
        sguard.unlock()
        page.free()
        return LruStatus.REMOVED


def _scenario(driver_cls: type[FaultAndUnmapDriver]) -> Callable[[Kernel], None]:
    """The receiver gets a buffer and frees it without touching it (its slot keeps the page,
    on the shrinker's list_lru, and no PTE maps it); then it reads that page — a fault —
    while kswapd shrinks. Afterwards a new buffer lands in the same slot and must read back
    as sent."""

    def scenario(k: Kernel) -> None:
        r, fd, me, addr = received_and_freed(k, driver_cls(), OLD, flags=MAP_PRIVATE, touch=False)

        def read() -> bytes | None:
            try:
                return r.read(addr, len(OLD))
            except BusError:  # the slot was reclaimed first: SIGBUS, as the ABI says
                return None

        got, _ = k.concurrently(read, k.shrink)
        assert got in (OLD, None)
        r.ioctl(fd, SAFEBINDER_SEND, (me, NEW))
        again, _ = parse_recv(r.ioctl(fd, SAFEBINDER_RECV))
        assert again == addr
        seen = r.read(addr, len(NEW))
        if seen != NEW:  # raised by hand: the message is the same under pytest's rewriting
            raise AssertionError(f"read {seen!r} where the new buffer {NEW!r} is")
        r.exit()
        k.check_invariants()

    return scenario


def test_locking_the_page_after_dropping_the_driver_lock_uses_a_freed_page() -> None:
    broken = _scenario(LateLockDriver)
    ex = explore(broken, strategy="pct", schedules=300, seed=0, kernel_factory=small_kernel)
    assert len(ex.failures) == 1, ex.report()
    (f,) = ex.failures
    assert isinstance(f.error, StaleReferenceError)
    assert "used after Page.free()" in str(f.error)
    assert f.preemptions == 1
    assert "spin_unlock safebinder_area.lock  <-- preempted" in f.trace
    assert_replays(broken, f)


def test_reclaim_without_the_page_lock_leaves_a_stale_pte() -> None:
    assert_pct_finds_one(
        _scenario(NoPageLockReclaimDriver),
        AssertionError,
        f"where the new buffer {NEW!r} is",
        f"read {OLD!r}",
    )


def test_demo_driver_passes_every_schedule_within_three_preemptions() -> None:
    ex = assert_dfs_passes(_scenario(FaultAndUnmapDriver), 3)
    assert ex.schedules_run > 100
