"""The model's side of the conformance suite: the operations carry Linux's numbers, which
must be the model's, and the side classifies the model's errors and signals as the kernel
side does."""

from __future__ import annotations

import pytest

import safemm
from safemm.conformance import ops as linux
from safemm.conformance.model_side import MODEL_REGION_BASE, ModelMachine, ModelSide
from safemm.conformance.ops import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    Mmap,
    Munmap,
    Read,
)
from safemm.conformance.steps import Outcome

CONSTANTS = (
    "PAGE_SIZE",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "PROT_EXEC",
    "MAP_SHARED",
    "MAP_PRIVATE",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MREMAP_MAYMOVE",
    "MREMAP_FIXED",
    "MREMAP_DONTUNMAP",
)


@pytest.mark.parametrize("name", CONSTANTS)
def test_constants_are_linuxs(name: str) -> None:
    """safemm's PROT_/MAP_/MREMAP_ constants equal Linux's (the suite passes Linux's)."""
    assert getattr(safemm, name) == getattr(linux, name)


def test_outcomes_of_a_short_sequence() -> None:
    """A fixed mapping (at region offset 0), a read of it (byte 0), an unmap and a read of the
    hole (SIGSEGV)."""
    result = ModelSide().run(
        [
            Mmap(0, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED),
            Read(0),
            Munmap(0, 1),
            Read(0),
        ]
    )
    outcomes = [step.outcome for step in result.steps]
    assert outcomes == [Outcome.ok(0), Outcome.ok(0), Outcome.ok(0), Outcome.signal("SIGSEGV")]
    assert ModelMachine().region_base == MODEL_REGION_BASE
