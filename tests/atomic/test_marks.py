"""One source of truth: every run-time ``might_sleep`` that driver code reaches through the
safe layer passes through a ``@may_sleep``-marked call — the mark ``safemm check`` reads.

The audit hook of :mod:`safemm.model.atomic` sees every run-time ``might_sleep``. Walking out
from it: model frames are skipped; the first marked frame settles it; a driver frame reached
*directly* from a safe-layer frame, with no marked frame in between, is an unmarked sleeping
call of the safe layer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from safemm import KernelWarning
from safemm.model import atomic as marks
from safemm.model.kernel import Kernel
from safemm.model.sched import might_sleep
from tests.hazards.test_h5_reclaim_sleep import SLEEPERS, LruDriver, _lru_rig


def _kind(frame: FrameType) -> str:
    mod = str(frame.f_globals.get("__name__", ""))
    if mod.startswith("safemm.model."):
        return "model"
    if mod.startswith("safemm.") and not mod.startswith(("safemm.demo", "safemm.check")):
        return "layer"
    return "driver"


class Audit:
    """Records, for each run-time might_sleep, the mark it went through (or the violation)."""

    def __init__(self) -> None:
        self.marked: set[str] = set()
        self.unmarked: list[str] = []
        self.calls = 0

    def __call__(self, where: str) -> None:
        self.calls += 1
        f: FrameType | None = sys._getframe(2)  # skip this hook and might_sleep
        inner = "model"
        inner_name = ""
        while f is not None:
            mark = marks._BY_CODE.get(f.f_code)
            if mark is not None:
                self.marked.add(mark.fullname)
                return
            kind = _kind(f)
            if kind == "driver":
                if inner == "layer":
                    self.unmarked.append(f"{inner_name} ({where})")
                return
            inner, inner_name = kind, f"{f.f_globals.get('__name__')}.{f.f_code.co_qualname}"
            f = f.f_back


@pytest.fixture
def audit() -> Iterator[Audit]:
    a = Audit()
    marks.audit = a
    try:
        yield a
    finally:
        marks.audit = None


def test_h5_sleepers_all_pass_through_marks(audit: Audit) -> None:
    """Each H5 sleeping body, run under the list lock, reports through a marked call, and
    the report names that call and its fix."""
    for op, body in SLEEPERS.items():
        rig = _lru_rig()
        driver = rig.driver
        assert isinstance(driver, LruDriver)
        driver.body = body
        with pytest.raises(KernelWarning) as exc:
            rig.kernel.shrink()
        assert "; sleeping call: " in str(exc.value), op
        driver.body = None
        rig.kernel.shrink()
        rig.finish()
    assert audit.unmarked == []
    assert {
        "safemm.sync.Mutex.lock",
        "safemm._mm.MmWithUser.mmap_read_lock",
        "safemm._fs.AddressSpace.unmap_mapping_range",
        "safemm._virt.VmAreaRef.zap_page_range_single",
        "safemm._mm.OwnedMmWithUser.mmput",
        "safemm._page.Page.alloc_page",
    } <= audit.marked


def test_demo_workloads_sleep_only_through_marks(audit: Audit) -> None:
    """The demo drivers over every workload: every sleep they reach goes through a mark."""
    from safemm.demo.report import run_demo

    run_demo(0)
    assert audit.calls > 100
    assert audit.unmarked == []
    assert len(audit.marked) >= 4


def test_the_audit_catches_an_unmarked_sleeping_call(audit: Audit) -> None:
    """A safe-layer function that reaches might_sleep without a mark is found (the audit can
    fail)."""
    namespace: dict[str, object] = {"__name__": "safemm.fake_layer", "might_sleep": might_sleep}
    exec(
        "def sleepy(kernel):\n    might_sleep(kernel, 'fake:sleepy')\n",
        namespace,
    )
    sleepy = namespace["sleepy"]
    assert callable(sleepy)
    k = Kernel()
    call: Callable[[Kernel], object] = sleepy
    call(k)
    assert audit.unmarked == ["safemm.fake_layer.sleepy (fake:sleepy)"]


def test_every_mark_names_a_sleeping_call_of_the_safe_layer() -> None:
    """The registry holds the marks the static check reads: the safe layer's sleeping calls,
    each with a fix."""
    names = {m.name for m in marks.SLEEPS.values() if m.fullname.startswith("safemm._")}
    names |= {m.name for m in marks.SLEEPS.values() if m.fullname.startswith("safemm.sync")}
    assert {
        "Mutex.lock",
        "MmWithUser.mmap_read_lock",
        "MmWithUser.mmap_write_lock",
        "OwnedMmWithUser.mmput",
        "MmapWriteGuard.vma_lookup",
        "Page.alloc_page",
        "VmAreaRef.zap_page_range_single",
        "AddressSpace.unmap_mapping_range",
        "msleep",
    } <= names
    assert all(m.fix for m in marks.SLEEPS.values() if m.fullname.startswith("safemm."))
