"""docs/concurrency.md shows what the explorer really prints for the eight races."""

from __future__ import annotations

from . import render


def test_race_reports_on_the_page_are_a_real_run() -> None:
    page = render.DOC.read_text(encoding="utf-8")
    blocks = render.BLOCK.findall(page)
    assert sorted(b[1] for b in blocks) == sorted(render.RACES), "a race block is missing"
    fresh = render.render(page)
    assert render.normalise(fresh) == render.normalise(page), (
        "docs/concurrency.md is stale: run python -m tests.concurrency.render --write"
    )
    for _, _, body, _ in blocks:
        assert "failure 1:" in body and "schedule: S1." in body
