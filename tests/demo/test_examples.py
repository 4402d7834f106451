"""The runnable examples in examples/binder work."""

from __future__ import annotations

import runpy
import sys

import pytest

from examples.binder import session
from safemm.demo.drivers import STRATEGIES


def test_session_narrates_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m examples.binder.session`` runs one checked session per strategy."""
    session.main([])
    out = capsys.readouterr().out
    assert out.count("dmesg: clean") == len(STRATEGIES)
    assert out.count("fork; the child receives and reads b'for the child?'") == 2
    assert out.count("fork; the child may not receive (EPERM") == 2


def test_compare_is_the_demo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m examples.binder.compare ARGS`` is ``safemm demo ARGS``."""
    monkeypatch.setattr(sys, "argv", ["compare", "--workload", "ping-pong", "--no-times"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("examples.binder.compare", run_name="__main__")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "== ping-pong" in out
    assert "model time" not in out
