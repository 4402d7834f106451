"""Helpers shared by the conformance tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pytest

from safemm.conformance.compare import compare
from safemm.conformance.kernel_side import (
    KernelSide,
    KernelUnavailable,
    build_executor,
    unavailable_reason,
)
from safemm.conformance.model_side import ModelSide
from safemm.conformance.ops import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    Op,
)

RW: Final = PROT_READ | PROT_WRITE
F: Final = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
"""A private anonymous mapping at a fixed address."""
S: Final = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
"""A shared anonymous mapping at a fixed address."""
MOVE: Final = MREMAP_MAYMOVE | MREMAP_FIXED
"""mremap to a fixed address."""


def executor_binary_or_skip() -> Path:
    """The compiled executor, or a pytest skip with the reason it cannot exist here."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        return build_executor()
    except KernelUnavailable as exc:
        pytest.skip(str(exc))


def check_kernel_case(
    kernel_side: KernelSide,
    model_side: ModelSide,
    ops: Sequence[Op],
    outcomes: list[str],
    layout: str,
    child: str | None = None,
) -> None:
    """Run ``ops`` on the kernel and assert the expected results (a kernel that behaves
    otherwise is reported by the assertion), then on the model, which must agree at every
    step: outcomes, the parent's final layout and the child's (None: no child)."""
    result = kernel_side.run(ops)
    assert [str(step.outcome) for step in result.steps] == outcomes, kernel_side.info.describe()
    assert str(result.steps[-1].layout) == layout, kernel_side.info.describe()
    last_child = result.steps[-1].child
    assert (None if last_child is None else str(last_child)) == child, kernel_side.info.describe()
    mismatch = compare(ops, kernel=kernel_side, model=model_side)
    assert mismatch is None, f"\n{kernel_side.info.describe()}\n{mismatch}"
