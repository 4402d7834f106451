"""The interpreter's exit report (safemm.model.exit_report): each live machine prints the
leaks no check_invariants call raised for, and the locks its processes still hold; a machine
taken out with forget() prints nothing."""

from __future__ import annotations

import io

from safemm.model import InvariantError, Kernel, exit_report
from safemm.model.locking import Mutex
from tests.python_process import run_python


def _report() -> str:
    out = io.StringIO()
    exit_report.report_at_exit(out)
    return out.getvalue()


def test_unreported_leak_is_printed_once_raised_it_is_not() -> None:
    k = Kernel()
    assert k in exit_report.watched()
    k.leak("Page pfn 0x77", "a Page was dropped without free() (exit report test)")
    text = _report()
    assert "safemm: leak: Page pfn 0x77" in text
    assert "contract: leak: a Page was dropped without free() (exit report test)" in text
    try:
        k.check_invariants()
    except InvariantError:
        pass
    else:
        raise AssertionError("check_invariants did not raise for the leak")
    assert "Page pfn 0x77" not in _report()


def test_lock_still_held_is_printed() -> None:
    k = Kernel(panic_on_warn=False)
    p = k.spawn("holder")
    m = Mutex("exit_report_test_mutex")
    with k.enter(p.task, "test"):
        m.lock(k)  # held across the return to user space (a lockdep report, not raised)
    assert f"exit_report_test_mutex still held by holder/{p.pid} at exit" in _report()
    with k.enter(p.task, "test"):
        m.unlock(k)
    assert "exit_report_test_mutex" not in _report()


def test_forgotten_machine_is_left_out() -> None:
    k = Kernel()
    k.leak("Page pfn 0x78", "a Page was dropped without free() (exit report test)")
    exit_report.forget(k)
    assert k not in exit_report.watched()
    assert "Page pfn 0x78" not in _report()


def test_report_runs_at_interpreter_exit() -> None:
    code = (
        "from safemm.model import Kernel\n"
        "k = Kernel()\n"
        "k.leak('Page pfn 0x79', 'dropped at exit')\n"
        "kept = Kernel()\n"
        "kept.leak('Page pfn 0x7a', 'reported before exit')\n"
        "kept.leaks_reported = len(kept.leaks)\n"
    )
    done = run_python(code)
    assert "safemm: leak: Page pfn 0x79" in done.stderr
    assert "Page pfn 0x7a" not in done.stderr
