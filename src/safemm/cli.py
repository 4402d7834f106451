"""The ``safemm`` command: one argparse parser, a subcommand each.

- ``safemm demo [--seed N] [--json] [--plot FILE] [--workload NAME ...] [--no-times]`` — run
  the four binder-style drivers over the workloads and print the comparison
  (:mod:`safemm.demo.report`).
- ``safemm conformance [-n N] [--seed S] [--max-steps K] [--show N] [--max-shrinks N]
  [--selftests] [--kernel-only]`` — the differential test against the running kernel
  (:func:`safemm.conformance.compare.run_command`).
- ``safemm explore FILE.py::scenario [--strategy S] [--schedules N] [--preemptions K]
  [--seed S] [--time-limit SECONDS] [--replay TOKEN]`` — search the interleavings of a
  concurrent scenario (:mod:`safemm.explore`); exit status 1 when a schedule failed.
- ``safemm check PATH... [--mypy] [--strict] [--config-file FILE]`` — sleeping in atomic
  context, statically (:mod:`safemm.check`); errors in mypy's format, exit status 1 on any
  error.
- ``safemm fuzz MODULE:FACTORY [--examples N] [--seed S] [--concurrency]
  [--ioctl NUM=STRATEGY ...]`` — fuzz a driver (:mod:`safemm.fuzz`): a progress line while
  it runs, then each distinct failure once (contract, splat, reproducer) and the coverage
  summary; exit status 1 on any failure.

A usage error (no command, an unknown option, an argument the command refuses) prints the
usage of the command and exits with status 2. Each command imports the code it runs only when
it runs, so ``safemm check`` does not pay for hypothesis or the conformance suite, and the
optional dependencies (hypothesis for ``fuzz``, mypy for ``check``) are needed only by their
command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .fuzz import IoctlArg, UserMapping
    from .model.kernel import Kernel

__all__ = ["SUBCOMMANDS", "Subcommand", "build_parser", "main"]

#: What a subcommand runs: the parsed arguments and where to print; returns the exit status.
Command = Callable[[argparse.Namespace, TextIO], int]


class UsageError(Exception):
    """An argument the parser accepted but the command refuses: reported as argparse reports
    its own errors (the command's usage, the message, exit status 2)."""


class _LazyChoices:
    """The names an option accepts, loaded from the module that defines them only when the
    option is given or its help printed: building the parser imports no command's code.

    argparse reads ``choices`` with ``in`` (checking a value) and by iterating (an error
    message, ``%(choices)s`` in a help text); every option using this sets a ``metavar``, so
    the usage line never iterates it.
    """

    __slots__ = ("_load", "_names")

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._names: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._names is None:
            self._names = tuple(self._load())
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())


# --------------------------------------------------------------------------------------------
# demo


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the per-transaction costs as an SVG chart (FILE.svg)",
    )
    parser.add_argument(
        "--workload",
        nargs="+",
        metavar="NAME",
        choices=_LazyChoices(_workload_names),
        help="run only these (default: all of %(choices)s)",
    )
    parser.add_argument(
        "--no-times", action="store_true", help="leave the model times out (fully deterministic)"
    )


def _workload_names() -> Iterable[str]:
    from .demo.workloads import WORKLOADS

    return WORKLOADS


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from .demo.plot import PlotError, write_plot
    from .demo.report import render_json, render_text, run_demo

    if args.plot and not args.plot.lower().endswith(".svg"):
        raise UsageError(f"--plot {args.plot}: the chart is an .svg file (convert it for a PNG)")
    results = run_demo(args.seed, args.workload)
    times = not args.no_times
    if args.json:
        out.write(render_json(results, args.seed, times))
    else:
        out.write(render_text(results, args.seed, times))
    if args.plot:
        try:
            write_plot(results, args.seed, args.plot, times)
        except PlotError as e:
            print(f"safemm demo: {e}", file=sys.stderr)
            return 2
        if not args.json:
            out.write(f"chart written to {args.plot}\n")
    return 0


# --------------------------------------------------------------------------------------------
# conformance


def _conformance_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--sequences", type=int, default=2000, help="number of sequences (default 2000)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random sequences (default 0)"
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="longest sequence (default 20)"
    )
    parser.add_argument("--show", type=int, default=5, help="mismatches to print (default 5)")
    parser.add_argument(
        "--max-shrinks", type=int, default=25, help="mismatches to shrink (default 25; 0: none)"
    )
    parser.add_argument(
        "--selftests",
        action="store_true",
        help="run the scenarios ported from the kernel's selftests instead of random ones",
    )
    parser.add_argument(
        "--kernel-only",
        action="store_true",
        help="run the sequences on the kernel only (checks the executor)",
    )


def _conformance(args: argparse.Namespace, out: TextIO) -> int:
    from .conformance import compare
    from .conformance.generator import MAX_STEPS

    max_steps: int = MAX_STEPS if args.max_steps is None else args.max_steps
    return compare.run_command(
        sequences=args.sequences,
        seed=args.seed,
        max_steps=max_steps,
        show=args.show,
        max_shrinks=args.max_shrinks,
        kernel_only=args.kernel_only,
        selftests=args.selftests,
        out=out,
    )


# --------------------------------------------------------------------------------------------
# explore


def _explore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="FILE.py::function")
    parser.add_argument(
        "--strategy",
        choices=_LazyChoices(_strategy_names),
        default="pct",
        metavar="STRATEGY",
        help="how schedules are chosen: %(choices)s (default %(default)s)",
    )
    parser.add_argument("--schedules", type=int, default=1000, help="at most N schedules")
    parser.add_argument(
        "--preemptions", type=int, default=2, help="preemption bound (dfs) or PCT depth - 1"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--replay", metavar="TOKEN", help="re-run one schedule exactly")


def _load_scenario(spec: str) -> Callable[[Kernel], object]:
    """``FILE.py::name`` → the function ``name`` defined in FILE.py."""
    import importlib.util
    from pathlib import Path

    path, sep, name = spec.partition("::")
    if not sep or not name or not path.endswith(".py"):
        raise ValueError(f"{spec!r}: name a scenario as FILE.py::function")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    mod_spec = importlib.util.spec_from_file_location(f"_safemm_scenario_{file.stem}", file)
    if mod_spec is None or mod_spec.loader is None:
        raise ValueError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(mod_spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        mod_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    fn: object = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"{path} has no function {name!r}")

    def scenario(kernel: Kernel) -> object:
        assert callable(fn)
        return fn(kernel)

    return scenario


def _strategy_names() -> Iterable[str]:
    from .explore import STRATEGIES

    return STRATEGIES


def _explore(args: argparse.Namespace, out: TextIO) -> int:
    from .explore import Exploration, explore, replay

    try:
        scenario = _load_scenario(args.scenario)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.replay:
        try:
            replay(scenario, args.replay)
        except Exception as e:
            out.write(f"{type(e).__name__}: {e}\n")
            return 1
        out.write("the schedule ran as recorded and nothing failed\n")
        return 0

    def progress(ex: Exploration) -> None:
        print(
            f"\r{ex.schedules_run} schedules, {len(ex.failures)} failure(s), {ex.elapsed:.0f}s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    try:
        ex = explore(
            scenario,
            strategy=args.strategy,
            schedules=args.schedules,
            preemptions=args.preemptions,
            seed=args.seed,
            time_limit=args.time_limit,
            progress=progress,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if ex.elapsed >= 1.0:
        print(file=sys.stderr)
    out.write(ex.report() + "\n")
    return 0 if ex.ok else 1


# --------------------------------------------------------------------------------------------
# check


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, directories, packages")
    parser.add_argument(
        "--mypy", action="store_true", help="run mypy (the project's configuration) first"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also report calls in atomic context that cannot be resolved (assumed not to "
        "sleep otherwise)",
    )
    parser.add_argument("--config-file", help="the mypy configuration file to use")


def _check(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from mypy import api
    except ImportError:
        print("safemm check needs mypy: pip install 'safemm[check]'", file=sys.stderr)
        return 2
    from .check import check

    extra = ["--config-file", args.config_file] if args.config_file else []
    status = 0
    if args.mypy:
        stdout, stderr, status = api.run([*extra, *args.paths])
        out.write(stdout)
        if stderr:
            print(stderr, end="", file=sys.stderr)
        if status == 2:
            return 2
    result = check(args.paths, strict=args.strict, mypy_args=extra)
    for line in result.blocking:
        print(line, file=sys.stderr)
    for e in result.errors:
        out.write(e.render() + "\n")
    n = len(result.errors)
    if n:
        files = len({e.path for e in result.errors})
        out.write(
            f"safemm check: found {n} error{'s' * (n != 1)} in {files} file"
            f"{'s' * (files != 1)} ({result.modules} modules checked)\n"
        )
    elif not result.blocking:
        out.write(
            f"safemm check: no sleeping calls in atomic context ({result.modules} "
            "modules checked)\n"
        )
    return max(result.status, 1 if status else 0)


# --------------------------------------------------------------------------------------------
# fuzz


def _fuzz_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("factory", help="MODULE:FACTORY, e.g. examples.tutorial:HelloDriver")
    parser.add_argument("--examples", type=int, default=200, help="programs (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--concurrency", action="store_true", help="also run races")
    parser.add_argument(
        "--ioctl",
        action="append",
        default=[],
        metavar="NUM=STRATEGY",
        help="an ioctl and its argument: a strategy expression over `st` "
        "(e.g. 0x1=st.integers(0, 9)) or MODULE:NAME of a strategy or of a function of "
        "the caller's mappings; repeat for each ioctl",
    )


def _load_object(spec: str, what: str) -> object:
    """``MODULE:NAME`` → the object (the current directory is importable, as with
    ``python -m``)."""
    import importlib
    import os

    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{spec!r}: name the {what} as MODULE:NAME")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{spec}: cannot import {module}: {e}") from None
    obj: object = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"{spec}: {module} has no {name!r}")
    return obj


def _ioctl_spec(text: str) -> tuple[int, object]:
    """``NUM=STRATEGY``: a number (``0x...`` too) and a strategy expression over ``st``
    (``st.integers(0, 9)``) or a ``MODULE:NAME`` naming a strategy or a function of the
    caller's mappings."""
    from hypothesis import strategies as st

    from .model.mman import PAGE_SIZE

    num, sep, expr = text.partition("=")
    if not sep or not expr:
        raise ValueError(f"--ioctl {text!r}: write NUM=STRATEGY")
    try:
        cmd = int(num, 0)
    except ValueError:
        raise ValueError(f"--ioctl {text!r}: {num!r} is not a number") from None
    if ":" in expr and not expr.startswith("st."):
        return cmd, _load_object(expr, "strategy")
    try:
        value: object = eval(expr, {"st": st, "PAGE_SIZE": PAGE_SIZE})
    except Exception as e:
        raise ValueError(f"--ioctl {text!r}: {type(e).__name__}: {e}") from None
    return cmd, value


def _mappings_strategy(fn: Callable[[tuple[UserMapping, ...]], object]) -> IoctlArg:
    """A ``--ioctl`` function of the caller's mappings, checked to return a strategy."""
    from hypothesis.strategies import SearchStrategy

    def arg(maps: tuple[UserMapping, ...]) -> SearchStrategy[object]:
        s = fn(maps)
        if not isinstance(s, SearchStrategy):
            raise TypeError(f"{fn!r} returned {s!r}, not a strategy")
        return s

    return arg


def _fuzz(args: argparse.Namespace, out: TextIO) -> int:
    from hypothesis.strategies import SearchStrategy

    from .fuzz import FuzzReport, fuzz_driver

    ioctls: dict[int, IoctlArg] = {}
    try:
        factory = _load_object(args.factory, "driver factory")
        for text in args.ioctl:
            cmd, strategy = _ioctl_spec(text)
            if isinstance(strategy, SearchStrategy):
                ioctls[cmd] = strategy
            elif callable(strategy):
                ioctls[cmd] = _mappings_strategy(strategy)
            else:
                raise ValueError(f"--ioctl {text!r}: not a strategy or a function")
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not callable(factory):
        raise UsageError(f"{args.factory} is not callable")
    if args.examples < 1:
        raise UsageError("--examples must be at least 1")

    def progress(r: FuzzReport) -> None:
        c = r.coverage
        print(
            f"\r{c.examples} programs, {c.steps} steps, {len(r.failures)} failure(s), "
            f"{r.elapsed:.0f}s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    report = fuzz_driver(
        factory,
        ioctls=ioctls or None,
        examples=args.examples,
        seed=args.seed,
        concurrency=args.concurrency,
        progress=progress,
    )
    if report.elapsed >= 1.0:
        print(file=sys.stderr)
    out.write(report.report() + "\n")
    return 0 if report.ok else 1


# --------------------------------------------------------------------------------------------
# the parser


@dataclass(frozen=True)
class Subcommand:
    """One ``safemm`` command: its name, the line ``safemm --help`` shows for it, the
    description its own ``--help`` shows, the function that adds its options, and the
    function that runs it."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Command


#: The commands, in the order ``safemm --help`` lists them.
SUBCOMMANDS = (
    Subcommand(
        "demo",
        "compare the four binder-style drivers on the same workloads",
        "Compare four binder-style drivers (eager-insert, insert-on-receive, "
        "fault-and-unmap, lru-reclaim) on the same deterministic workloads.",
        _demo_arguments,
        _demo,
    ),
    Subcommand(
        "conformance",
        "differential test of the model against the running Linux kernel",
        "Differential test of the safemm model against the running Linux kernel.",
        _conformance_arguments,
        _conformance,
    ),
    Subcommand(
        "explore",
        "search the interleavings of a concurrent scenario for failures",
        "Search the interleavings of a concurrent scenario (a function taking a "
        "Kernel that calls kernel.concurrently) for failures; print each distinct failure "
        "once with its schedule token and interleaving.",
        _explore_arguments,
        _explore,
    ),
    Subcommand(
        "check",
        "find sleeping calls in atomic context, statically",
        "Find sleeping calls in atomic context (spinlocks, RCU read-side sections, "
        "list_lru isolate callbacks) before the code runs. Errors are printed the way mypy "
        "prints them; exit status 1 on any error.",
        _check_arguments,
        _check,
    ),
    Subcommand(
        "fuzz",
        "fuzz a driver: hostile user space, memory pressure, races",
        "Fuzz a driver: drive FACTORY() (a FileOperations) the way hostile user "
        "space would, with memory pressure, failing allocations and (--concurrency) races; "
        "print each distinct failure once with a reproducer, and what was covered.",
        _fuzz_arguments,
        _fuzz,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``safemm`` parser: a subparser per :data:`SUBCOMMANDS` entry, which records the
    function that runs the command (``run``) and the subparser itself (``command_parser``,
    for the usage errors the command reports)."""
    parser = argparse.ArgumentParser(
        prog="safemm",
        description="A checked model of the Linux mm and a typestate API after the Rust "
        "kernel crate.",
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for command in SUBCOMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run, command_parser=sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``safemm`` console script; returns the exit status.

    Args:
        argv: the arguments after ``safemm``; ``sys.argv[1:]`` by default.
        out: where a command prints its results; stdout by default (progress and errors go
            to stderr).

    Returns:
        The command's exit status. A usage error raises SystemExit with status 2, as
        argparse does.
    """
    out = sys.stdout if out is None else out
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    run: Command = args.run
    try:
        return run(args, out)
    except UsageError as e:
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.error(str(e))


if __name__ == "__main__":
    sys.exit(main())
