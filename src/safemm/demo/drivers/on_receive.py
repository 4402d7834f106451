"""Strategy 2, insert-on-receive: the receiver maps its own pages.

The sender allocates and fills the pages (no mm of anyone is touched); the receiving process
inserts them into its own mapping when it picks the buffer up (RECV), through its own,
borrowed mm — so no remote mm reference is taken on the send path. Reclaim still has to reach
the receiver's page tables from kswapd or any allocating task, exactly as eager-insert does.
"""

from __future__ import annotations

from typing_extensions import override

from safemm.shrinker import LruStatus, LruWalk

from .alloc import Area, Buffer, PageSlot
from .device import BinderDriver

__all__ = ["InsertOnReceiveDriver"]


class InsertOnReceiveDriver(BinderDriver):
    """Insertion by the receiver, in RECV.

    Invariant (beyond :class:`BinderDriver`'s): a queued buffer's pages are filled but may be
    unmapped; a delivered buffer's pages were inserted by the receiver itself, under
    ``area.mutex`` and its own VMA or mmap read lock.
    """

    strategy = "insert-on-receive"

    @override
    def deliver(self, area: Area, buf: Buffer) -> None:
        # The caller's own mm, borrowed for this ioctl: no mmget, no mmput.
        mm = self.check_owner(area)
        with area.lock.lock():
            todo = [s for s in area.slots[buf.first : buf.first + buf.npages] if not s.inserted]
        self.insert_pages(mm, area, todo)

    @override
    def check_caller(self, area: Area) -> None:
        self.check_owner(area)

    @override
    def reclaim(self, slot: PageSlot, walk: LruWalk[PageSlot]) -> LruStatus:
        return self.zap_reclaim(slot, walk)
