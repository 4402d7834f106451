"""Put the explorer's output for the eight races of a real run into ``docs/concurrency.md``.

Each race below runs the explorer exactly as the page shows, and its report replaces the
body of the page's block::

    <!-- race:N -->
    ```text
    ...
    ```
    <!-- /race -->

The only text that differs between runs is the elapsed time of the summary line ("in 0.6s"),
which :func:`normalise` masks when the page is checked. Usage (from the repository root):
``python -m tests.concurrency.render`` checks the page (exit 1 and a diff if it is stale);
``--write`` rewrites it. ``tests/concurrency/test_docs.py`` runs the check.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path

from safemm.explore import Exploration, explore

DOC = Path(__file__).resolve().parents[2] / "docs" / "concurrency.md"
BLOCK = re.compile(r"(<!-- race:(\d) -->\n```text\n)(.*?)(```\n<!-- /race -->)", re.S)


def _race1() -> Exploration:
    from .race_rig import kernels
    from .test_race1_reinsert_after_relock import race1_broken

    return explore(race1_broken, strategy="pct", schedules=300, kernel_factory=kernels())


def _race2() -> Exploration:
    from .race_rig import kernels
    from .test_race2_vma_after_unlock import race2_kept_pointer

    return explore(race2_kept_pointer, strategy="pct", schedules=300, kernel_factory=kernels())


def _race3() -> Exploration:
    from .race_rig import kernels
    from .test_race3_insert_needs_mixedmap import race3

    outcomes: list[str] = []
    return explore(
        race3(outcomes, mixedmap=False),
        strategy="random",
        schedules=200,
        kernel_factory=kernels(strict=False, panic_on_warn=False),
    )


def _race4() -> Exploration:
    from .race_rig import kernels
    from .test_race4_shrinker_vs_exit import race4

    scans: list[str] = []
    return explore(
        race4(scans, check=False), strategy="pct", schedules=100, kernel_factory=kernels()
    )


def _race5() -> Exploration:
    from .races import small_kernel
    from .test_race_lock_order import _scenario

    return explore(
        _scenario(broken=True), strategy="pct", schedules=100, kernel_factory=small_kernel
    )


def _race6() -> Exploration:
    from .races import small_kernel
    from .test_race_check_then_act import _scenario

    return explore(
        _scenario(broken=True), strategy="pct", schedules=100, kernel_factory=small_kernel
    )


def _race7() -> Exploration:
    from .races import small_kernel
    from .test_race_fault_reclaim import NoPageLockReclaimDriver, _scenario

    return explore(
        _scenario(NoPageLockReclaimDriver),
        strategy="pct",
        schedules=300,
        kernel_factory=small_kernel,
    )


def _race8() -> Exploration:
    from .races import small_kernel
    from .test_race_lru_reclaim import LookFirstDriver, _scenario

    return explore(
        _scenario(LookFirstDriver), strategy="pct", schedules=300, kernel_factory=small_kernel
    )


RACES: dict[str, Callable[[], Exploration]] = {
    "1": _race1,
    "2": _race2,
    "3": _race3,
    "4": _race4,
    "5": _race5,
    "6": _race6,
    "7": _race7,
    "8": _race8,
}


def normalise(text: str) -> str:
    """Mask what differs between two runs of the same exploration: the elapsed time."""
    return re.sub(r" in \d+\.\ds;", " in …s;", text)


def render(page: str) -> str:
    """The page with every race block replaced by a fresh run's report."""

    def sub(m: re.Match[str]) -> str:
        report = RACES[m.group(2)]().report()
        return m.group(1) + report.rstrip() + "\n" + m.group(4)

    return BLOCK.sub(sub, page)


def main(argv: list[str]) -> int:
    """Check (default) or rewrite (``--write``) the page."""
    page = DOC.read_text(encoding="utf-8")
    fresh = render(page)
    if "--write" in argv:
        DOC.write_text(fresh, encoding="utf-8")
        return 0
    if normalise(fresh) == normalise(page):
        return 0
    diff = difflib.unified_diff(
        normalise(page).splitlines(), normalise(fresh).splitlines(), "docs", "run", lineterm=""
    )
    print("\n".join(diff))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
