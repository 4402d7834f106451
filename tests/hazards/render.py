"""Put the splats of a real run into ``docs/hazards.md``, so the page stays true.

Every scenario registered with :func:`~tests.hazards.support.doc_splat` runs once, in a fresh
interpreter and a fixed order (VMA, file and inode numbers are global counters, so the text is
reproducible only that way), and its dmesg text replaces the body of the page's block::

    <!-- splat:NAME -->
    ```text
    ...
    ```
    <!-- /splat -->

Usage (from the repository root): ``python -m tests.hazards.render`` checks the page (exit 1
and a diff if it is stale); ``--write`` rewrites it.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from pathlib import Path

#: The hazard test modules, in the order their scenarios run.
MODULES = (
    "test_h1_insert_without_mixedmap",
    "test_h2_insert_pfnmap",
    "test_h3_foreign_vma",
    "test_h4_revoke",
    "test_h5_reclaim_sleep",
    "test_h6_h7_vma_lifecycle",
    "test_h8_uffd_mixedmap",
    "test_h9_access_after_insert",
    "test_h10_flags_lock",
    "test_h11_pfn_outlives_page",
    "test_h12_stale_vma",
    "test_h13_zap_vma_ptes",
    "test_sched_atomic_rcu",
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "hazards.md"
BLOCK = re.compile(r"<!-- splat:(?P<name>[\w-]+) -->\n.*?<!-- /splat -->", re.S)


def render_all() -> dict[str, str]:
    """Run every registered scenario; its splat text by name."""
    package = __package__ or "tests.hazards"
    for module in MODULES:
        importlib.import_module(f"{package}.{module}")
    support = importlib.import_module(f"{package}.support")
    scenarios: dict[str, object] = support.DOC_SPLATS
    out: dict[str, str] = {}
    for name, fn in scenarios.items():
        assert callable(fn)
        text = fn()
        assert isinstance(text, str)
        out[name] = text
    return out


def fill(page: str, splats: dict[str, str]) -> str:
    """``page`` with every splat block's body replaced by the rendered text."""
    missing = set(splats) - {m.group("name") for m in BLOCK.finditer(page)}
    if missing:
        raise KeyError(f"docs/hazards.md has no block for: {', '.join(sorted(missing))}")

    def body(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in splats:
            raise KeyError(f"docs/hazards.md block {name!r} has no scenario")
        return f"<!-- splat:{name} -->\n```text\n{splats[name]}\n```\n<!-- /splat -->"

    return BLOCK.sub(body, page)


def main(argv: list[str]) -> int:
    """Check (default) or ``--write`` the hazards page."""
    page = DOC.read_text()
    new = fill(page, render_all())
    if "--write" in argv:
        DOC.write_text(new)
        return 0
    if new != page:
        sys.stdout.writelines(
            difflib.unified_diff(
                page.splitlines(True), new.splitlines(True), "docs/hazards.md", "rendered"
            )
        )
        print("\ndocs/hazards.md is stale: run `python -m tests.hazards.render --write`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
