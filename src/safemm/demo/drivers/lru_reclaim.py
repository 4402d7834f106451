"""Strategy 4, lru-reclaim: the design the review thread ends its list with (Jann Horn) —
binder pages as clean file pages on the kernel's LRU lists, reclaimed by core reclaim.

Each open file gets its own anonymous inode whose ``address_space`` carries this driver's
``address_space_operations`` (set as the file's mapping in ``->open``, as aio does). A
buffer's pages are folios in that inode's page cache, each pinned by the driver in its slot
(the "page pointer array", filled on demand in SEND). User accesses fault them in from the
page cache (``->fault`` is ``filemap_fault`` in outline: ``filemap_lock_folio``). The driver
takes no mmap lock, no mm reference, zaps nothing and unmaps nothing: it only flips a flag —
in use when a SEND takes a slot, unused when the buffer is freed — and answers core reclaim,
which finds the folios on the LRU, unmaps them from every process through the reverse map and
then asks ``release_folio`` whether the folio may go. Yes means: the driver drops its pin,
and reclaim frees the folio if nobody else holds it.

The flag is the flip-flop the review says "can flip-flop very quickly": it is one store under
``area.lock``, and ``release_folio`` reads it under the same lock (a trylock: reclaim may run
in a task that holds anything; busy means "not now").
"""

from __future__ import annotations

import errno

from typing_extensions import override

from safemm import KernelError
from safemm.folio import CachedFolio, Folio, FolioGuard
from safemm.fs import AddressSpaceOperations, File, VmFault, VmFaultReason
from safemm.page import Gfp
from safemm.shrinker import LruStatus, LruWalk

from .alloc import GFP_BUFFER, Area, Buffer, PageSlot
from .device import BinderDriver, BinderVmOps

__all__ = ["BinderAddressSpaceOps", "CacheFaultVmOps", "LruReclaimDriver"]


class BinderAddressSpaceOps(AddressSpaceOperations[Area]):
    """``release_folio``: a folio may go when no buffer uses its slot; the driver's pin goes
    with the yes.

    Invariant: runs with the folio locked by reclaim, after reclaim unmapped it; takes only
    ``area.lock``, with a trylock, and never sleeps (so it is right for any ``gfp``).
    """

    def __init__(self, driver: LruReclaimDriver) -> None:
        super().__init__(Area, f"{driver.name}_aops")
        self.stats = driver.stats

    @override
    def release_folio(self, folio: CachedFolio[Area], gfp: Gfp) -> bool:
        area = folio.private_data
        index = folio.index
        guard = area.lock.try_lock()
        if guard is None:
            self.stats.paths["release.skip_spinlock"] += 1
            return False
        with guard:
            slot = area.slots[index] if index < area.npages else None
            if slot is not None and slot.in_use:
                self.stats.paths["release.in_use"] += 1
                return False
            pin = None
            if slot is not None and slot.folio is not None and folio.is_folio(slot.folio):
                pin, slot.folio = slot.folio, None
        if pin is None:
            # Not pinned by us: a SEND is between finding this folio and pinning it (its
            # reference keeps the folio), or a reclaim that failed after our yes.
            self.stats.paths["release.unpinned"] += 1
        else:
            pin.put()  # the cache and reclaim still hold references: this never frees
            self.stats.paths["release.pin_dropped"] += 1
        return True


class CacheFaultVmOps(BinderVmOps):
    """:class:`BinderVmOps` plus ``->fault``: the folio in the file's page cache at the
    faulting offset, locked (``filemap_lock_folio``, ``VM_FAULT_LOCKED``), or SIGBUS when
    there is none (never filled, or reclaimed).

    Invariant: runs under the faulting task's mmap read lock; takes the folio lock only
    (sleeping: the fault path may sleep), no driver lock.
    """

    @override
    def fault(self, vmf: VmFault[Area]) -> FolioGuard | VmFaultReason:
        cache = vmf.vma.private_data.cache
        guard = None if cache is None else cache.filemap_lock_folio(vmf.pgoff)
        if guard is not None:
            self.stats.pages_faulted += 1
            return guard
        self.stats.paths["fault.sigbus"] += 1
        return VmFaultReason.SIGBUS


class LruReclaimDriver(BinderDriver):
    """Pages live in a per-open page cache; core reclaim frees them through ``release_folio``.

    Invariant (beyond :class:`BinderDriver`'s): ``area.cache`` is the file's own mapping
    with :class:`BinderAddressSpaceOps`; a slot's ``folio`` is a pin on the folio cached at
    its index; a slot ``in_use`` (its buffer is queued or delivered) keeps its folio pinned
    and cached, because ``release_folio`` refuses it under ``area.lock``, where the flag
    changes. The list_lru and the shrinker are not used.
    """

    strategy = "lru-reclaim"
    records_mm = False
    dontcopy = False
    mixedmap = False
    uses_shrinker = False

    def __init__(self, name: str = "safebinder") -> None:
        super().__init__(name)
        self.aops = BinderAddressSpaceOps(self)

    @override
    def make_vm_ops(self) -> BinderVmOps:
        return CacheFaultVmOps(self)

    @override
    def setup_open(self, file: File[Area], area: Area) -> None:
        # One anonymous inode per open file, with our a_ops: its page cache holds the area's
        # pages, its i_mmap every VMA that maps them.
        cache = self.aops.new_mapping(area)
        file.set_mapping(cache.address_space)
        area.cache = cache
        area.mapping = cache.address_space

    @override
    def release(self, file: File[Area]) -> None:
        super().release(file)
        area = file.private_data
        if area is None or area.cache is None:
            return
        with area.lock.lock():
            pins = [s.folio for s in area.slots if s.folio is not None]
            for slot in area.slots:
                slot.folio = None
                slot.in_use = False
        for pin in pins:
            pin.put()
        # No VMA maps the file any more: empty its page cache (iput would, at eviction).
        area.cache.truncate_inode_pages()

    @override
    def install_page(self, area: Area, index: int) -> None:
        slot = area.slots[index]
        with area.lock.lock():
            if slot.folio is not None:
                # The flip-flop: the slot's folio is still pinned, so still cached. One store
                # under area.lock, which release_folio reads under the same lock.
                slot.in_use = True
                self.stats.pages_reused += 1
                return
        folio = self._find_or_add(area, index)
        with area.lock.lock():
            # Nobody else fills a slot of a range this task reserved; release_folio saw no
            # pin and our reference keeps the folio in the cache meanwhile.
            slot.folio = folio
            slot.in_use = True

    def _find_or_add(self, area: Area, index: int) -> Folio:
        """The folio cached at ``index`` (a reclaim that said yes but could not free it left
        it there), referenced, or a new one added there. Called with no lock held: the
        allocation may enter direct reclaim, which calls our ``release_folio``."""
        cache = area.cache
        if cache is None:
            raise KernelError(errno.ESRCH, f"area {area.id} has no page cache")
        while True:
            folio = cache.filemap_get_folio(index)
            if folio is not None:
                self.stats.pages_reused += 1
                self.stats.paths["send.found_in_cache"] += 1
                return folio
            try:
                folio = Folio.alloc(GFP_BUFFER)
            except KernelError:
                self.stats.paths["send.alloc_failed"] += 1
                raise
            try:
                guard = cache.filemap_add_folio(folio, index, GFP_BUFFER)
            except KernelError as e:
                folio.put()
                if e.errno != errno.EEXIST:
                    raise
                self.stats.paths["send.add_raced"] += 1
                continue
            guard.unlock()
            self.stats.pages_allocated += 1
            return folio

    @override
    def fill_slot(self, area: Area, index: int, chunk: bytes) -> None:
        area.slots[index].require_folio().write(0, chunk)

    @override
    def retire_slots(self, area: Area, slots: list[PageSlot]) -> None:
        # The flip back: the folios stay pinned and cached, mapped wherever they were; core
        # reclaim may take them from now on.
        with area.lock.lock():
            for slot in slots:
                if slot.in_use:
                    slot.in_use = False
                    self.stats.pages_marked_unused += 1

    @override
    def deliver(self, area: Area, buf: Buffer) -> None:
        # Nothing to map: the receiver's first access faults the folios in.
        self.check_mapped_now(area, "recv.unmapped", errno.EFAULT)

    @override
    def reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        # retire_slots never puts a slot on the list_lru and no shrinker is registered:
        # core reclaim takes these pages, through release_folio.
        return self.skip("shrink.not_on_list_lru")
