"""The ``safemm`` command.

- ``safemm demo [--seed N] [--json] [--plot FILE] [--workload NAME ...]`` — run the three
  binder-style drivers over the workloads and print the comparison
  (:mod:`safemm.demo.report`).
- ``safemm conformance ...`` — the differential test against the running kernel
  (:func:`safemm.conformance.compare.main`; its own options).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["main"]


def _demo(argv: Sequence[str], out: TextIO) -> int:
    from .demo.plot import PlotError, write_plot
    from .demo.report import render_json, render_text, run_demo
    from .demo.workloads import WORKLOADS

    parser = argparse.ArgumentParser(
        prog="safemm demo",
        description="Compare three binder-style drivers (eager-insert, insert-on-receive, "
        "fault-and-unmap) on the same deterministic workloads.",
    )
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
        choices=list(WORKLOADS),
        help=f"run only these (default: all of {', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--no-times", action="store_true", help="leave the model times out (fully deterministic)"
    )
    args = parser.parse_args(list(argv))
    if args.plot and not args.plot.lower().endswith(".svg"):
        parser.error(f"--plot {args.plot}: the chart is an .svg file (convert it for a PNG)")
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


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``safemm`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(
        prog="safemm",
        description="A checked model of the Linux mm and a typestate API after the Rust "
        "kernel crate.",
    )
    parser.add_argument("command", choices=["demo", "conformance"], help="what to run")
    if not args or args[0] not in ("demo", "conformance"):
        parser.parse_args(args[:1])  # prints usage and exits
        return 2
    if args[0] == "conformance":
        from .conformance.compare import main as conformance_main

        return conformance_main(args[1:], out)
    return _demo(args[1:], out)


if __name__ == "__main__":
    sys.exit(main())
