"""Fixtures for the safe-layer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safemm import Kernel

from .safe_support import SampleDriver, Setup


@pytest.fixture
def setup() -> Iterator[Setup]:
    """The standard set-up; teardown checks no leak and that every invariant holds."""
    s = Setup(Kernel(), SampleDriver())
    yield s
    if s.proc.alive:
        s.proc.exit()
    s.kernel.check_invariants()


@pytest.fixture
def lenient() -> Iterator[Setup]:
    """The same on a kernel that only logs WARNs (panic_on_warn off)."""
    s = Setup(Kernel(panic_on_warn=False), SampleDriver())
    yield s
    if s.proc.alive:
        s.proc.exit()
