"""The four binder-style drivers of the demo, written only against the safe layer.

- :class:`EagerInsertDriver` — C binder and Rust binder today: the sender inserts each page
  into the receiver's VMA; the shrinker zaps it.
- :class:`InsertOnReceiveDriver` — the receiver inserts the pages into its own mapping.
- :class:`FaultAndUnmapDriver` — Jann Horn's proposal: pages fault in; reclaim unmaps them
  through the file's address space.
- :class:`LruReclaimDriver` — the review's last design: pages are folios of the file's own
  page cache, on the kernel's LRU; core reclaim unmaps and frees them, asking the driver's
  ``release_folio``.

They share the ioctl ABI of :mod:`safemm.demo.drivers.abi`, the buffer area of
:mod:`safemm.demo.drivers.alloc` and everything but the mapping strategy
(:mod:`safemm.demo.drivers.device`). No module here imports :mod:`safemm.model`.
"""

from __future__ import annotations

from .device import BinderDriver as BinderDriver
from .device import DriverStats as DriverStats
from .eager import EagerInsertDriver as EagerInsertDriver
from .fault_unmap import FaultAndUnmapDriver as FaultAndUnmapDriver
from .lru_reclaim import LruReclaimDriver as LruReclaimDriver
from .on_receive import InsertOnReceiveDriver as InsertOnReceiveDriver

#: The strategies, in the order the report shows them.
STRATEGIES: dict[str, type[BinderDriver]] = {
    EagerInsertDriver.strategy: EagerInsertDriver,
    InsertOnReceiveDriver.strategy: InsertOnReceiveDriver,
    FaultAndUnmapDriver.strategy: FaultAndUnmapDriver,
    LruReclaimDriver.strategy: LruReclaimDriver,
}

__all__ = [
    "STRATEGIES",
    "BinderDriver",
    "DriverStats",
    "EagerInsertDriver",
    "FaultAndUnmapDriver",
    "InsertOnReceiveDriver",
    "LruReclaimDriver",
]
