"""KernelInfo records the kernel and its settings; unsupported machines skip."""

from __future__ import annotations

import io
import platform
import shutil
import sys
from dataclasses import replace

import pytest

from safemm.cli import main
from safemm.conformance.kernel_side import (
    ASSUMPTIONS,
    KernelInfo,
    KernelUnavailable,
    build_executor,
    unavailable_reason,
)

from .support import executor_binary_or_skip


def linux_info() -> KernelInfo:
    return KernelInfo(
        system="Linux",
        release="6.18.0",
        version="#1 SMP",
        machine="x86_64",
        page_size=4096,
        overcommit_memory=0,
        max_map_count=65530,
        compiler="/usr/bin/gcc",
    )


def test_collect_records_version_and_settings() -> None:
    info = KernelInfo.collect()
    assert info.release == platform.release()
    assert info.system == platform.system()
    assert info.assumptions == ASSUMPTIONS
    text = info.describe()
    assert info.release in text
    assert "assumes:" in text
    if sys.platform.startswith("linux"):
        assert isinstance(info.overcommit_memory, int)
        assert isinstance(info.max_map_count, int)
        assert f"vm.max_map_count={info.max_map_count}" in text
        assert f"vm.overcommit_memory={info.overcommit_memory}" in text


def test_reasons_for_unsupported_machines() -> None:
    assert unavailable_reason(linux_info()) is None
    reasons = {
        "needs Linux": replace(linux_info(), system="Darwin"),
        "4096-byte pages": replace(linux_info(), page_size=16384),
        ">= 4.17": replace(linux_info(), release="4.14.0-generic"),
        "max_map_count": replace(linux_info(), max_map_count=100),
        "gcc not found": replace(linux_info(), compiler=None),
    }
    for expected, info in reasons.items():
        reason = unavailable_reason(info)
        assert reason is not None
        assert expected in reason


def test_overcommit_never_is_a_warning_not_a_skip() -> None:
    info = replace(linux_info(), overcommit_memory=2)
    assert unavailable_reason(info) is None
    assert any("overcommit_memory is 2" in text for text in info.warnings())
    assert "warning:" in info.describe()


def fake_non_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(sys, "platform", "darwin")


def test_non_linux_platform_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_non_linux(monkeypatch)
    reason = unavailable_reason()
    assert reason == "the kernel side of the conformance suite needs Linux; this is Darwin"
    with pytest.raises(KernelUnavailable, match="needs Linux"):
        build_executor()
    with pytest.raises(pytest.skip.Exception, match="needs Linux"):
        executor_binary_or_skip()


def test_missing_gcc_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("only meaningful on Linux")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="gcc not found"):
        executor_binary_or_skip()


def test_command_reports_a_skip_on_non_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_non_linux(monkeypatch)
    out = io.StringIO()
    assert main(["conformance", "-n", "3", "--kernel-only"], out) == 0
    assert out.getvalue().startswith("safemm conformance: skipped: ")
    assert "needs Linux" in out.getvalue()
