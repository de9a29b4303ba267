"""Throughput against latency as an SVG: one line per saga target through its ramp's steps.

x: completed sagas/s; y: p99 saga latency (ms); both logarithmic, since the engines differ by orders of
magnitude. The latency budget (250 ms) is a dashed line; a step within the budget is a filled dot, one over
it an open circle. Only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from panel_svg import PALETTE

WIDTH, HEIGHT = 860, 460
LEFT, TOP, RIGHT, BOTTOM = 80, 56, 700, 400
BUDGET_MS = 250.0


def _decades(low: float, high: float) -> list[float]:
    start, end = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [10.0**e for e in range(start, end + 1)]


class LogAxis:
    """Maps a value to a pixel on a logarithmic axis spanning whole decades."""

    def __init__(self, values: Sequence[float], first_px: float, last_px: float) -> None:
        positive = [v for v in values if v > 0] or [1.0]
        self.ticks = _decades(min(positive), max(positive))
        if len(self.ticks) < 2:
            self.ticks.append(self.ticks[0] * 10)
        self.low, self.high = math.log10(self.ticks[0]), math.log10(self.ticks[-1])
        self.first_px, self.last_px = first_px, last_px

    def __call__(self, value: float) -> float:
        fraction = (math.log10(max(value, 10**self.low)) - self.low) / (self.high - self.low)
        return self.first_px + fraction * (self.last_px - self.first_px)


def _label(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def throughput_latency_svg(targets: Sequence[dict[str, Any]], title: str) -> str:
    """The SVG of every target's steps (``run.py``'s per-target results)."""
    points = [(s["sagas_per_s"], s["saga_ms"]["p99"]) for t in targets for s in t["steps"] if s["sagas_per_s"] > 0]
    x = LogAxis([p[0] for p in points] or [1.0, 10.0], LEFT, RIGHT)
    y = LogAxis([p[1] for p in points] + [BUDGET_MS], BOTTOM, TOP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#181b1f"/>',
        f'<text x="{LEFT}" y="28" fill="#d8d9da" font-size="15">{escape(title)}</text>',
    ]
    for tick in x.ticks:
        px = x(tick)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{BOTTOM}" stroke="#2c3235"/>')
        out.append(f'<text x="{px:.1f}" y="{BOTTOM + 18}" fill="#9fa7b3" text-anchor="middle">{_label(tick)}</text>')
    for tick in y.ticks:
        py = y(tick)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{RIGHT}" y2="{py:.1f}" stroke="#2c3235"/>')
        out.append(f'<text x="{LEFT - 8}" y="{py + 4:.1f}" fill="#9fa7b3" text-anchor="end">{_label(tick)}</text>')
    budget = y(BUDGET_MS)
    out += [
        f'<line x1="{LEFT}" y1="{budget:.1f}" x2="{RIGHT}" y2="{budget:.1f}" stroke="#f2495c" stroke-dasharray="6 4"/>',
        f'<text x="{RIGHT - 4}" y="{budget - 6:.1f}" fill="#f2495c" text-anchor="end">p99 budget 250 ms</text>',
        f'<text x="{(LEFT + RIGHT) / 2}" y="{BOTTOM + 40}" fill="#d8d9da" text-anchor="middle">'
        "completed sagas/s (log)</text>",
        f'<text x="22" y="{(TOP + BOTTOM) / 2}" fill="#d8d9da" text-anchor="middle" '
        f'transform="rotate(-90 22 {(TOP + BOTTOM) / 2})">p99 saga latency, ms (log)</text>',
    ]
    for index, target in enumerate(targets):
        colour = PALETTE[index % len(PALETTE)]
        steps = sorted((s for s in target["steps"] if s["sagas_per_s"] > 0), key=lambda s: s["rate"])
        path = " ".join(f"{x(s['sagas_per_s']):.1f},{y(s['saga_ms']['p99']):.1f}" for s in steps)
        if path:
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for s in steps:
            fill = colour if s["passed"] else "#181b1f"
            out.append(
                f'<circle cx="{x(s["sagas_per_s"]):.1f}" cy="{y(s["saga_ms"]["p99"]):.1f}" r="4" fill="{fill}" '
                f'stroke="{colour}" stroke-width="2"><title>{escape(target["target"])}: offered {s["rate"]}/s, '
                f"{s['sagas_per_s']} sagas/s, p99 {s['saga_ms']['p99']} ms</title></circle>"
            )
        legend_y = TOP + 8 + index * 22
        out.append(f'<line x1="{RIGHT + 20}" y1="{legend_y}" x2="{RIGHT + 44}" y2="{legend_y}" stroke="{colour}" '
                   'stroke-width="3"/>')  # fmt: skip
        out.append(f'<text x="{RIGHT + 50}" y="{legend_y + 4}" fill="#d8d9da">{escape(target["target"])}</text>')
    legend_y = TOP + 8 + len(targets) * 22 + 10
    out.append(f'<text x="{RIGHT + 20}" y="{legend_y}" fill="#9fa7b3">filled: within budget</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
