"""User space for the binder demo: processes that open ``/dev/safebinder``, map it, send,
receive, read, free — and check every byte they read against what was sent.

A :class:`Harness` is one simulated machine with one driver. User space knows only what a
real program knows: the ids the device handed out, what it sent to each, and where its own
mappings are (it called mmap, mremap, munmap and fork itself; a fork child reads its own
``/proc/PID/maps``). From that it predicts, for every buffer it receives, which bytes it must
read and where; a mismatch raises :class:`IntegrityError`. A driver error is either one the
ABI allows for the situation (recorded in the :class:`Tally`) or a bug (raised).
"""

from __future__ import annotations

import errno
import gc
import random
from collections import Counter, deque
from dataclasses import dataclass, field

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    BusError,
    Kernel,
    KernelError,
    Process,
    SegmentationFault,
)

from .drivers import BinderDriver
from .drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)

__all__ = ["Channel", "Harness", "IntegrityError", "Tally", "View"]

#: Errors a SEND may fail with, in some situation, without the driver being wrong.
SEND_ERRORS = frozenset({errno.ESRCH, errno.ENOMEM, errno.ENOSPC, errno.EFAULT, errno.EBUSY})


class IntegrityError(AssertionError):
    """User space read something other than what was sent, or the driver broke its ABI."""


@dataclass
class Tally:
    """What user space saw in one run."""

    #: Buffers received and read back intact (a transaction: SEND + RECV + read).
    transactions: int = 0
    bytes_verified: int = 0
    sends: int = 0
    send_failed: Counter[str] = field(default_factory=Counter)
    recv_failed: Counter[str] = field(default_factory=Counter)
    #: Received buffers user space could not read because it had unmapped that part itself.
    unreadable: int = 0


class Channel:
    """An open file of the device as user space knows it: its target id, the payloads sent
    to it that it has not received yet (oldest first), and the received ones not yet freed
    (by offset in the area)."""

    def __init__(self, target_id: int) -> None:
        self.id = target_id
        self.expected: deque[bytes] = deque()
        self.held: dict[int, bytes] = {}
        self.open = True


class View:
    """One process's handle on a channel: the fd, and where its mapping puts each page of
    the area (``layout``: page index → user address; ``base``: where page 0 is, or was last).
    """

    def __init__(self, proc: Process, fd: int, channel: Channel, base: int, npages: int) -> None:
        self.proc = proc
        self.fd = fd
        self.channel = channel
        self.base = base
        self.npages = npages
        self.layout: dict[int, int] = {i: base + i * PAGE_SIZE for i in range(npages)}

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.alive

    def addr_of(self, offset: int) -> int | None:
        """The user address of area byte ``offset`` in this process, if mapped here."""
        page = self.layout.get(offset // PAGE_SIZE)
        return None if page is None else page + offset % PAGE_SIZE


class Harness:
    """One machine, one driver of the given strategy, and the user space that drives it.

    Args:
        driver_cls: the strategy.
        seed: seeds user space's choices (``rng``) and the kernel's fault injection.
        nr_pages: RAM of the machine, in pages (small values create memory pressure).
        faults: fault-injection fractions by site (``trylock``, ``lock_vma_under_rcu``,
            ``alloc_page``); on for the whole run.
    """

    def __init__(
        self,
        driver_cls: type[BinderDriver],
        *,
        seed: int = 0,
        nr_pages: int = 16384,
        faults: dict[str, float] | None = None,
    ) -> None:
        self.kernel = Kernel(seed=seed, nr_pages=nr_pages)
        self.driver = driver_cls()
        self.kernel.register_device(DEVICE_PATH, self.driver)
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.views: list[View] = []
        for site, fraction in (faults or {}).items():
            self.kernel.fault_inject.fail_fraction(site, fraction)

    # ------------------------------------------------------------------ processes and files

    def endpoint(self, name: str = "", npages: int = 64, proc: Process | None = None) -> View:
        """A process (new unless given) that opens the device and maps ``npages`` pages."""
        if proc is None:
            proc = self.kernel.spawn(name)
        fd = proc.open(DEVICE_PATH)
        base = proc.mmap(None, npages * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd)
        target = proc.ioctl(fd, SAFEBINDER_GET_ID)
        if not isinstance(target, int):
            raise IntegrityError(f"GET_ID returned {target!r}")
        view = View(proc, fd, Channel(target), base, npages)
        self.views.append(view)
        return view

    def fork(self, view: View) -> View:
        """Fork the process of ``view``; the child's view maps what its maps file says."""
        child = view.proc.fork()
        copy = View(child, view.fd, view.channel, view.base, view.npages)
        maps = _device_ranges(child.maps())
        copy.layout = {
            i: a
            for i, a in view.layout.items()
            if any(s <= a < e and off + (a - s) == i * PAGE_SIZE for s, e, off in maps)
        }
        self.views.append(copy)
        return copy

    def exit(self, view: View) -> None:
        """Exit the process of ``view`` (and so close its files)."""
        view.proc.exit()
        self._update_channels()

    def close(self, view: View) -> None:
        """Close the view's fd (the file lives on while a VMA or another fd refers to it)."""
        view.proc.close(view.fd)
        view.fd = -1
        self._update_channels()

    def _update_channels(self) -> None:
        """Forget the channels whose file is released: no live process has an fd or a
        mapping of it any more."""
        for ch in {id(v.channel): v.channel for v in self.views}.values():
            if ch.open and not any(
                v.channel is ch and v.alive and (v.fd >= 0 or v.layout) for v in self.views
            ):
                ch.open = False
                ch.expected.clear()
                ch.held.clear()

    # ------------------------------------------------------------------ the ABI

    def send(self, src: View, dst: Channel, data: bytes) -> bool:
        """SEND ``data`` from ``src`` to ``dst``; False (recorded) on an allowed error."""
        self.tally.sends += 1
        try:
            src.proc.ioctl(src.fd, SAFEBINDER_SEND, (dst.id, data))
        except KernelError as e:
            if e.errno not in SEND_ERRORS:
                raise
            self.tally.send_failed[errno.errorcode[e.errno or 0]] += 1
            return False
        dst.expected.append(data)
        return True

    def recv(self, view: View) -> int | None:
        """RECV on ``view``, read the buffer and check it; the buffer's area offset, or None
        (queue empty, or an allowed error)."""
        ch = view.channel
        try:
            res = view.proc.ioctl(view.fd, SAFEBINDER_RECV)
        except KernelError as e:
            name = errno.errorcode[e.errno or 0]
            if e.errno == errno.EAGAIN:
                if ch.expected:
                    raise IntegrityError(
                        f"RECV on {ch.id}: EAGAIN with {len(ch.expected)} buffers sent"
                    ) from e
                return None
            if e.errno == errno.EPERM:
                self.tally.recv_failed[name] += 1
                return None
            if e.errno == errno.EFAULT:  # the head buffer was dropped
                ch.expected.popleft()
                self.tally.recv_failed[name] += 1
                return None
            raise
        addr, length = parse_recv(res)
        if not ch.expected:
            raise IntegrityError(f"RECV on {ch.id} returned a buffer nobody sent")
        data = ch.expected.popleft()
        offset = addr - view.base
        if length != len(data) or offset < 0 or offset % PAGE_SIZE:
            raise IntegrityError(
                f"RECV on {ch.id}: ({addr:#x}, {length}) for {len(data)} bytes, base "
                f"{view.base:#x}"
            )
        ch.held[offset] = data
        if self.check(view, offset, data):
            self.tally.transactions += 1
        else:
            self.tally.unreadable += 1
        return offset

    def check(self, view: View, offset: int, data: bytes) -> bool:
        """Read the buffer at area ``offset`` through ``view``'s mapping and compare it to
        ``data``; False if user space unmapped part of it (so it cannot read it)."""
        addrs = []
        for pos in range(0, len(data), PAGE_SIZE):
            addr = view.addr_of(offset + pos)
            if addr is None:
                return False
            addrs.append(addr)
        got = bytearray()
        for pos, addr in zip(range(0, len(data), PAGE_SIZE), addrs, strict=True):
            n = min(PAGE_SIZE, len(data) - pos)
            try:
                got += view.proc.read(addr, n)
            except (SegmentationFault, BusError) as e:
                raise IntegrityError(f"reading a received buffer: {e}") from e
        if bytes(got) != data:
            first = next(i for i, (a, b) in enumerate(zip(got, data, strict=True)) if a != b)
            raise IntegrityError(
                f"area {view.channel.id} offset {offset:#x}: byte {first} differs "
                f"({got[first]:#x} read, {data[first]:#x} sent)"
            )
        self.tally.bytes_verified += len(data)
        return True

    def free(self, view: View, offset: int) -> None:
        """FREE the received buffer at area ``offset``."""
        view.proc.ioctl(view.fd, SAFEBINDER_FREE, view.base + offset)
        del view.channel.held[offset]

    def drain(self, view: View, free: bool = True) -> int:
        """RECV until the queue is empty (FREE each buffer when ``free``); returns how many
        were received. Stops early if RECV is refused (EPERM)."""
        n = 0
        for _ in range(len(view.channel.expected) + 1):
            offset = self.recv(view)
            if offset is None:
                if not view.channel.expected:
                    break
                continue
            n += 1
            if free:
                self.free(view, offset)
        return n

    def free_bogus(self, view: View) -> None:
        """FREE an address that is no received buffer: the driver must refuse (EINVAL)."""
        try:
            view.proc.ioctl(view.fd, SAFEBINDER_FREE, view.base + 1)
        except KernelError as e:
            if e.errno != errno.EINVAL:
                raise
            return
        raise IntegrityError("FREE of a bogus address succeeded")

    def free_all(self, view: View) -> None:
        """FREE every buffer ``view``'s channel holds."""
        for offset in list(view.channel.held):
            self.free(view, offset)

    def recheck_held(self, view: View) -> None:
        """Read every held buffer again (after reclaim, mremap, fork, ...)."""
        for offset, data in view.channel.held.items():
            self.check(view, offset, data)

    def payload(self, max_pages: int = 3) -> bytes:
        """Random bytes, 1 byte to ``max_pages`` pages long."""
        return self.rng.randbytes(self.rng.randint(1, max_pages * PAGE_SIZE))

    def shrink(self, nr: int | None = None) -> int:
        """Memory pressure: kswapd reclaims (the LRU lists, then the shrinkers)."""
        return self.kernel.shrink(nr)

    # ------------------------------------------------------------------ the receiver's mm

    def split(self, view: View, first: int, npages: int) -> bool:
        """Split the mapping around pages ``[first, first + npages)`` (mprotect there and
        back; addresses do not change). False if those pages are not mapped contiguously."""
        addr = view.layout.get(first)
        if addr is None or any(
            view.layout.get(first + k) != addr + k * PAGE_SIZE for k in range(npages)
        ):
            return False
        view.proc.mprotect(addr, npages * PAGE_SIZE, PROT_NONE)
        view.proc.mprotect(addr, npages * PAGE_SIZE, PROT_READ)
        return True

    def unmap_pages(self, view: View, first: int, npages: int) -> None:
        """munmap whichever of pages ``[first, first + npages)`` are mapped."""
        part = {i: a for i, a in view.layout.items() if first <= i < first + npages}
        for addr, length in _runs(part):
            view.proc.munmap(addr, length)
        for i in part:
            del view.layout[i]
        self._update_channels()

    def move(self, view: View, first: int, npages: int, dest: int | None = None) -> None:
        """mremap pages ``[first, first + npages)`` of the area to ``dest`` onwards (a fresh
        range if None), keeping them contiguous: one mremap (MREMAP_FIXED: whatever was there
        is unmapped first) per run of pages that sit together in one VMA, since mremap moves
        within one VMA. Pages not mapped are skipped."""
        last = first + npages
        if dest is None:
            length = npages * PAGE_SIZE
            dest = view.proc.mmap(None, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
        moved: set[int] = set()
        while True:
            todo = [i for i in range(first, last) if i in view.layout and i not in moved]
            if not todo:
                return
            a = todo[0]
            src = view.layout[a]
            end = next(e for s, e, _ in _device_ranges(view.proc.maps()) if s <= src < e)
            b = a + 1
            while b < last and b in todo and view.layout[b] == src + (b - a) * PAGE_SIZE < end:
                b += 1
            length = (b - a) * PAGE_SIZE
            to = dest + (a - first) * PAGE_SIZE
            got = view.proc.mremap(src, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, to)
            for i, addr in list(view.layout.items()):
                if to <= addr < to + length and not a <= i < b:  # unmapped by the move
                    del view.layout[i]
            for i in range(a, b):
                view.layout[i] += got - src
                moved.add(i)
            if a == 0:
                view.base = got

    def unmap(self, view: View) -> int:
        """munmap the whole area (wherever its pages are); returns where page 0 was."""
        for addr, length in _runs(view.layout):
            view.proc.munmap(addr, length)
        view.layout.clear()
        self._update_channels()
        return view.base

    def map_anon(self, view: View, addr: int) -> None:
        """Map anonymous read-write memory where the area was (after :meth:`unmap`) and
        write to it: the hazard Rust binder's ``check_vma`` answers."""
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
        view.proc.mmap(addr, view.npages * PAGE_SIZE, PROT_READ | PROT_WRITE, flags)
        try:
            view.proc.write(addr, b"user data, not the driver's")
        except KernelError as e:  # an injected allocation failure in the fault
            if e.errno != errno.ENOMEM:
                raise

    # ------------------------------------------------------------------ the end

    def finish(self) -> None:
        """Exit every process, run deferred work, and check the machine: no splat, no leak,
        every invariant."""
        self.kernel.fault_inject.clear()
        for v in self.views:
            if v.alive:
                v.proc.exit()
        self._update_channels()
        self.kernel.flush_work()
        gc.collect()
        self.kernel.check_invariants()
        if self.kernel.dmesg:
            raise IntegrityError("dmesg is not empty:\n" + "\n".join(self.kernel.dmesg))


def _device_ranges(maps: str) -> list[tuple[int, int, int]]:
    """``(start, end, file offset)`` of each VMA of the device in a maps file."""
    out = []
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[5] == DEVICE_PATH:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, int(parts[2], 16)))
    return out


def _runs(layout: dict[int, int]) -> list[tuple[int, int]]:
    """The mapped pages of a layout as ``(address, length)`` runs of adjacent pages."""
    runs: list[tuple[int, int]] = []
    for addr in sorted(layout.values()):
        if runs and runs[-1][0] + runs[-1][1] == addr:
            runs[-1] = (runs[-1][0], runs[-1][1] + PAGE_SIZE)
        else:
            runs.append((addr, PAGE_SIZE))
    return runs
