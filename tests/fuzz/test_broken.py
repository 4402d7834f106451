"""The broken drivers of tests/fuzz/broken.py: each passes its happy-path test, and
``fuzz_driver`` finds its bug with the default budget; the reproducer it hands back, run as
a user would run it, fails the same way."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from safemm import (
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    Kernel,
    KernelError,
    KernelWarning,
    Process,
    StaleReferenceError,
)
from safemm.fs import FileOperations
from safemm.fuzz import FuzzFailure, UserMapping, fuzz_driver

from . import broken

pytestmark = pytest.mark.xdist_group("fuzz-broken")


def _clean(k: Kernel) -> None:
    gc.collect()
    assert k.dmesg == []
    k.check_invariants()
    assert not k.mms and not k.open_files


def _world(driver: object) -> tuple[Kernel, Process, int]:
    k = Kernel()
    assert isinstance(driver, FileOperations)
    k.register_device("/dev/x", driver)
    p = k.spawn()
    return k, p, p.open("/dev/x")


# ------------------------------------------------------------------------- happy paths


def test_split_close_happy_path() -> None:
    k, p, fd = _world(broken.SplitCloseDriver())
    a = p.mmap(None, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    p.read(a, 16)
    p.read(a + PAGE_SIZE, 16)
    p.munmap(a, 2 * PAGE_SIZE)
    p.close(fd)
    p.exit()
    _clean(k)


def test_start_keyed_happy_path() -> None:
    k, p, fd = _world(broken.StartKeyedDriver())
    a = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    b = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    p.read(a, 1)
    p.munmap(a, PAGE_SIZE)
    p.munmap(b, PAGE_SIZE)
    p.exit()
    _clean(k)


def test_refuse_leak_happy_path() -> None:
    k, p, fd = _world(broken.RefuseLeakDriver())
    a = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    assert p.read(a, 10) == b"refuseleak"
    p.exit()
    _clean(k)


def test_mm_users_happy_path() -> None:
    k, p, fd = _world(broken.MmUsersDriver())
    a = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    p.munmap(a, PAGE_SIZE)
    p.close(fd)
    p.exit()
    _clean(k)


def test_fork_fault_happy_path() -> None:
    k, p, fd = _world(broken.ForkFaultDriver())
    a = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    assert p.read(a, 9) == b"forkfault"
    p.exit()
    _clean(k)


def test_any_vma_insert_happy_path() -> None:
    k, p, fd = _world(broken.AnyVmaInsertDriver())
    a = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    p.ioctl(fd, broken.INSERT_AT, a)
    p.read(a, 1)
    with pytest.raises(KernelError, match="EFAULT"):
        p.ioctl(fd, broken.INSERT_AT, a + PAGE_SIZE)
    p.exit()
    _clean(k)


# ------------------------------------------------------------------------- found


def _addresses(maps: tuple[UserMapping, ...]) -> SearchStrategy[object]:
    return st.sampled_from([m.start for m in maps]) if maps else st.just(0)


def _reproduce(f: FuzzFailure) -> BaseException:
    """Run the reproducer as pytest would: exec the module, call the test."""
    ns: dict[str, object] = {"__name__": "reproducer"}
    exec(compile(f.reproducer, "<reproducer>", "exec"), ns)
    test = next(v for k, v in ns.items() if k.startswith("test_fuzz_"))
    assert callable(test)
    with pytest.raises(BaseException) as info:
        test()
    gc.collect()
    return info.value


def _is(kind: type[BaseException], contract: str | None = None) -> Callable[[BaseException], bool]:
    def check(e: BaseException) -> bool:
        if contract is not None and getattr(e, "contract", None) == contract:
            return True
        if contract is not None and f"contract: {contract}:" in str(e):
            return True
        return contract is None and isinstance(e, kind)

    return check


CASES: list[tuple[Callable[[], object], str, str | None, Callable[[BaseException], bool]]] = [
    # (driver, failure kind, contract, what the reproducer raises)
    (broken.SplitCloseDriver, "exception", None, _is(StaleReferenceError)),
    (broken.StartKeyedDriver, "exception", None, _is(KeyError)),
    (broken.RefuseLeakDriver, "report", "leak", _is(AssertionError, "leak")),
    (broken.MmUsersDriver, "leak", "leak", lambda e: "outlived every process" in str(e)),
    (broken.ForkFaultDriver, "exception", None, _is(StaleReferenceError)),
    (broken.AnyVmaInsertDriver, "report", "foreign-vma", _is(KernelWarning, "foreign-vma")),
]


@pytest.mark.parametrize(
    ("driver", "kind", "contract", "raised"),
    CASES,
    ids=["split-close", "start-keyed", "refuse-leak", "mm-users", "fork-fault", "any-vma"],
)
def test_fuzz_finds(
    driver: Callable[[], object],
    kind: str,
    contract: str | None,
    raised: Callable[[BaseException], bool],
) -> None:
    """Found with the default budget (200 examples; stopping at the first failure), with a
    short reproducer that fails the same way."""
    ioctls = {broken.INSERT_AT: _addresses} if driver is broken.AnyVmaInsertDriver else None
    r = fuzz_driver(driver, ioctls=ioctls, seed=0, max_failures=1, shrink_time=None)
    assert len(r.failures) == 1, r.report()
    f = r.failures[0]
    assert f.kind == kind, f.what
    assert f.contract == contract, f.what
    assert f.verified is True
    assert f.steps <= 12, f.reproducer
    e = _reproduce(f)
    assert raised(e), f"{type(e).__name__}: {e}\n{f.reproducer}"
