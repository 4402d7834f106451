"""What the race tests share: a small kernel per schedule, the exhaustive check of a correct
version, and the replay check of a failure."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Process
from safemm.demo.drivers import BinderDriver, abi
from safemm.explore import Exploration, Failure, explore, replay

Scenario = Callable[[Kernel], object]


def small_kernel() -> Kernel:
    """A fresh machine per schedule: little RAM (cheap to build), WARNs go to dmesg only
    (``fail_on_splat`` still fails the schedule)."""
    return Kernel(nr_pages=256, panic_on_warn=False)


def assert_dfs_passes(
    scenario: Scenario,
    preemptions: int,
    *,
    kernel_factory: Callable[[], Kernel] = small_kernel,
    schedules: int = 20_000,
) -> Exploration:
    """Every schedule with at most ``preemptions`` preemptions passes (the search ran out)."""
    ex = explore(
        scenario,
        strategy="dfs",
        schedules=schedules,
        preemptions=preemptions,
        kernel_factory=kernel_factory,
    )
    assert ex.exhausted and ex.ok, ex.report()
    assert ex.schedules_run > 1
    return ex


def assert_replays(
    scenario: Scenario,
    failure: Failure,
    *,
    kernel_factory: Callable[[], Kernel] = small_kernel,
) -> None:
    """``replay(token)`` ends in the same failure: same exception type and contract."""
    with pytest.raises(type(failure.error)) as e:
        replay(scenario, failure.schedule, kernel_factory=kernel_factory)
    assert getattr(e.value, "contract", None) == failure.contract
    assert str(e.value).splitlines()[0] == str(failure.error).splitlines()[0]


def assert_pct_finds_one(scenario: Scenario, error: type[BaseException], *words: str) -> Failure:
    """``pct`` (300 schedules, seed 0) finds exactly one failure, an ``error`` whose message
    holds each of ``words``, and ``replay`` reproduces it. Returns it for further checks."""
    ex = explore(scenario, strategy="pct", schedules=300, seed=0, kernel_factory=small_kernel)
    assert len(ex.failures) == 1, ex.report()
    (f,) = ex.failures
    assert isinstance(f.error, error), ex.report()
    for w in words:
        assert w in str(f.error), (w, str(f.error))
    assert_replays(scenario, f)
    return f


def received_and_freed(
    k: Kernel, driver: BinderDriver, data: bytes, *, flags: int = MAP_SHARED, touch: bool
) -> tuple[Process, int, int, int]:
    """Register a demo ``driver``; a receiver opens and maps four pages read-only, sends
    ``data`` to itself, receives it at the start of its mapping, reads it back (``touch``:
    its PTE then maps the page) and frees it (the slot keeps its page, reclaimable).
    Returns ``(receiver, fd, target id, address)``."""
    k.register_device(abi.DEVICE_PATH, driver)
    r = k.spawn("receiver")
    fd = r.open(abi.DEVICE_PATH)
    base = r.mmap(None, 4 * PAGE_SIZE, PROT_READ, flags, fd)
    me = r.ioctl(fd, abi.SAFEBINDER_GET_ID)
    assert isinstance(me, int)
    r.ioctl(fd, abi.SAFEBINDER_SEND, (me, data))
    addr, _ = abi.parse_recv(r.ioctl(fd, abi.SAFEBINDER_RECV))
    assert addr == base
    if touch and r.read(addr, len(data)) != data:
        raise AssertionError(f"read back {r.read(addr, len(data))!r}, sent {data!r}")
    r.ioctl(fd, abi.SAFEBINDER_FREE, addr)
    return r, fd, me, addr
