"""safemm.fuzz: what counts as a failure, distinct failures, reproducers, races, the state
machine in a pytest suite, and the ``safemm fuzz`` command."""

from __future__ import annotations

import errno
import io

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from typing_extensions import override

from examples.tutorial import HelloDriver
from safemm import KernelError
from safemm.cli import main
from safemm.fs import File, FileOperations
from safemm.fuzz import FailureFound, FuzzFailure, driver_machine, fuzz_driver
from safemm.fuzz._minimize import run_reproducer, same_failure
from safemm.page import Page
from safemm.virt import VmAreaNew

from . import broken

pytestmark = pytest.mark.xdist_group("fuzz")


class TwoBugsDriver(FileOperations[None]):
    """Leaks a page when it refuses an offset, and trips over an ioctl argument it did not
    expect (a ValueError escaping the syscall)."""

    def __init__(self) -> None:
        super().__init__(type(None), "twobugs")

    @override
    def mmap(self, file: File[None], vma: VmAreaNew) -> None:
        page = Page.alloc_page()
        if vma.pgoff:
            raise KernelError(errno.EINVAL, "offset 0 only")
        page.free()

    @override
    def ioctl(self, file: File[None], cmd: int, arg: object) -> object:
        return parse(cmd, arg)


def parse(cmd: int, arg: object) -> int:
    """The ioctl ABI: command 3 takes a decimal digit string (no check of the type)."""
    if cmd != 3:
        raise KernelError(errno.ENOTTY, "unknown")
    return int(str(arg)[0])  # ValueError on None, b"...", (1, b"x")


class BadArgDriver(FileOperations[None]):
    """Only the ioctl bug of :class:`TwoBugsDriver`."""

    def __init__(self) -> None:
        super().__init__(type(None), "badarg")

    @override
    def ioctl(self, file: File[None], cmd: int, arg: object) -> object:
        return parse(cmd, arg)


def _reproduces(f: FuzzFailure) -> None:
    e = run_reproducer(f.reproducer)
    assert e is not None, f.reproducer
    assert same_failure(e, f), f"{type(e).__name__}: {e}"


def test_tutorial_is_clean_and_covered() -> None:
    """The tutorial driver: no failure; signals and refused calls are outcomes; the summary
    says which hooks ran and which contracts were exercised."""
    r = fuzz_driver(HelloDriver, examples=25, seed=0)
    assert r.ok, r.report()
    cov = r.coverage
    for hook in ("hello->open", "hello->mmap", "hello->unlocked_ioctl", "hello->release"):
        assert cov.hooks[hook] > 0, hook
    assert cov.outcomes["ok"] > 0
    assert cov.outcomes["SIGSEGV"] + cov.outcomes["SIGBUS"] > 0
    assert cov.outcomes["EACCES"] + cov.outcomes["EPERM"] > 0  # write/exec refused
    assert cov.steps > 25 * 5
    assert "mmap-hook" in r.contracts and "leak" in r.contracts
    text = r.summary()
    assert "hello->mmap" in text and "contracts exercised" in text


def test_tutorial_is_clean_with_races() -> None:
    r = fuzz_driver(HelloDriver, examples=12, seed=0, concurrency=True)
    assert r.ok, r.report()
    assert r.coverage.operations["race"] > 0
    assert "deadlock" in r.contracts


def test_exception_escaping_a_syscall_is_a_failure() -> None:
    """A ValueError out of ->unlocked_ioctl (hostile default arguments) is a failure, with a
    reproducer that raises it."""
    r = fuzz_driver(BadArgDriver, examples=100, seed=0, max_failures=1, shrink_time=None)
    assert len(r.failures) == 1
    f = r.failures[0]
    assert f.kind == "exception"
    assert isinstance(f.error, ValueError)
    assert f.error.__traceback__ is None
    assert f.verified
    assert ".ioctl(f1, 3" in f.step
    _reproduces(f)


def test_distinct_failures_each_once() -> None:
    """Two bugs: both found, each once, each with its own verified reproducer."""
    r = fuzz_driver(TwoBugsDriver, examples=200, seed=0, shrink_time=None)
    kinds = sorted((f.kind, type(f.error).__name__, f.contract) for f in r.failures)
    assert kinds == [("exception", "ValueError", None), ("report", "InvariantError", "leak")]
    for f in r.failures:
        assert f.verified, f.reproducer
        _reproduces(f)
    text = r.report()
    assert "failure 1:" in text and "failure 2:" in text and "failure 3:" not in text


def test_lambda_factory_reproducer_says_so() -> None:
    """A factory that cannot be imported is named make_driver, and the reproducer is still
    verified (with the factory bound)."""
    r = fuzz_driver(
        lambda: broken.RefuseLeakDriver(), examples=100, seed=0, max_failures=1, shrink_time=None
    )
    f = r.failures[0]
    assert "make_driver()" in f.reproducer
    assert "# make_driver: the driver factory you fuzzed" in f.reproducer
    assert f.verified


def test_race_reproducer_replays_the_schedule() -> None:
    """A check-then-act race (found only with concurrency) comes back as a replay of its
    schedule token; run, it fails the same way."""
    r = fuzz_driver(
        broken.RacyAllocDriver,
        ioctls={broken.ALLOC: st.none()},
        seed=0,
        concurrency=True,
        max_failures=1,
        shrink_time=None,
    )
    assert len(r.failures) == 1, r.report()
    f = r.failures[0]
    assert f.contract == "leak"
    assert "kernel.concurrently(" in f.reproducer
    assert "replay(scenario, " in f.reproducer
    assert f.verified
    _reproduces(f)


def test_sequential_fuzzing_misses_the_race() -> None:
    r = fuzz_driver(broken.RacyAllocDriver, ioctls={broken.ALLOC: st.none()}, examples=60, seed=0)
    assert r.ok, r.report()


def test_ioctl_argument_sees_the_callers_mappings() -> None:
    seen: list[int] = []

    def arg(maps: tuple[object, ...]) -> st.SearchStrategy[object]:
        seen.append(len(maps))
        return st.none()

    r = fuzz_driver(HelloDriver, ioctls={1: arg}, examples=10, seed=0)
    assert r.ok
    assert seen and max(seen) >= 2  # the driver's mapping and the bystander's


def test_driver_machine_finds_and_reports_the_reproducer() -> None:
    machine = driver_machine(broken.RefuseLeakDriver)
    with pytest.raises(FailureFound) as info:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=100,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate, Phase.shrink],
            ),
        )
    f = info.value.failure
    assert f.contract == "leak"
    assert "reproducer:" in str(info.value)
    _reproduces(f)


TestHelloMachine = driver_machine(HelloDriver, ioctls={1: st.none()}).TestCase
TestHelloMachine.settings = settings(
    max_examples=5, stateful_step_count=10, deadline=None, database=None
)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="examples"):
        fuzz_driver(HelloDriver, examples=0)
    with pytest.raises(TypeError, match="not callable"):
        fuzz_driver(42)  # type: ignore[arg-type]


def test_factory_must_make_a_driver() -> None:
    r = fuzz_driver(lambda: object(), examples=5, seed=0, max_failures=1)
    assert isinstance(r.failures[0].error, TypeError)
    assert "not a FileOperations" in str(r.failures[0].error)


# ------------------------------------------------------------------------------ the CLI


def test_cli_reports_failures_and_exits_1() -> None:
    out = io.StringIO()
    rc = main(
        ["fuzz", "tests.fuzz.broken:RefuseLeakDriver", "--examples", "60", "--seed", "0"], out
    )
    text = out.getvalue()
    assert rc == 1
    assert "failure 1: " in text and "contract: leak" in text
    assert "def test_fuzz_leak() -> None:" in text
    assert "from tests.fuzz.broken import RefuseLeakDriver" in text
    assert "hooks run: " in text and "refuseleak->mmap" in text
    assert "contracts exercised" in text


def test_cli_clean_driver_exits_0() -> None:
    out = io.StringIO()
    rc = main(
        [
            "fuzz",
            "examples.tutorial:HelloDriver",
            "--examples",
            "5",
            "--seed",
            "1",
            "--ioctl",
            "1=st.none()",
            "--ioctl",
            "0x2=st.integers(0, PAGE_SIZE)",
        ],
        out,
    )
    assert rc == 0, out.getvalue()
    assert "0 distinct failure(s)" in out.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["nomodule"],
        ["no.such.module:X"],
        ["examples.tutorial:Nope"],
        ["examples.tutorial:HelloDriver", "--ioctl", "1"],
        ["examples.tutorial:HelloDriver", "--ioctl", "x=st.none()"],
        ["examples.tutorial:HelloDriver", "--ioctl", "1=st.bogus()"],
        ["examples.tutorial:HelloDriver", "--examples", "0"],
    ],
)
def test_cli_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fuzz", *argv], io.StringIO())
    assert info.value.code == 2


def test_docs_list_every_rule() -> None:
    """docs/fuzzing.md's table of rules names exactly the state machine's rules."""
    import re
    from pathlib import Path

    from safemm.fuzz._rules import OPERATIONS

    text = (Path(__file__).resolve().parents[2] / "docs" / "fuzzing.md").read_text()
    table = text.split("| rule |", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert documented == [*OPERATIONS, "race"]
