"""Strategy 3, fault-and-unmap: Jann Horn's proposal (review thread, 2024-11-12).

One anonymous inode per open file (set as the file's ``f_mapping`` in ``->open``, as DRM and
aio do), so the file's ``address_space`` knows every VMA that maps it — split, moved by
mremap or copied by fork, in any process. The driver takes no mmap lock and no mm reference
at all: user accesses fault pages in through ``vm_ops->fault`` from the area's page slots, and
reclaim removes them with ``unmap_mapping_range`` on the file's mapping — from the shrinker,
which must not sleep, through the trylock variant.

Fork: this strategy does not set VM_DONTCOPY. A child's copy of the mapping is one more VMA in
the same ``i_mmap``: it faults from the same slots and reclaim unmaps it with the parent's, so
copying is safe, and a child that inherits the file can receive on it.
"""

from __future__ import annotations

import errno

from typing_extensions import override

from safemm import PAGE_SIZE
from safemm.fs import AddressSpace, File, VmFault, VmFaultReason
from safemm.page import PageLock
from safemm.shrinker import LruStatus, LruWalk

from .alloc import Area, Buffer, PageSlot
from .device import BinderDriver, BinderVmOps

__all__ = ["FaultAndUnmapDriver", "FaultVmOps"]


class FaultVmOps(BinderVmOps):
    """:class:`BinderVmOps` plus ``->fault``: map the slot's page, or SIGBUS when the slot is
    empty (never filled, or reclaimed).

    The page is returned locked and pinned (``VM_FAULT_LOCKED``), both taken under
    ``area.lock`` while the slot still holds it: reclaim, which locks the page before it
    unmaps and frees it, cannot free it between this lookup and the kernel's PTE install
    (``finish_fault``). Returning the page after dropping ``area.lock`` without its lock was
    the fault-against-reclaim race (tests/concurrency/test_race_fault_reclaim.py).

    Invariant: runs under the faulting task's mmap read lock; takes only ``area.lock`` and
    the page lock (a trylock).
    """

    @override
    def fault(self, vmf: VmFault[Area]) -> PageLock | VmFaultReason:
        area = vmf.vma.private_data
        index = vmf.pgoff
        with area.lock.lock():
            page = area.slots[index].page if index < area.npages else None
            locked = None if page is None else page.trylock()
        if page is None:
            self.stats.paths["fault.sigbus"] += 1
            return VmFaultReason.SIGBUS
        if locked is None:  # another fault is mapping it right now: fault again
            self.stats.paths["fault.page_locked"] += 1
            return VmFaultReason.NOPAGE
        self.stats.pages_faulted += 1
        return locked


class FaultAndUnmapDriver(BinderDriver):
    """Pages reach user space only through faults; reclaim unmaps by file offset.

    Invariant (beyond :class:`BinderDriver`'s): ``area.mapping`` is the file's own address
    space; a PTE maps a slot's page only while the slot holds it, because reclaim unmaps the
    page's file offset before freeing it, holding ``area.lock`` (which ``->fault`` takes to
    look the page up) and the page lock (which ``->fault`` hands to the kernel, held until
    the PTE is installed).
    """

    strategy = "fault-and-unmap"
    records_mm = False
    dontcopy = False
    mixedmap = False

    @override
    def make_vm_ops(self) -> BinderVmOps:
        return FaultVmOps(self)

    @override
    def setup_open(self, file: File[Area], area: Area) -> None:
        # One anonymous inode per open file: its i_mmap will hold exactly this file's VMAs.
        mapping = AddressSpace.new_anon()
        file.set_mapping(mapping)
        area.mapping = mapping

    @override
    def deliver(self, area: Area, buf: Buffer) -> None:
        # Nothing to map: the receiver's first access faults the pages in.
        self.check_mapped_now(area, "recv.unmapped", errno.EFAULT)

    @override
    def reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        area = slot.area
        mapping = area.mapping
        if mapping is None:
            return self.skip("shrink.no_mapping")
        # area.lock keeps ->fault from looking the page up between unmap and free.
        sguard = area.lock.try_lock()
        if sguard is None:
            return self.skip("shrink.skip_spinlock")
        page = slot.require_page()
        # The page lock: a fault that looked the page up earlier holds it until its PTE is
        # in; unmapping now would leave that PTE behind (truncate locks the folio too).
        plock = page.trylock()
        if plock is None:
            sguard.unlock()
            return self.skip("shrink.skip_page_locked")
        # Reclaim cannot sleep: the trylock variant, which gives up if i_mmap_rwsem is busy.
        if not mapping.unmap_mapping_range_trylock(slot.index * PAGE_SIZE, PAGE_SIZE):
            plock.unlock()
            sguard.unlock()
            return self.skip("shrink.skip_unmap_trylock")
        self.stats.zap_requests += 1
        slot.page = None
        slot.inserted = False
        walk.isolate(slot)
        sguard.unlock()
        plock.unlock()
        page.free()
        self.stats.pages_reclaimed += 1
        return LruStatus.REMOVED
