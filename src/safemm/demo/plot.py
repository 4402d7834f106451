"""The per-transaction costs of a demo run as a chart, in SVG written by hand: one renderer,
no dependency. A browser shows it; ``rsvg-convert -o costs.png costs.svg`` (librsvg) or
Inkscape turn it into a PNG."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from .drivers import STRATEGIES
from .report import COSTS, RunResult

__all__ = ["PlotError", "render_svg", "write_plot"]

#: One colour per strategy (colour-blind safe: Okabe-Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")


class PlotError(Exception):
    """The chart cannot be written (a file name that is not ``.svg``)."""


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}".rstrip("0").rstrip(".") or "0"


def _costs(times: bool) -> list[tuple[str, Callable[[RunResult], float]]]:
    return [(label, value) for label, value in COSTS if times or "time" not in label]


def render_svg(results: Sequence[RunResult], seed: int, times: bool = True) -> str:
    """A column of bar charts, one per cost; in each, a group of bars per workload and a bar
    per strategy. ``times=False`` leaves the model-time panel out."""
    costs = _costs(times)
    strategies = list(STRATEGIES)
    workloads = list(dict.fromkeys(r.workload for r in results))
    by = {(r.workload, r.strategy): r for r in results}
    width, panel_h, top, left, right = 920, 190, 70, 60, 20
    plot_h = panel_h - 60
    height = top + panel_h * len(costs) + 20
    group_w = (width - left - right) / max(1, len(workloads))
    bar_w = group_w * 0.8 / len(strategies)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">safemm demo: cost per '
        f"transaction by strategy (seed {seed})</text>",
    ]
    for i, s in enumerate(strategies):
        lx = left + i * 200
        parts.append(f'<rect x="{lx}" y="36" width="12" height="12" fill="{COLOURS[i]}"/>')
        parts.append(f'<text x="{lx + 17}" y="46">{escape(s)}</text>')
    for p, (label, value) in enumerate(costs):
        y0 = top + p * panel_h
        base = float(y0 + 20 + plot_h)
        vals = {(w, s): value(by[w, s]) for w in workloads for s in strategies if (w, s) in by}
        vmax = max(vals.values(), default=0.0) or 1.0
        scale = vmax * 1.15  # headroom for the value labels
        parts.append(f'<text x="{left}" y="{y0 + 12}" font-weight="bold">{escape(label)}</text>')
        parts.append(
            f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#333"/>'
        )
        for frac in (0.5, 1.0):
            y = base - plot_h * frac / 1.15
            parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
            )
            tick = _fmt(vmax * frac)
            parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
        for g, w in enumerate(workloads):
            gx = left + g * group_w + group_w * 0.1
            for i, s in enumerate(strategies):
                v = vals.get((w, s), 0.0)
                h = plot_h * v / scale
                x = gx + i * bar_w
                parts.append(
                    f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w - 2:.1f}" '
                    f'height="{h:.1f}" fill="{COLOURS[i]}"><title>{escape(w)}, {escape(s)}: '
                    f"{v:.3f}</title></rect>"
                )
                parts.append(
                    f'<text x="{x + bar_w / 2 - 1:.1f}" y="{base - h - 3:.1f}" '
                    f'text-anchor="middle" font-size="9">{_fmt(v)}</text>'
                )
            parts.append(
                f'<text x="{gx + group_w * 0.4:.1f}" y="{base + 14}" '
                f'text-anchor="middle">{escape(w)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_plot(
    results: Sequence[RunResult], seed: int, path: str | Path, times: bool = True
) -> None:
    """Write the chart to ``path``, which must name an ``.svg`` file."""
    path = Path(path)
    if path.suffix.lower() != ".svg":
        raise PlotError(
            f"{path}: the chart is written as SVG (name it FILE.svg); for a PNG, convert the "
            "SVG, e.g. `rsvg-convert -o costs.png costs.svg`"
        )
    path.write_text(render_svg(results, seed, times))
