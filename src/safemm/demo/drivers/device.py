"""The binder-style character device every demo strategy shares: the per-open file hooks,
the ioctls, the VMA hooks (:class:`BinderVmOps`), the shrinker shell (:class:`BinderShrinker`)
and the helpers the strategies build on. The area, its allocator, buffers and page slots are
in :mod:`safemm.demo.drivers.alloc`.

A strategy subclass of the abstract :class:`BinderDriver` decides only how a buffer's pages
reach the receiver's page tables and how reclaim takes them away again:

- :meth:`BinderDriver.deliver` — RECV, in the receiver: make the buffer readable (abstract);
- :meth:`BinderDriver.reclaim` — the shrinker's list_lru isolate callback for one slot
  (abstract);
- :meth:`BinderDriver.install_page` — SEND, in the sender: make slot ``index`` hold a page
  (by default: take it off the list_lru or allocate it, and map nothing);
- :meth:`BinderDriver.check_target` — SEND: refuse a target that cannot receive (by
  default: one that no VMA maps now);
- :meth:`BinderDriver.check_caller` — RECV/FREE: refuse a caller (by default: nobody).

Lock order (lockdep-checked by the model): ``procs_lock`` (alone) — ``area.mutex`` → mmap
lock / per-VMA lock → ``area.lock`` → the list_lru lock. VMA hooks (``->mmap``, ``->close``,
``->mremap``, ``->fault``) run under the mmap lock and so take only ``area.lock``. The
shrinker runs in reclaim, where the allocating task may hold any of these, so it takes every
lock with a trylock and skips the page when one fails. Pages are never allocated with a lock
held: a GFP_KERNEL allocation may enter direct reclaim and run the shrinker in this task.

Only the safe layer is used here (and ``safemm``'s top-level errors and constants).
"""

from __future__ import annotations

import abc
import errno
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import ClassVar

from typing_extensions import override

from safemm import PAGE_SIZE, KernelError
from safemm.fs import File, FileOperations, VmOperations
from safemm.mm import MmapReadGuard, MmWithUser, VmaReadGuard
from safemm.page import Page
from safemm.shrinker import SHRINK_EMPTY, ListLru, LruStatus, LruWalk, ShrinkControl, Shrinker
from safemm.sync import Mutex
from safemm.task import current
from safemm.virt import VmAreaMixedMapRef, VmAreaNew, VmAreaOwnedRef, VmAreaRef

from .abi import (
    MAX_AREA,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_addr,
    parse_send,
)
from .alloc import GFP_BUFFER, Area, Buffer, PageSlot, RangeAllocator

__all__ = [
    "BinderDriver",
    "BinderShrinker",
    "BinderVmOps",
    "DriverStats",
]


@dataclass(slots=True)
class DriverStats:
    """What one driver instance did, for the report (the model's counters say what the
    kernel did). ``paths`` counts every failure or fallback path taken, by name."""

    buffers_queued: int = 0
    pages_allocated: int = 0
    pages_reused: int = 0
    pages_inserted: int = 0
    pages_faulted: int = 0
    zap_requests: int = 0
    pages_reclaimed: int = 0
    #: Pages a freed buffer made reclaimable (the flip back is ``pages_reused``).
    pages_marked_unused: int = 0
    shrinker_skips: int = 0
    mmap_read_lock: int = 0
    mmap_read_trylock: int = 0
    mmap_read_trylock_failed: int = 0
    vma_lock_hits: int = 0
    vma_lock_fallbacks: int = 0
    mm_refs_taken: int = 0
    paths: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, int]:
        """Every integer counter, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "paths"}


class BinderVmOps(VmOperations[Area]):
    """The ``vm_operations`` of an area's VMAs; they also tag a VMA as this driver's, which
    is what :meth:`VmOperations.check_vma` tests.

    Invariant: every hook runs under the mmap lock of the VMA's mm, so it takes only
    ``area.lock`` (never ``area.mutex``, which is held around mmap-lock acquisitions).
    """

    def __init__(self, driver: BinderDriver) -> None:
        super().__init__(Area, f"{driver.name}_vm_ops")
        self.stats = driver.stats

    @override
    def open(self, vma: VmAreaOwnedRef[Area]) -> None:
        # A new VMA maps the file: a split piece, an mremap copy or a fork copy.
        area = vma.private_data
        with area.lock.lock():
            area.vma_count += 1

    @override
    def close(self, vma: VmAreaOwnedRef[Area]) -> None:
        # One VMA piece is going away (munmap, exit, the old range of an mremap). If it sat
        # where the area's pages are inserted (base + pgoff), its PTEs are gone with it: the
        # slots it covered are no longer inserted. A piece elsewhere (the old range of an
        # mremap that moved base) says nothing about where the area's PTEs are now.
        area = vma.private_data
        first = vma.pgoff
        last = min(first + (vma.end - vma.start) // PAGE_SIZE, area.npages)
        with area.lock.lock():
            area.vma_count -= 1
            if vma.start == area.base + first * PAGE_SIZE:
                for slot in area.slots[first:last]:
                    slot.inserted = False

    @override
    def mremap(self, vma: VmAreaOwnedRef[Area]) -> None:
        # mremap moved (part of) the mapping; the PTEs moved with it. If the moved VMA maps
        # file offset 0, the area's user addresses move too (as aio_ring_mremap does), so
        # RECV keeps returning addresses inside the mapping.
        # Only the opener's own moves count: a fork child's copy (fault-and-unmap does not
        # set VM_DONTCOPY) carries the same private data, and the child moving it must not
        # move the parent's buffers (the aio-after-fork class of bug, H7).
        area = vma.private_data
        if current().pid != area.owner_pid:
            self.stats.paths["mremap.other_process"] += 1
        elif vma.pgoff == 0:
            with area.lock.lock():
                area.base = vma.start
            self.stats.paths["mremap.base_moved"] += 1
        else:
            self.stats.paths["mremap.partial"] += 1


class BinderShrinker(Shrinker):
    """Gives reclaimable pages back: walks the driver's list_lru, oldest first, and lets the
    strategy's isolate callback (:meth:`BinderDriver.reclaim`) unmap and free each page."""

    def __init__(self, driver: BinderDriver) -> None:
        super().__init__(f"{driver.name}-pages")
        self._driver = driver

    @override
    def count_objects(self, sc: ShrinkControl) -> int:
        n = self._driver.lru.count()
        return n if n else SHRINK_EMPTY

    @override
    def scan_objects(self, sc: ShrinkControl) -> int:
        freed = self._driver.lru.walk(self._driver.reclaim, sc.nr_to_scan)
        sc.nr_scanned = sc.nr_to_scan
        return freed


class BinderDriver(FileOperations[Area], abc.ABC):
    """A binder-style character device (``/dev/safebinder``): one area per open file,
    buffers sent into a target's area, received, freed to a list_lru, reclaimed by a shrinker.

    Invariant: ``procs_lock`` protects ``_procs`` (target id → area of an open file); the
    list_lru holds exactly the slots with a page that no buffer owns.

    Class attributes set by each strategy: ``strategy`` (its name), ``records_mm`` (``->open``
    keeps the opener's mm with ``mmgrab``, as binder does), ``dontcopy`` and ``mixedmap`` (the
    flags ``->mmap`` sets), ``uses_shrinker`` (register the list_lru shrinker).
    """

    strategy: ClassVar[str] = ""
    records_mm: ClassVar[bool] = True
    uses_shrinker: ClassVar[bool] = True
    dontcopy: ClassVar[bool] = True
    mixedmap: ClassVar[bool] = True

    def __init__(self, name: str = "safebinder") -> None:
        super().__init__(Area, name)
        self.stats = DriverStats()
        self.vm_ops = self.make_vm_ops()
        self._procs: dict[int, Area] = {}
        self._procs_lock = Mutex("safebinder.procs_lock")
        self._next_id = 1
        self._lru: ListLru[PageSlot] | None = None
        self._shrinker = BinderShrinker(self)

    def make_vm_ops(self) -> BinderVmOps:
        """The strategy's vm_ops table (built once per driver)."""
        return BinderVmOps(self)

    @property
    def lru(self) -> ListLru[PageSlot]:
        """The list_lru of reclaimable slots (made in ``probe``)."""
        if self._lru is None:
            raise RuntimeError(f"{self.name}: used before probe")
        return self._lru

    # ------------------------------------------------------------------ file hooks

    @override
    def probe(self) -> None:
        self._lru = ListLru(f"{self.name}_freelist")
        if self.uses_shrinker:
            self._shrinker.register()

    @override
    def open(self, file: File[Area]) -> None:
        with self._procs_lock.lock():
            area = Area(self._next_id)
            self._next_id += 1
        area.owner_pid = current().pid
        if self.records_mm:
            mm = current().mm()
            if mm is None:
                raise KernelError(errno.ESRCH, "open from a task without an mm")
            # Like binder: an mm_count reference (mmgrab), not mm_users, so an open file does
            # not keep the address space alive; users must mmget_not_zero() first.
            area.mm = mm.mmgrab()
        self.setup_open(file, area)
        file.private_data = area
        with self._procs_lock.lock():
            self._procs[area.id] = area

    def setup_open(self, file: File[Area], area: Area) -> None:
        """Strategy hook in ``->open`` (the only place ``File.set_mapping`` is allowed)."""

    @override
    def release(self, file: File[Area]) -> None:
        area = _area(file)
        with self._procs_lock.lock():
            self._procs.pop(area.id, None)
        # Every VMA held a file reference, so none is left: no PTE maps our pages any more
        # and each page can be freed at once.
        with area.mutex.lock():
            area.released = True
            area.queue.clear()
            area.delivered.clear()
            with area.lock.lock():
                for slot in area.slots:
                    page = slot.page
                    if page is not None:
                        self.lru.delete(slot)
                        slot.page = None
                        slot.inserted = False
                        page.free()
        if area.mm is not None:
            area.mm.mmdrop()
            area.mm = None

    @override
    def mmap(self, file: File[Area], vma: VmAreaNew) -> None:
        area = _area(file)
        with area.lock.lock():
            if area.mmapped:
                raise KernelError(errno.EBUSY, f"area {area.id} is already mapped")
        if area.mm is not None and not area.mm.is_same_mm(vma.mm):
            raise KernelError(errno.EINVAL, "mmap from another process than the opener")
        if vma.pgoff != 0:
            raise KernelError(errno.EINVAL, "safebinder maps from offset 0 only")
        try:
            # Binder's rule: pages are written by the kernel only. Clearing VM_MAYWRITE also
            # makes a later mprotect(PROT_WRITE) fail with EACCES; VM_MAYEXEC likewise
            # PROT_EXEC (a VMA with inserted pages must gain neither: access-after-insert,
            # found by safemm fuzz).
            vma.try_clear_maywrite()
            vma.try_clear_mayexec()
        except KernelError:
            raise KernelError(
                errno.EPERM, "safebinder mappings must be neither writable nor executable"
            ) from None
        if self.dontcopy:
            vma.set_dontcopy()
        if self.mixedmap:
            vma.set_mixedmap()
        npages = min(vma.end - vma.start, MAX_AREA) // PAGE_SIZE
        vma.set_vm_ops(self.vm_ops, area)
        # ->mmap runs under the mmap write lock, so area.mutex (taken before the mmap lock
        # elsewhere) is out of reach: publish the allocator and slots under area.lock,
        # before `mmapped` says they exist; nobody else has touched them yet.
        with area.lock.lock():
            area.alloc = RangeAllocator(npages)
            area.slots = [PageSlot(area, i) for i in range(npages)]
            area.npages = npages
            area.base = vma.start
            area.mmapped = True
            area.vma_count = 1

    @override
    def ioctl(self, file: File[Area], cmd: int, arg: object) -> object:
        area = _area(file)
        if cmd == SAFEBINDER_GET_ID:
            return area.id
        if cmd == SAFEBINDER_SEND:
            target, data = parse_send(arg)
            self._send(target, data)
            return None
        if cmd == SAFEBINDER_RECV:
            return self._recv(area)
        if cmd == SAFEBINDER_FREE:
            self._free(area, parse_addr(arg))
            return None
        raise KernelError(errno.ENOTTY, f"unknown ioctl {cmd:#x}")

    # ------------------------------------------------------------------ ioctls

    def _send(self, target_id: int, data: bytes) -> None:
        with self._procs_lock.lock():
            area = self._procs.get(target_id)
        if area is None:
            self.stats.paths["send.no_target"] += 1
            raise KernelError(errno.ESRCH, f"no target {target_id}")
        self.check_target(area)
        npages = -(-len(data) // PAGE_SIZE)
        with area.mutex.lock():
            if area.released:
                raise KernelError(errno.ESRCH, f"target {target_id} is gone")
            first = area.alloc.alloc(npages)
        if first is None:
            self.stats.paths["send.no_space"] += 1
            raise KernelError(errno.ENOSPC, f"no {npages} free pages in area {area.id}")
        buf = Buffer(first, npages, len(data))
        try:
            for index in range(first, first + npages):
                self.install_page(area, index)
        except KernelError:
            with area.mutex.lock():
                self.release_buffer(area, buf)
            raise
        # The buffer owns its slots now: no one else writes these pages, and reclaim cannot
        # take them (they are off the list_lru), so no lock is needed to fill them.
        for i in range(npages):
            self.fill_slot(area, first + i, data[i * PAGE_SIZE : (i + 1) * PAGE_SIZE])
        with area.mutex.lock():
            area.queue.append(buf)
        self.stats.buffers_queued += 1

    def _recv(self, area: Area) -> tuple[int, int]:
        self.check_caller(area)
        with area.mutex.lock():
            if not area.queue:
                raise KernelError(errno.EAGAIN, "no buffer queued")
            buf = area.queue.popleft()
            try:
                self.deliver(area, buf)
            except KernelError as e:
                self.release_buffer(area, buf)
                raise KernelError(errno.EFAULT, f"buffer dropped: {e.message}") from e
            area.delivered[buf.first] = buf
            with area.lock.lock():
                addr = area.base + buf.first * PAGE_SIZE
        return addr, buf.length

    def _free(self, area: Area, addr: int) -> None:
        self.check_caller(area)
        with area.mutex.lock():
            with area.lock.lock():
                offset = addr - area.base
            buf = None
            if offset >= 0 and offset % PAGE_SIZE == 0:
                buf = area.delivered.pop(offset // PAGE_SIZE, None)
            if buf is None:
                self.stats.paths["free.bad_addr"] += 1
                raise KernelError(errno.EINVAL, f"{addr:#x} is not a received buffer")
            self.release_buffer(area, buf)

    def release_buffer(self, area: Area, buf: Buffer) -> None:
        """Give a buffer's range back; its pages become reclaimable, not freed (binder keeps
        them for reuse until the shrinker wants them). Called with ``area.mutex`` held."""
        area.alloc.free(buf.first, buf.npages)
        self.retire_slots(area, area.slots[buf.first : buf.first + buf.npages])

    def retire_slots(self, area: Area, slots: list[PageSlot]) -> None:
        """A freed buffer's slots: their pages become reclaimable. By default they go on the
        list_lru, under ``area.lock``."""
        with area.lock.lock():
            for slot in slots:
                if slot.page is not None:
                    self.lru.add(slot)
                    self.stats.pages_marked_unused += 1

    def fill_slot(self, area: Area, index: int, chunk: bytes) -> None:
        """SEND: write ``chunk`` into the page of slot ``index``, which the sender's buffer
        owns (reclaim cannot take it: it is off the list_lru). By default the slot's
        ``Page``."""
        area.slots[index].require_page().write(0, chunk)

    # ------------------------------------------------------------------ helpers for strategies

    def take_or_alloc(self, area: Area, index: int) -> PageSlot:
        """Make slot ``index`` (in a range the caller just reserved) hold a page: take a
        reclaimable page off the list_lru if reclaim has not freed it yet, else allocate one.

        The allocation runs with no lock held: it may enter direct reclaim, which runs this
        driver's shrinker in the current task.
        """
        slot = area.slots[index]
        with area.lock.lock():
            if slot.page is not None:
                self.lru.delete(slot)
                self.stats.pages_reused += 1
                return slot
        try:
            page = Page.alloc_page(GFP_BUFFER)
        except KernelError:
            self.stats.paths["send.alloc_failed"] += 1
            raise
        self.stats.pages_allocated += 1
        with area.lock.lock():
            # Nobody else fills a slot of a range this task reserved.
            slot.page = page
            slot.inserted = False
        return slot

    def insert_pages(self, mm: MmWithUser, area: Area, slots: list[PageSlot]) -> None:
        """``vm_insert_page`` each slot's page at ``area.base + index * PAGE_SIZE`` in ``mm``,
        under the per-VMA lock when ``lock_vma_under_rcu`` gets it, else the mmap read lock.

        Each VMA is checked to be this driver's, for this area, mapping the page's file
        offset at that address (``check_vma`` plus the offset check): a VMA that replaced
        ours, or one mremap moved, is refused with ESRCH. The caller holds ``area.mutex``, so
        the shrinker cannot zap these slots meanwhile.
        """
        with area.lock.lock():
            base = area.base
        guard: VmaReadGuard | MmapReadGuard | None = None
        mixed: VmAreaMixedMapRef | None = None
        try:
            for slot in slots:
                addr = base + slot.index * PAGE_SIZE
                if mixed is None or not mixed.start <= addr < mixed.end:
                    if guard is not None:
                        guard.unlock()
                        guard = None
                    guard, vma = self._lock_vma(mm, addr)
                    mixed = self.own_vma(vma, area, addr, slot.index)
                try:
                    mixed.vm_insert_page(addr, slot.require_page())
                except KernelError as e:
                    if e.errno != errno.EBUSY:
                        self.stats.paths["insert.failed"] += 1
                        raise
                    # A PTE is already there, in our VMA at this page's offset: one we
                    # inserted for an older page of this slot, which mremap carried away and
                    # back after ->close forgot it. No buffer owns the slot but ours, so that
                    # PTE maps nothing anyone may read: zap it and insert again (C binder
                    # looks the page up with get_user_pages_remote instead).
                    self.stats.paths["insert.stale_pte"] += 1
                    mixed.zap_page_range_single(addr, PAGE_SIZE)
                    self.stats.zap_requests += 1
                    mixed.vm_insert_page(addr, slot.require_page())
                self.stats.pages_inserted += 1
                with area.lock.lock():
                    slot.inserted = True
        finally:
            if guard is not None:
                guard.unlock()

    def _lock_vma(
        self, mm: MmWithUser, addr: int
    ) -> tuple[VmaReadGuard | MmapReadGuard, VmAreaRef | None]:
        """The VMA at ``addr``, read-locked: the per-VMA lock if it can be had, else the mmap
        read lock (``binder_page_insert``)."""
        vguard = mm.lock_vma_under_rcu(addr)
        if vguard is not None:
            self.stats.vma_lock_hits += 1
            return vguard, vguard.vma
        self.stats.vma_lock_fallbacks += 1
        self.stats.paths["insert.vma_lock_fallback"] += 1
        self.stats.mmap_read_lock += 1
        mguard = mm.mmap_read_lock()
        return mguard, mguard.vma_lookup(addr)

    def own_vma(
        self, vma: VmAreaRef | None, area: Area, addr: int, index: int
    ) -> VmAreaMixedMapRef:
        """``vma`` as a VMA of ``area`` mapping page ``index`` at ``addr``, or ESRCH."""
        if vma is None:
            self.stats.paths["insert.no_vma"] += 1
            raise KernelError(errno.ESRCH, f"no VMA at {addr:#x}")
        mine = self.vm_ops.check_vma(vma, area)
        if mine is None:
            # Another VMA sits where the area was (munmap + mmap): Jann Horn's H3.
            self.stats.paths["insert.foreign_vma"] += 1
            raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not this area's")
        if mine.pgoff + (addr - mine.start) // PAGE_SIZE != index:
            # Our VMA, but mremap moved another part of the file here.
            self.stats.paths["insert.moved_vma"] += 1
            raise KernelError(errno.ESRCH, f"{addr:#x} no longer maps page {index}")
        mixed = mine.as_mixedmap_vma()
        if mixed is None:
            raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not VM_MIXEDMAP")
        return mixed

    def check_owner(self, area: Area) -> MmWithUser:
        """The caller's mm, which must be the one that opened (and mapped) the area."""
        mm = current().mm()
        if mm is None or area.mm is None or not area.mm.is_same_mm(mm):
            self.stats.paths["recv.not_owner"] += 1
            raise KernelError(errno.EPERM, f"area {area.id} belongs to another process")
        return mm

    # ------------------------------------------------------------------ reclaim helpers

    def skip(self, path: str) -> LruStatus:
        """Leave the page on the list_lru for a later pass (``LRU_SKIP``)."""
        self.stats.shrinker_skips += 1
        self.stats.paths[path] += 1
        return LruStatus.SKIP

    def free_reclaimable(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        """Reclaim a page no PTE of ours maps: only ``area.lock`` is needed (a trylock: the
        list's spinlock is held and the allocating task may hold ``area.lock``)."""
        area = slot.area
        sguard = area.lock.try_lock()
        if sguard is None:
            return self.skip("shrink.skip_spinlock")
        if slot.inserted:  # inserted since the caller looked: take the long way next time
            sguard.unlock()
            return self.skip("shrink.raced")
        page = slot.require_page()
        slot.page = None
        walk.isolate(slot)
        sguard.unlock()
        page.free()
        self.stats.pages_reclaimed += 1
        return LruStatus.REMOVED

    def zap_reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        """Reclaim by zapping the PTE ourselves (``binder_alloc_free_page``): trylock, in turn,
        an mm reference, ``area.mutex``, the mmap read lock and ``area.lock``; skip the page
        when any fails; look the VMA up again and check it is ours before zapping."""
        area = slot.area
        # A peek without area.lock: decided again under it below.
        if not slot.inserted:
            return self.free_reclaimable(slot, walk)
        if area.mm is None:
            return self.skip("shrink.skip_mm")
        user = area.mm.mmget_not_zero()
        if user is None:  # the process is exiting; ->release will free the page
            return self.skip("shrink.skip_mm")
        # Released with mmput_async at the end of the block: if this is the last reference,
        # __mmput (which sleeps and calls ->close) must not run here, inside reclaim.
        with user.into_mmput_async() as mm:
            self.stats.mm_refs_taken += 1
            # area.mutex serialises zap against insert; the allocating task may hold it.
            mguard = area.mutex.try_lock()
            if mguard is None:
                return self.skip("shrink.skip_mutex")
            self.stats.mmap_read_trylock += 1
            rguard = mm.mmap_read_trylock()  # the allocating task may hold the mmap lock
            if rguard is None:
                self.stats.mmap_read_trylock_failed += 1
                mguard.unlock()
                return self.skip("shrink.skip_mmap_lock")
            sguard = area.lock.try_lock()  # wrong order for a blocking lock (list lock → it)
            if sguard is None:
                rguard.unlock()
                mguard.unlock()
                return self.skip("shrink.skip_spinlock")
            page = slot.require_page()
            inserted = slot.inserted
            addr = area.base + slot.index * PAGE_SIZE
            # The slot empties before the PTE goes; a re-insert needs area.mutex, held here.
            slot.page = None
            slot.inserted = False
            walk.isolate(slot)
            sguard.unlock()
            walk.unlock()  # zap_page_range_single may sleep: leave the list's spinlock first
            if inserted:
                vma = rguard.vma_lookup(addr)
                mine = None if vma is None else self.vm_ops.check_vma(vma, area)
                if (
                    mine is not None
                    and mine.pgoff + (addr - mine.start) // PAGE_SIZE == slot.index
                ):
                    mine.zap_page_range_single(addr, PAGE_SIZE)
                    self.stats.zap_requests += 1
                else:
                    # Unmapped, replaced or moved: no PTE of ours at addr (a moved one holds
                    # its own page reference, so freeing ours is still safe).
                    self.stats.paths["shrink.vma_gone"] += 1
            rguard.unlock()
            mguard.unlock()
        page.free()
        self.stats.pages_reclaimed += 1
        walk.relock()
        return LruStatus.REMOVED_RETRY

    # ------------------------------------------------------------------ strategy hooks

    def check_target(self, area: Area) -> None:
        """SEND: refuse a target that cannot receive (ESRCH). By default: one that no VMA, in
        any mm, maps now."""
        self.check_mapped_now(area, "send.unmapped", errno.ESRCH)

    def check_mapped_now(self, area: Area, path: str, err: int) -> None:
        """Refuse with ``err`` unless some VMA (in any mm) maps the area now: the check of the
        strategies that keep no mm to ask."""
        with area.lock.lock():
            live = area.vma_count
        if not live:
            self.stats.paths[path] += 1
            raise KernelError(err, f"area {area.id} is no longer mapped")

    def check_caller(self, area: Area) -> None:
        """RECV/FREE: refuse a caller that may not use the area (EPERM). By default: none."""

    def install_page(self, area: Area, index: int) -> None:
        """SEND: make slot ``index`` of the reserved range hold a page (and map it). By
        default: take the page off the list_lru or allocate it (:meth:`take_or_alloc`) and
        map nothing, for strategies that map at RECV or at fault time."""
        self.take_or_alloc(area, index)

    @abc.abstractmethod
    def deliver(self, area: Area, buf: Buffer) -> None:
        """RECV, with ``area.mutex`` held: make ``buf`` readable (KernelError drops it)."""

    @abc.abstractmethod
    def reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        """The list_lru isolate callback: runs with the list's spinlock held."""


def _area(file: File[Area]) -> Area:
    area = file.private_data
    if area is None:
        raise KernelError(errno.EBADFD, "file has no area")
    return area
