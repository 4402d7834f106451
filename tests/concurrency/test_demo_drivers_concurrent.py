"""The three demo drivers and the tutorial driver under a concurrent workload: no failure in
150 PCT schedules each (depth 3).

Binder drivers: a receiver thread receives, reads back and frees buffers while two sender
threads (of another process) send and kswapd runs the shrinkers (``kernel.shrink()`` from
a body). Each payload is unique, so user space checks every buffer it reads against what was
sent, whatever order the sends landed in; after the concurrent part the receiver drains the
rest, every payload must have arrived exactly once, and the machine must be clean (no
splat — ``fail_on_splat`` — no leak, every invariant).

Tutorial driver: a reader thread reads the page while a sibling zaps it (``HELLO_ZAP``:
``mmget_not_zero``, ``mmap_read_lock``, ``check_vma``, ``zap_page_range_single``), another
process maps and reads its own page, and kswapd shrinks.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Callable

import pytest

from examples.tutorial import HELLO_ZAP, HelloDriver
from safemm import MAP_SHARED, PAGE_SIZE, PROT_READ, BusError, Kernel, KernelError
from safemm.demo.drivers import (
    BinderDriver,
    EagerInsertDriver,
    FaultAndUnmapDriver,
    InsertOnReceiveDriver,
    LruReclaimDriver,
)
from safemm.demo.drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)
from safemm.explore import explore

from .races import small_kernel

SCHEDULES = 150
AREA_PAGES = 8


def _payload(sender: int, seq: int) -> bytes:
    """Unique bytes, one to two pages long, so a mixed-up or stale page cannot pass the check."""
    tag = f"s{sender}#{seq};".encode()
    return (tag * (PAGE_SIZE // len(tag) + 2))[: PAGE_SIZE // 2 + seq * PAGE_SIZE]


#: Every payload a sender may send (a sender records a send only once its ioctl returned).
PAYLOADS = frozenset(_payload(n, seq) for n in (1, 2) for seq in range(2))


def _binder_scenario(driver_cls: type[BinderDriver]) -> Callable[[Kernel], None]:
    def scenario(k: Kernel) -> None:
        k.register_device(DEVICE_PATH, driver_cls())
        recv = k.spawn("receiver")
        rfd = recv.open(DEVICE_PATH)
        base = recv.mmap(None, AREA_PAGES * PAGE_SIZE, PROT_READ, 0x02, rfd)  # MAP_PRIVATE
        target = recv.ioctl(rfd, SAFEBINDER_GET_ID)
        reader = recv.spawn_thread()
        send = k.spawn("sender")
        sfd = send.open(DEVICE_PATH)
        send2 = send.spawn_thread()
        sent: Counter[bytes] = Counter()
        got: Counter[bytes] = Counter()

        def sender(thread_send: Callable[[int, object], object], n: int) -> None:
            for seq in range(2):
                data = _payload(n, seq)
                try:
                    thread_send(SAFEBINDER_SEND, (target, data))
                except KernelError as e:
                    if e.errno not in (errno.ENOSPC, errno.ENOMEM):  # area full: allowed
                        raise
                    continue
                sent[data] += 1

        def receive_one(
            ioctl: Callable[[int, object], object], read: Callable[[int, int], bytes]
        ) -> bool:
            try:
                addr, length = parse_recv(ioctl(SAFEBINDER_RECV, None))
            except KernelError as e:
                if e.errno != errno.EAGAIN:  # nothing queued: allowed
                    raise
                return False
            assert 0 <= addr - base < AREA_PAGES * PAGE_SIZE
            data = read(addr, length)
            assert data in PAYLOADS, f"read {data[:16]!r}... which nobody sent"
            got[data] += 1
            ioctl(SAFEBINDER_FREE, addr)
            return True

        def receiver() -> None:
            for _ in range(4):
                receive_one(lambda c, a: reader.ioctl(rfd, c, a), lambda a, n: reader.read(a, n))

        k.concurrently(
            receiver,
            lambda: sender(lambda c, a: send.ioctl(sfd, c, a), 1),
            lambda: sender(lambda c, a: send2.ioctl(sfd, c, a), 2),
            k.shrink,
        )
        while receive_one(lambda c, a: recv.ioctl(rfd, c, a), recv.read):
            pass
        assert got == sent, f"received {sorted(got.values())} of {sorted(sent.values())}"
        assert sent, "no send succeeded"
        send.exit()
        recv.exit()
        k.flush_work()
        k.check_invariants()

    return scenario


def _tutorial_scenario(k: Kernel) -> None:
    k.register_device("/dev/hello", HelloDriver())
    p = k.spawn("hello")
    fd = p.open("/dev/hello")
    addr = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    sibling = p.spawn_thread()
    q = k.spawn("other")

    def reader() -> None:
        for _ in range(2):
            try:
                assert p.read(addr, 12) == b"hello, world"
            except BusError:  # zapped: the tutorial has no ->fault
                pass

    def other() -> None:
        qfd = q.open("/dev/hello")
        qaddr = q.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, qfd)
        assert q.read(qaddr, 12) == b"hello, world"
        q.exit()

    k.concurrently(reader, lambda: sibling.ioctl(fd, HELLO_ZAP), other, k.shrink)
    p.exit()
    k.flush_work()
    k.check_invariants()


def _passes_pct(scenario: Callable[[Kernel], None]) -> None:
    ex = explore(
        scenario,
        strategy="pct",
        schedules=SCHEDULES,
        preemptions=2,
        seed=1,
        kernel_factory=small_kernel,
    )
    assert ex.ok, ex.report()
    assert ex.schedules_run == SCHEDULES and ex.tasks >= 4


DRIVERS = [EagerInsertDriver, InsertOnReceiveDriver, FaultAndUnmapDriver, LruReclaimDriver]


@pytest.mark.parametrize("driver_cls", DRIVERS, ids=[d.strategy for d in DRIVERS])
def test_binder_driver_under_pct(driver_cls: type[BinderDriver]) -> None:
    _passes_pct(_binder_scenario(driver_cls))


def test_tutorial_driver_under_pct() -> None:
    _passes_pct(_tutorial_scenario)
