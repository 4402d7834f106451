"""Race 8: core reclaim against a receiver faulting and the driver flipping a page back to
in use, in the lru-reclaim design (src/safemm/demo/drivers/lru_reclaim.py).

The receiver got a buffer at slot 0, read it (its PTE maps the slot's folio) and freed it:
the folio is still pinned by the driver and cached, but unused, so reclaim may take it.
Then three tasks run at once: kswapd reclaims — it unmaps the folio through the reverse map
and asks the driver's ``release_folio``; a sender sends a new buffer, which lands in slot 0
and flips it back to in use (SEND writes the new bytes into the same folio); the receiver
receives it and reads it, faulting the folio back in through ``filemap_lock_folio``.

The driver's rule is that the flag and the pin change only under ``area.lock``, where
``release_folio`` reads the flag. A ``release_folio`` that looks at the flag first and takes
the lock only to drop the pin is a check-then-act race: the explorer finds the schedule
where the sender flips the slot in use and fills the folio between the look and the lock,
and reclaim then frees a folio in use — the sender's next write finds its slot empty, or the
receiver's read finds the page gone (SIGBUS): seed 0 finds the second, at one preemption,
with the sender's whole SEND between the look and the lock. The demo driver passes
every schedule within two preemptions (an exhaustive ``dfs`` run), and the receiver always
reads what was sent.
"""

from __future__ import annotations

from collections.abc import Callable

from typing_extensions import override

from safemm import BusError, Kernel, KernelError
from safemm.demo.drivers import LruReclaimDriver, abi
from safemm.demo.drivers.alloc import Area
from safemm.demo.drivers.lru_reclaim import BinderAddressSpaceOps
from safemm.folio import CachedFolio
from safemm.page import Gfp

from .races import assert_dfs_passes, assert_pct_finds_one, received_and_freed

OLD = b"old!" * 3
NEW = b"new!" * 3


class LookFirstAops(BinderAddressSpaceOps):
    """Broken: reads ``in_use`` without ``area.lock``, then takes the lock to drop the pin."""

    @override
    def release_folio(self, folio: CachedFolio[Area], gfp: Gfp) -> bool:
        area = folio.private_data
        slot = area.slots[folio.index]
        if slot.in_use:  # looked at without the lock the flag changes under
            return False
        with area.lock.lock():  # a SEND may flip the slot in use right here
            pin, slot.folio = slot.folio, None
        if pin is not None:
            pin.put()
        return True


class LookFirstDriver(LruReclaimDriver):
    """The demo driver with :class:`LookFirstAops`."""

    def __init__(self) -> None:
        super().__init__()
        self.aops = LookFirstAops(self)


def _scenario(driver_cls: type[LruReclaimDriver]) -> Callable[[Kernel], None]:
    def scenario(k: Kernel) -> None:
        r, fd, me, addr = received_and_freed(k, driver_cls(), OLD, touch=True)
        # The receiver read OLD (its PTE maps the folio, young). kswapd's first pass sees
        # the young PTE: the folio is kept, marked referenced; the next pass may take it.
        k.shrink()
        s = k.spawn("sender")
        sfd = s.open(abi.DEVICE_PATH)
        reader = r.spawn_thread()

        def send() -> None:
            s.ioctl(sfd, abi.SAFEBINDER_SEND, (me, NEW))

        def receive() -> bytes | None:
            try:
                got, _ = abi.parse_recv(reader.ioctl(fd, abi.SAFEBINDER_RECV))
            except KernelError:  # EAGAIN: not sent yet
                return None
            assert got == addr
            return reader.read(got, len(NEW))

        _, _, seen = k.concurrently(k.shrink, send, receive)
        if seen is None:
            got, _ = abi.parse_recv(r.ioctl(fd, abi.SAFEBINDER_RECV))
            seen = r.read(got, len(NEW))
        if seen != NEW:  # raised by hand: the message is the same under pytest's rewriting
            raise AssertionError(f"read {seen!r} where the new buffer {NEW!r} is")
        s.exit()
        r.exit()
        k.check_invariants()

    return scenario


def test_release_folio_looking_before_locking_frees_a_folio_in_use() -> None:
    f = assert_pct_finds_one(_scenario(LookFirstDriver), BusError, "returned VM_FAULT_SIGBUS")
    assert f.preemptions == 1
    assert "spin_lock safebinder_area.lock  <-- preempted" in f.trace


def test_demo_driver_passes_every_schedule_within_two_preemptions() -> None:
    ex = assert_dfs_passes(_scenario(LruReclaimDriver), 2)
    assert ex.schedules_run > 100
