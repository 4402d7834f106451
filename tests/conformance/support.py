"""Helpers shared by the conformance tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from safemm.conformance.kernel_side import KernelUnavailable, build_executor, unavailable_reason


def executor_binary_or_skip() -> Path:
    """The compiled executor, or a pytest skip with the reason it cannot exist here."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        return build_executor()
    except KernelUnavailable as exc:
        pytest.skip(str(exc))
