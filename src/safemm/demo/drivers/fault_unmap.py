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
from safemm.page import Page
from safemm.shrinker import LruStatus, LruWalk

from .common import Area, BinderDriver, BinderVmOps, Buffer, PageSlot

__all__ = ["FaultAndUnmapDriver", "FaultVmOps"]


class FaultVmOps(BinderVmOps):
    """:class:`BinderVmOps` plus ``->fault``: map the slot's page (the kernel takes its own
    reference), or SIGBUS when the slot is empty (never filled, or reclaimed).

    Invariant: runs under the faulting task's mmap read lock; takes only ``area.lock``.
    """

    @override
    def fault(self, vmf: VmFault[Area]) -> Page | VmFaultReason:
        area = vmf.vma.private_data
        index = vmf.pgoff
        with area.lock.lock():
            page = area.slots[index].page if index < area.npages else None
        if page is None:
            self.stats.paths["fault.sigbus"] += 1
            return VmFaultReason.SIGBUS
        self.stats.pages_faulted += 1
        return page


class FaultAndUnmapDriver(BinderDriver):
    """Pages reach user space only through faults; reclaim unmaps by file offset.

    Invariant (beyond :class:`BinderDriver`'s): ``area.mapping`` is the file's own address
    space; a PTE maps a slot's page only while the slot holds it, because reclaim unmaps the
    page's file offset (under ``area.lock``, which ``->fault`` takes too) before freeing it.
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
    def check_target(self, area: Area) -> None:
        self.check_mapped_now(area, "send.unmapped", errno.ESRCH)

    @override
    def install_page(self, area: Area, index: int) -> None:
        self.take_or_alloc(area, index)

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
        # area.lock keeps ->fault from mapping the page again between unmap and free.
        sguard = area.lock.try_lock()
        if sguard is None:
            return self.skip("shrink.skip_spinlock")
        # Reclaim cannot sleep: the trylock variant, which gives up if i_mmap_rwsem is busy.
        if not mapping.unmap_mapping_range_trylock(slot.index * PAGE_SIZE, PAGE_SIZE):
            sguard.unlock()
            return self.skip("shrink.skip_unmap_trylock")
        self.stats.zap_requests += 1
        page = slot.require_page()
        slot.page = None
        slot.inserted = False
        walk.isolate(slot)
        sguard.unlock()
        page.free()
        self.stats.pages_reclaimed += 1
        return LruStatus.REMOVED
