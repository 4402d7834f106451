"""Sphinx extension: the ``safemm-cli`` directive, the command-line reference from the parsers.

The directive runs ``safemm.cli.main`` with ``--help`` and keeps, instead of printing it, the
``argparse.ArgumentParser`` the command builds for the arguments; the page is that parser's
help, and each subcommand's. Nothing of the help text is copied into the documentation, so the
page changes when the parsers do. Subcommands are found either as argparse subparsers of the
top-level parser or, when the top-level parser takes the command as a positional argument
with choices and each command builds its own parser, by running ``safemm COMMAND --help``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.parsing import nested_parse_to_nodes

#: Width of the rendered help (argparse wraps to the terminal width, read from COLUMNS).
HELP_WIDTH = 92


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def capture(argv: list[str]) -> argparse.ArgumentParser:
    """The parser that ``safemm.cli.main(argv)`` parses its arguments with."""
    from safemm.cli import main

    original = argparse.ArgumentParser.parse_known_args

    def intercept(
        self: argparse.ArgumentParser,
        args: object = None,
        namespace: object = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        raise _Captured(self)

    argparse.ArgumentParser.parse_known_args = intercept  # type: ignore[method-assign,assignment]
    try:
        main(argv)
    except _Captured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]
    raise RuntimeError(f"safemm {' '.join(argv)} parsed no arguments")


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(command line, parser)`` for ``safemm`` and each of its subcommands."""
    top = capture(["--help"])
    yield top.prog, top
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub.prog, sub
            return
    for action in top._actions:
        if not action.option_strings and action.choices is not None:
            for name in action.choices:
                yield f"{top.prog} {name}", capture([str(name), "--help"])
            return


class SafemmCli(SphinxDirective):
    """``.. safemm-cli::`` — one section per command, with its usage and options."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        os.environ["COLUMNS"] = str(HELP_WIDTH)
        text: list[str] = []
        for title, parser in commands():
            text += [title, "-" * len(title), "", ".. code-block:: text", ""]
            text += ["   " + line for line in parser.format_help().rstrip().splitlines()]
            text.append("")
        return list(
            nested_parse_to_nodes(self.state, "\n".join(text), allow_section_headings=True)
        )


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("safemm-cli", SafemmCli)
    return {"parallel_read_safe": True}
