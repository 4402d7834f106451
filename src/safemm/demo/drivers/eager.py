"""Strategy 1, eager-insert: C binder, and Rust binder today.

The sender allocates each page of a buffer and inserts it into the receiver's VMA at once:
``mmget_not_zero`` on the receiver's mm, ``lock_vma_under_rcu`` with a fallback to
``mmap_read_lock`` + ``vma_lookup``, a check that the VMA is this area's (``check_vma`` and the
file offset), then ``vm_insert_page``. The shrinker trylocks its way to the VMA and zaps the
page (:meth:`~safemm.demo.drivers.device.BinderDriver.zap_reclaim`).
"""

from __future__ import annotations

import errno

from typing_extensions import override

from safemm import KernelError
from safemm.shrinker import LruStatus, LruWalk

from .alloc import Area, Buffer, PageSlot
from .device import BinderDriver

__all__ = ["EagerInsertDriver"]


class EagerInsertDriver(BinderDriver):
    """Eager insertion from the sending task.

    Invariant (beyond :class:`BinderDriver`'s): every page of a queued or delivered buffer was
    inserted at ``area.base + index * PAGE_SIZE`` by the sender, under ``area.mutex`` and the
    receiver's VMA or mmap read lock, with an ``mm_users`` reference taken for the occasion.
    """

    strategy = "eager-insert"

    @override
    def check_target(self, area: Area) -> None:
        # Only a target that was never mapped is refused here: insert_pages asks the
        # receiver's mm whether the mapping is still there, page by page.
        with area.lock.lock():
            mapped = area.mmapped
        if not mapped:
            self.stats.paths["send.unmapped"] += 1
            raise KernelError(errno.ESRCH, f"area {area.id} is not mapped")

    @override
    def install_page(self, area: Area, index: int) -> None:
        slot = self.take_or_alloc(area, index)
        with area.lock.lock():
            if slot.inserted:  # a reused page that is still mapped: nothing to do
                return
        mm_ref = area.mm
        if mm_ref is None:
            raise KernelError(errno.ESRCH, f"area {area.id} has no mm")
        # area.mutex serialises this insert against the shrinker's zap of the same slot.
        with area.mutex.lock():
            user = mm_ref.mmget_not_zero()
            if user is None:
                self.stats.paths["send.mm_dead"] += 1
                raise KernelError(errno.ESRCH, f"the process of area {area.id} has exited")
            # mmput_async: a remote task must not run the receiver's __mmput (binder).
            with user.into_mmput_async() as mm:
                self.stats.mm_refs_taken += 1
                self.insert_pages(mm, area, [slot])

    @override
    def deliver(self, area: Area, buf: Buffer) -> None:
        # The pages were inserted at send time; if a ->close since then took the PTEs away
        # (munmap, or a mapping replaced), the buffer is unreadable: drop it.
        with area.lock.lock():
            ok = all(s.inserted for s in area.slots[buf.first : buf.first + buf.npages])
        if not ok:
            self.stats.paths["recv.unmapped"] += 1
            raise KernelError(errno.EFAULT, "the buffer's pages were unmapped")

    @override
    def check_caller(self, area: Area) -> None:
        self.check_owner(area)

    @override
    def reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        return self.zap_reclaim(slot, walk)
