"""The drivers' contract, case by case: the ioctl ABI, mmap's rules, each failure path, and
what each strategy does to a receiver that forks, moves or replaces its mapping."""

from __future__ import annotations

import errno
import gc
from collections.abc import Iterator

import pytest
from typing_extensions import override

from safemm import (
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    BusError,
    KernelError,
)
from safemm.demo.drivers import (
    STRATEGIES,
    BinderDriver,
    EagerInsertDriver,
    FaultAndUnmapDriver,
    InsertOnReceiveDriver,
)
from safemm.demo.drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)
from safemm.demo.drivers.alloc import Area, Buffer
from safemm.demo.userspace import Harness

ALL = list(STRATEGIES.values())
ZAPPERS = [EagerInsertDriver, InsertOnReceiveDriver]


@pytest.fixture(params=ALL, ids=list(STRATEGIES))
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A machine with one driver; at the end every process exits and the machine is
    checked (no splat, no leak, invariants)."""
    cls = request.param
    assert isinstance(cls, type) and issubclass(cls, BinderDriver)
    harness = Harness(cls)
    yield harness
    harness.finish()


def _errno(e: pytest.ExceptionInfo[KernelError]) -> int | None:
    return e.value.errno


def test_round_trip(h: Harness) -> None:
    """SEND, RECV, read, FREE: the bytes arrive intact, across pages."""
    a = h.endpoint("a")
    b = h.endpoint("b")
    data = bytes(range(256)) * 40
    assert h.send(a, b.channel, data)
    off = h.recv(b)
    assert off == 0
    assert h.tally.bytes_verified == len(data)
    h.free(b, off)
    assert h.recv(b) is None


def test_mmap_refuses_writable_and_second_mapping(h: Harness) -> None:
    """PROT_WRITE is EPERM, a later mprotect(PROT_WRITE) EACCES, a second mmap EBUSY, an
    offset EINVAL."""
    p = h.kernel.spawn()
    fd = p.open(DEVICE_PATH)
    with pytest.raises(KernelError) as e:
        p.mmap(None, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd)
    assert _errno(e) == errno.EPERM
    with pytest.raises(KernelError) as e:
        p.mmap(None, 4 * PAGE_SIZE, PROT_READ, MAP_SHARED, fd, offset=PAGE_SIZE)
    assert _errno(e) == errno.EINVAL
    addr = p.mmap(None, 4 * PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    with pytest.raises(KernelError) as e:
        p.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE)
    assert _errno(e) == errno.EACCES
    with pytest.raises(KernelError) as e:
        p.mmap(None, 4 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd)
    assert _errno(e) == errno.EBUSY


def test_area_is_at_most_4_mib(h: Harness) -> None:
    """An 8 MiB mapping gives a 4 MiB area: 1024 pages fit, 1025 do not (ENOSPC)."""
    a = h.endpoint("a", npages=2)
    b = h.endpoint("b", npages=2048)
    assert not h.send(a, b.channel, bytes(1025 * PAGE_SIZE))
    assert h.tally.send_failed["ENOSPC"] == 1
    assert h.send(a, b.channel, b"x" * (1024 * PAGE_SIZE))
    h.drain(b)


def test_bad_arguments(h: Harness) -> None:
    """Malformed SEND, unknown target, unmapped target, bogus FREE, unknown command."""
    a = h.endpoint("a")
    p = a.proc
    cases: list[tuple[int, object, int]] = [
        (SAFEBINDER_SEND, b"no target", errno.EINVAL),
        (SAFEBINDER_SEND, (a.channel.id, b""), errno.EINVAL),
        (SAFEBINDER_SEND, (9999, b"x"), errno.ESRCH),
        (SAFEBINDER_RECV, None, errno.EAGAIN),
        (SAFEBINDER_FREE, "addr", errno.EINVAL),
        (SAFEBINDER_FREE, a.base, errno.EINVAL),
        (0x1234, None, errno.ENOTTY),
    ]
    for cmd, arg, err in cases:
        with pytest.raises(KernelError) as e:
            p.ioctl(a.fd, cmd, arg)
        assert _errno(e) == err, (cmd, arg)
    # Opened but never mapped: nothing can be sent to it.
    fd = p.open(DEVICE_PATH)
    target = p.ioctl(fd, SAFEBINDER_GET_ID)
    assert isinstance(target, int)
    with pytest.raises(KernelError) as e:
        p.ioctl(a.fd, SAFEBINDER_SEND, (target, b"x"))
    assert _errno(e) == errno.ESRCH


def test_unsent_page_is_sigbus(h: Harness) -> None:
    """A page of the area no buffer filled cannot be read: SIGBUS (no PTE and no page to
    fault in)."""
    a = h.endpoint("a")
    with pytest.raises(BusError):
        a.proc.read(a.base + 5 * PAGE_SIZE, 1)


def test_read_after_free_and_reclaim_is_sigbus(h: Harness) -> None:
    """After FREE, the pages are reclaimable: a shrinker pass unmaps and frees them, and a
    late read of the old address gets SIGBUS, never another buffer's memory."""
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.send(a, b.channel, b"secret" * 100)
    off = h.recv(b)
    assert off is not None
    assert b.proc.read(b.base, 6) == b"secret"
    h.free(b, off)
    if h.driver.uses_shrinker:
        assert h.driver.lru.count() == 1
        assert h.shrink() == 1
        assert h.driver.stats.pages_reclaimed == 1
    else:
        # Core reclaim: the receiver's PTE is young, so the first pass only marks the folio
        # referenced; unused since, the second unmaps it and release_folio lets it go.
        assert h.shrink() == 0
        assert h.shrink() == 1
        assert h.kernel.counters.release_folio == 1
    with pytest.raises(BusError):
        b.proc.read(b.base, 6)


def test_reuse_before_reclaim(h: Harness) -> None:
    """A freed page still on the list_lru is taken back for the next buffer, not
    reallocated."""
    a = h.endpoint("a")
    b = h.endpoint("b")
    for _ in range(3):
        h.send(a, b.channel, b"y" * PAGE_SIZE)
        h.drain(b)
    assert h.driver.stats.pages_allocated == 1
    assert h.driver.stats.pages_reused == 2


def test_release_frees_everything(h: Harness) -> None:
    """close + munmap (or exit) gives every page back, queued buffers included."""
    free_before = h.kernel.pages.nr_free
    a = h.endpoint("a")
    b = h.endpoint("b")
    for _ in range(5):
        h.send(a, b.channel, b"z" * 3 * PAGE_SIZE)
    h.recv(b)
    h.exit(b)
    h.exit(a)
    h.kernel.flush_work()
    gc.collect()
    assert h.kernel.pages.nr_free == free_before
    h.kernel.check_invariants()


def test_alloc_failure_gives_the_range_back(h: Harness) -> None:
    """An allocation failure mid-buffer is ENOMEM; the range and the pages already taken
    go back, and the next SEND succeeds at the same offset."""
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.kernel.fault_inject.fail_next("alloc_page", 1)
    h.send(a, b.channel, b"q" * PAGE_SIZE)  # fails at its only page
    assert h.tally.send_failed["ENOMEM"] == 1
    assert h.driver.stats.paths["send.alloc_failed"] == 1
    h.send(a, b.channel, b"r" * PAGE_SIZE)
    assert h.recv(b) == 0


@pytest.mark.parametrize("cls", ZAPPERS, ids=lambda c: c.strategy)
def test_zapping_shrinker_skips_and_retries(cls: type[BinderDriver]) -> None:
    """A failed trylock (the area mutex; the mmap lock, with a writer waiting) skips the page;
    it stays on the list_lru and a later pass takes it."""
    h = Harness(cls)
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.send(a, b.channel, b"p" * 10)
    h.drain(b)
    h.kernel.fault_inject.fail_next("trylock", 1)  # the first trylock: area.mutex
    assert h.shrink() == 0
    assert h.driver.stats.paths["shrink.skip_mutex"] == 1
    lock = b.proc.mm.mmap_lock
    lock.queued_writers += 1  # a writer waits for the mmap lock: a read trylock fails
    assert h.shrink() == 0
    assert h.driver.stats.paths["shrink.skip_mmap_lock"] == 1
    lock.queued_writers -= 1
    assert h.driver.lru.count() == 1
    assert h.shrink() == 1
    assert h.driver.stats.shrinker_skips == 2
    h.finish()


def test_unmapping_shrinker_skips_and_retries() -> None:
    """Strategy 3's shrinker skips when the area lock or i_mmap_rwsem is busy."""
    h = Harness(FaultAndUnmapDriver)
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.send(a, b.channel, b"p" * 10)
    h.drain(b)
    h.kernel.fault_inject.fail_next("trylock", 1)  # area.lock
    assert h.shrink() == 0
    rwsem = b.proc.fds[b.fd].f_mapping.i_mmap_rwsem
    rwsem.queued_writers += 1
    assert h.shrink() == 0
    rwsem.queued_writers -= 1
    paths = h.driver.stats.paths
    assert (paths["shrink.skip_spinlock"], paths["shrink.skip_unmap_trylock"]) == (1, 1)
    assert h.shrink() == 1
    with pytest.raises(BusError):  # unmapped and freed: the next access finds no page
        b.proc.read(b.base, 1)
    assert paths["fault.sigbus"] == 1
    h.finish()


def test_vma_lock_fallback() -> None:
    """When lock_vma_under_rcu fails, the insert takes the mmap read lock instead."""
    h = Harness(EagerInsertDriver)
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.kernel.fault_inject.fail_next("lock_vma_under_rcu", 1)
    h.send(a, b.channel, b"v" * 10)
    assert h.driver.stats.vma_lock_fallbacks == 1
    assert h.driver.stats.mmap_read_lock == 1
    assert h.recv(b) == 0
    h.finish()


@pytest.mark.parametrize("cls", ZAPPERS, ids=lambda c: c.strategy)
def test_replaced_vma_is_refused(cls: type[BinderDriver]) -> None:
    """munmap + mmap of anonymous memory at the same address: the ownership check refuses it
    (no foreign-VMA splat: the insert never happens), the buffer in flight is dropped."""
    h = Harness(cls)
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.send(a, b.channel, b"in flight")
    base = h.unmap(b)
    h.map_anon(b, base)
    h.send(a, b.channel, b"after")
    assert h.recv(b) is None  # EFAULT: dropped
    assert b.proc.read(base, 4) == b"user"  # the process's own memory is untouched
    paths = h.driver.stats.paths
    if cls is EagerInsertDriver:
        assert paths["insert.foreign_vma"] == 1  # the second SEND
        assert paths["recv.unmapped"] == 1
    else:
        assert paths["send.unmapped"] == 1  # nothing maps the area: refused at once
        assert paths["insert.foreign_vma"] == 1  # the first buffer, at RECV
    h.finish()


def test_eager_send_to_exited_process() -> None:
    """The receiver exits while a child keeps its file open: mmget_not_zero fails, ESRCH."""
    h = Harness(EagerInsertDriver)
    a = h.endpoint("a")
    b = h.endpoint("b")
    child = h.fork(b)
    h.exit(b)
    assert not h.send(a, b.channel, b"late")
    assert h.driver.stats.paths["send.mm_dead"] == 1
    assert h.kernel.counters.mmget_not_zero_failed == 1
    h.exit(child)
    h.finish()


@pytest.mark.parametrize("cls", ZAPPERS, ids=lambda c: c.strategy)
def test_mmap_from_another_process(cls: type[BinderDriver]) -> None:
    """Like binder, the strategies that keep the opener's mm map only into it."""
    h = Harness(cls)
    p = h.kernel.spawn()
    fd = p.open(DEVICE_PATH)
    child = p.fork()
    with pytest.raises(KernelError) as e:
        child.mmap(None, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd)
    assert _errno(e) == errno.EINVAL
    child.exit()
    p.exit()
    h.finish()


@pytest.mark.parametrize("cls", ALL, ids=list(STRATEGIES))
def test_fork(cls: type[BinderDriver]) -> None:
    """VM_DONTCOPY strategies: the child has no mapping and may not receive (EPERM).
    Fault-and-unmap and lru-reclaim: the child's copy faults from the same pages, and reclaim
    unmaps the child's PTEs with the parent's."""
    h = Harness(cls)
    a = h.endpoint("a")
    b = h.endpoint("b")
    h.send(a, b.channel, b"before fork")
    off = h.recv(b)
    assert off is not None
    child = h.fork(b)
    h.send(a, b.channel, b"to the child")
    if not cls.dontcopy:
        assert child.layout == b.layout
        h.recheck_held(child)  # faults the page in, in the child
        assert h.recv(child) is not None
        h.free(b, off)
        # lru-reclaim: the first pass finds two young PTEs (parent and child) and activates
        # the folio; it comes back to the inactive list when that runs low, and goes then.
        assert sum(h.shrink() for _ in range(1 if cls.uses_shrinker else 4)) == 1
        with pytest.raises(BusError):  # the child's PTE went with the parent's
            child.proc.read(child.base, 1)
    else:
        assert child.layout == {}
        assert h.recv(child) is None
        assert h.tally.recv_failed["EPERM"] == 1
        assert h.recv(b) is not None
    h.exit(child)
    h.finish()


@pytest.mark.parametrize("cls", ALL, ids=list(STRATEGIES))
def test_mremap_whole_mapping(cls: type[BinderDriver]) -> None:
    """After the receiver moves its whole mapping, held buffers are where it moved them and
    RECV returns addresses in the new place (every strategy follows ->mremap)."""
    h = Harness(cls)
    a = h.endpoint("a")
    b = h.endpoint("b", npages=16)
    h.send(a, b.channel, b"held" * 2000)
    assert h.recv(b) == 0
    old = b.base
    h.move(b, 0, 16)
    assert b.base != old
    h.recheck_held(b)
    h.send(a, b.channel, b"new" * 100)
    addr, _ = parse_recv(b.proc.ioctl(b.fd, SAFEBINDER_RECV))
    b.channel.expected.popleft()
    assert addr == b.base + 2 * PAGE_SIZE
    assert b.proc.read(addr, 3) == b"new"
    b.proc.ioctl(b.fd, SAFEBINDER_FREE, addr)
    h.free_all(b)
    h.finish()


def test_split_keeps_working() -> None:
    """A receiver mapping split in three still receives, with every strategy."""
    for cls in ALL:
        h = Harness(cls)
        a = h.endpoint("a")
        b = h.endpoint("b", npages=16)
        assert h.split(b, 2, 4)
        for _ in range(4):
            h.send(a, b.channel, b"s" * 2 * PAGE_SIZE)
        assert h.drain(b) == 4
        h.finish()


def test_fault_and_unmap_takes_no_mm_and_no_mmap_lock() -> None:
    """Strategy 3 never touches an mm: no mm reference, no mmap lock, no per-VMA lock in the
    driver — the receiver's own faults take the mmap read lock instead."""
    h = Harness(FaultAndUnmapDriver)
    a = h.endpoint("a")
    b = h.endpoint("b")
    before = h.kernel.counters.snapshot()
    for _ in range(4):
        h.send(a, b.channel, b"f" * 2 * PAGE_SIZE)
        h.drain(b)
    h.shrink()
    c = h.kernel.counters.snapshot()
    s = h.driver.stats
    assert s.mm_refs_taken == s.mmap_read_lock == s.mmap_read_trylock == 0
    assert s.vma_lock_hits == s.vma_lock_fallbacks == 0
    assert c["mmget"] == before["mmget"]
    assert c["mmap_read_trylock"] == before["mmap_read_trylock"]
    # Two pages, faulted in once each; each fault retried under the mmap lock (no
    # ->map_pages), and unmapped once by reclaim.
    assert s.pages_faulted == 2
    assert c["vma_lock_retry"] - before["vma_lock_retry"] == 2
    assert c["mmap_read_lock"] - before["mmap_read_lock"] == 2
    assert c["unmap_mapping_range"] - before["unmap_mapping_range"] == 2
    h.finish()


def test_fault_unmap_child_moving_its_copy_does_not_move_the_parent() -> None:
    """fault-and-unmap keeps the mapping across fork (no VM_DONTCOPY). A child that mremaps
    its copy runs the same ->mremap hook with the same private data; only the opener's own
    moves may move the area, or the parent's RECV would hand out the child's addresses (the
    aio-after-fork class of bug, H7)."""
    h = Harness(FaultAndUnmapDriver)
    recv = h.endpoint("receiver", npages=8)
    send = h.endpoint("sender", npages=8)
    child = h.fork(recv)
    h.move(child, 0, 8)
    assert h.kernel.dmesg == []
    data = b"for the parent"
    assert h.send(send, recv.channel, data)
    offset = h.recv(recv)
    assert offset is not None
    assert h.check(recv, offset, data)
    drv = h.driver
    assert drv.stats.paths["mremap.other_process"] >= 1
    h.finish()


def test_a_strategy_must_define_deliver_and_reclaim() -> None:
    """``BinderDriver`` is an abstract base: a strategy that leaves out ``deliver`` or
    ``reclaim`` cannot be instantiated; ``install_page``, ``check_target`` and
    ``check_caller`` have defaults."""

    class NoReclaim(BinderDriver):
        strategy = "no-reclaim"

        @override
        def deliver(self, area: Area, buf: Buffer) -> None:
            pass

    with pytest.raises(TypeError, match="reclaim"):
        NoReclaim()  # type: ignore[abstract]
    assert BinderDriver.__abstractmethods__ == frozenset({"deliver", "reclaim"})
