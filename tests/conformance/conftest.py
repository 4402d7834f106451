"""Fixtures for the conformance tests: one real-kernel executor per test session.

The kernel side needs Linux and gcc; everywhere else the fixtures skip with the
reason :func:`safemm.conformance.kernel_side.unavailable_reason` gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from safemm.conformance.kernel_side import KernelExecutor, KernelSide
from safemm.conformance.model_side import ModelSide

from .support import executor_binary_or_skip


@pytest.fixture(scope="session")
def executor_binary() -> Path:
    """Path of the compiled helper (skips off Linux or without gcc)."""
    return executor_binary_or_skip()


@pytest.fixture(scope="session")
def kernel_executor(executor_binary: Path) -> Iterator[KernelExecutor]:
    """One helper process for the whole session (sequences reset it)."""
    with KernelExecutor(executor_binary) as executor:
        yield executor


@pytest.fixture(scope="session")
def kernel_side(kernel_executor: KernelExecutor) -> KernelSide:
    """The real kernel as a comparison side."""
    return KernelSide(kernel_executor)


@pytest.fixture(scope="session")
def model_side() -> ModelSide:
    """The safemm model as a comparison side."""
    return ModelSide()
