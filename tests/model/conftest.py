"""Fixtures for the model tests: a fresh machine and a process in it.

Helpers and hypothesis strategies shared by several test files live in ``strategies.py``.
"""

from __future__ import annotations

import pytest

from safemm.model import Kernel, Process


@pytest.fixture
def k() -> Kernel:
    """A fresh machine: strict mode and panic_on_warn on (the defaults)."""
    return Kernel()


@pytest.fixture
def p(k: Kernel) -> Process:
    """A process with an empty address space in ``k``."""
    return k.spawn("test")
