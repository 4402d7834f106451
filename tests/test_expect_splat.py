"""``safemm.testing.expect_splat``: passes only for the report of the expected contract and
kind, so a test that expects one splat cannot pass on another."""

from __future__ import annotations

import pytest

from safemm import KernelBug, KernelError, KernelWarning
from safemm.model import Kernel
from safemm.testing import SplatKind, expect_splat


def _warn(k: Kernel, contract: str = "split-range") -> None:
    k.report(SplatKind.WARNING, contract, "a test warning", "test.c:1")


def test_the_expected_report_is_caught_and_readable() -> None:
    """The expected report passes; its exception and splat are readable afterwards."""
    k = Kernel()
    with expect_splat("split-range", SplatKind.WARNING, match="a test warning") as caught:
        _warn(k)
    assert isinstance(caught.error, KernelWarning)
    assert caught.splat.contract == "split-range"
    assert caught.splat.kind is SplatKind.WARNING
    with expect_splat("page-refcount", SplatKind.BUG) as bug:
        k.report(SplatKind.BUG, "page-refcount", "a test bug", "test.c:2")
    assert isinstance(bug.error, KernelBug)


def test_another_contract_fails() -> None:
    """A report of another contract fails, naming both."""
    k = Kernel()
    with (
        pytest.raises(
            AssertionError,
            match="contract 'split-range', got a WARNING report of contract 'mmap-hook'",
        ),
        expect_splat("split-range", SplatKind.WARNING),
    ):
        _warn(k, "mmap-hook")


def test_another_kind_fails() -> None:
    """The right contract with the wrong kind (a WARN where a BUG is expected) fails."""
    k = Kernel()
    with (
        pytest.raises(AssertionError, match="expected a BUG report"),
        expect_splat("split-range", SplatKind.BUG),
    ):
        _warn(k)


def test_nothing_raised_fails() -> None:
    """A block that raises nothing fails."""
    with (
        pytest.raises(AssertionError, match="the block raised nothing"),
        expect_splat("split-range", SplatKind.WARNING),
    ):
        pass


def test_text_must_match() -> None:
    """``match`` must be found in the splat's text."""
    k = Kernel()
    with (
        pytest.raises(AssertionError, match="'elsewhere' is not in its text"),
        expect_splat("split-range", SplatKind.WARNING, match="elsewhere"),
    ):
        _warn(k)


def test_other_exceptions_pass_through_and_ids_are_checked() -> None:
    """An errno passes through untouched; an unknown contract id is a ValueError."""
    with pytest.raises(KernelError), expect_splat("split-range", SplatKind.WARNING):
        raise KernelError(22, "not a splat")
    with (
        pytest.raises(ValueError, match="unknown contract"),
        expect_splat("no-such", SplatKind.BUG),
    ):
        pass


def test_reading_before_the_block_ended_fails() -> None:
    """Reading the catch before the block has raised fails."""
    k = Kernel()
    with expect_splat("split-range", SplatKind.WARNING) as caught:
        with pytest.raises(AssertionError, match="nothing was caught"):
            _ = caught.error
        _warn(k)
