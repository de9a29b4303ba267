"""Draw one Grafana dashboard panel from real Prometheus data as an SVG (Grafana cannot run here).

The panel's own targets are read from its dashboard JSON (charts/checkout-operator/dashboards/), their Grafana
variables replaced, and run against Prometheus' range API; exemplars come from its exemplar API. Optionally the
platform is driven first: checkouts through the gateway for a while (mostly paid, some declined, some whose
payment never answers).

    uv run python bench/panel_svg.py --dashboard checkout-overview --panel "Saga latency (start to terminal state)" \
        --match platform=<instance> --minutes 15 --out docs/images/saga-latency.svg

Only the standard library, httpx and promql-parser: lines, axes, a legend and exemplar dots, in Grafana's dark
palette.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
import promql_parser

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "charts" / "checkout-operator" / "dashboards"
PALETTE = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0")
WIDTH, HEIGHT = 960, 420
PLOT = (70, 50, 930, 330)  # left, top, right, bottom
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


@dataclass
class Series:
    """One line: its legend and its points (unix seconds, value)."""

    legend: str
    points: list[tuple[float, float]]


def substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in values:
            raise SystemExit(f"the panel uses ${name}: give it with --var {name}=VALUE")
        return values[name]

    return VARIABLE.sub(value, expr)


def narrowed(expr: str, matchers: Sequence[tuple[str, str]]) -> str:
    """``expr`` with the label matchers added to every selector."""
    if not matchers:
        return expr
    extra = ", ".join(f'{k}="{v}"' for k, v in matchers)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(str(node.name))

    promql_parser.walk(promql_parser.parse(expr), visit)
    for name in sorted(names, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\{{)?")

        def labelled(match: re.Match[str], name: str = name) -> str:
            return f"{name}{{{extra}, " if match[1] else f"{name}{{{extra}}}"

        expr = pattern.sub(labelled, expr)
    return expr.replace(", }", "}")


def legend(template: str, labels: dict[str, str], expr: str) -> str:
    if template in ("", "__auto"):
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or expr
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template).strip()


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=30,
    )
    body = response.json()
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr!r}: {body.get('error')}")
    return list(body["data"]["result"])


def exemplars(prometheus: str, expr: str, start: float, end: float) -> list[tuple[float, float, str]]:
    response = httpx.get(
        f"{prometheus}/api/v1/query_exemplars", params={"query": expr, "start": start, "end": end}, timeout=30
    )
    found = []
    for group in response.json().get("data") or []:
        for exemplar in group["exemplars"]:
            found.append(
                (float(exemplar["timestamp"]), float(exemplar["value"]), exemplar["labels"].get("trace_id", ""))
            )
    return found


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit in ("reqps", "ops"):
        return f"{value:.2f}/s"
    return f"{value:.3g}"


def nice_max(value: float) -> float:
    if value <= 0 or math.isnan(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value))


def svg(
    title: str, unit: str, series: list[Series], dots: list[tuple[float, float, str]], window: tuple[float, float]
) -> str:
    left, top, right, bottom = PLOT
    start, end = window
    values = [v for s in series for _, v in s.points] + [v for _, v, _ in dots]
    y_max = nice_max(max(values, default=1.0))

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * (right - left)

    def y(v: float) -> float:
        return bottom - v / y_max * (bottom - top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="Inter, Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#181b1f" rx="4"/>',
        f'<text x="{left}" y="28" fill="#ccccdc" font-size="15" font-weight="600">{escape(title)}</text>',
    ]
    for i in range(5):
        value = y_max * i / 4
        out.append(f'<line x1="{left}" x2="{right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#2c3235"/>')
        out.append(
            f'<text x="{left - 8}" y="{y(value) + 4:.1f}" fill="#8e8e8e" text-anchor="end">{fmt(value, unit)}</text>'
        )
    for i in range(7):
        t = start + (end - start) * i / 6
        label = datetime.fromtimestamp(t, UTC).strftime("%H:%M")
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom}" stroke="#22252b"/>')
        out.append(f'<text x="{x(t):.1f}" y="{bottom + 18}" fill="#8e8e8e" text-anchor="middle">{label}</text>')
    for index, line in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for t, v in line.points:
            if math.isnan(v):
                segments.append([])
            else:
                segments[-1].append(f"{x(t):.1f},{y(v):.1f}")
        for segment in segments:
            if len(segment) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{" ".join(segment)}"/>')
    for t, v, trace_id in dots:
        out.append(
            f'<rect x="{x(t) - 3.5:.1f}" y="{y(v) - 3.5:.1f}" width="7" height="7" fill="#e0b400" '
            f'transform="rotate(45 {x(t):.1f} {y(v):.1f})"><title>exemplar {fmt(v, unit)} trace_id={trace_id}'
            "</title></rect>"
        )
    legend_y = bottom + 44
    cursor = left
    for index, line in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        finite = [v for _, v in line.points if not math.isnan(v)]
        text = f"{line.legend}  max {fmt(max(finite), unit)}" if finite else line.legend
        out.append(f'<rect x="{cursor}" y="{legend_y - 9}" width="14" height="4" fill="{color}"/>')
        out.append(f'<text x="{cursor + 20}" y="{legend_y - 4}" fill="#ccccdc">{escape(text)}</text>')
        cursor += 30 + 7 * len(text)
    if dots:
        out.append(
            f'<text x="{cursor}" y="{legend_y - 4}" fill="#e0b400">◆ exemplars ({len(dots)}, each a trace_id)</text>'
        )
    out.append(
        f'<text x="{left}" y="{HEIGHT - 14}" fill="#6e6e6e" font-size="10">'
        f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} to {datetime.fromtimestamp(end, UTC):%H:%M} UTC · "
        "queried from Prometheus' range API with the panel's own expressions</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def drive(bff: str, inventory: str, seconds: float) -> None:
    """Checkouts through the gateway for ``seconds``: 7 in 10 paid, 2 declined, 1 whose payment never answers."""
    with httpx.Client(timeout=15) as http:
        for sku in ("PANEL-SKU",):
            http.put(
                f"{inventory}/inventory/{sku}", json={"available": 100_000, "unit_price_minor": 990, "currency": "EUR"}
            )
        cards = ["tok_visa"] * 7 + ["tok_chargeDeclined"] * 2 + ["tok_timeout"]
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            body = {
                "customer_id": "panel",
                "items": [{"sku": "PANEL-SKU", "quantity": 1 + n % 3}],
                "currency": "EUR",
                "payment_token": cards[n % len(cards)],
            }
            http.post(f"{bff}/api/checkout/initiate", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
            n += 1
            time.sleep(0.5 + (n % 7) * 0.15)
        print(f"drove {n} checkouts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:19090")
    parser.add_argument("--dashboard", required=True, help="file name without .json, e.g. checkout-overview")
    parser.add_argument("--panel", required=True, help="the panel's title")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a dashboard variable")
    parser.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE", help="narrow every selector")
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--drive", nargs=2, metavar=("BFF_URL", "INVENTORY_URL"), help="drive checkouts first")
    parser.add_argument("--drive-seconds", type=float, default=300)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    if args.drive:
        drive(args.drive[0], args.drive[1], args.drive_seconds)
        time.sleep(15)  # two more scrapes
    dashboard = json.loads((DASHBOARDS / f"{args.dashboard}.json").read_text())
    [panel] = [p for p in dashboard["panels"] if p["title"] == args.panel]
    end = time.time()
    start = end - args.minutes * 60
    step = max(5.0, (end - start) / 240)
    values = {"__rate_interval": "1m", "__interval": f"{int(step)}s", "__range": f"{int(args.minutes)}m"}
    values.update(dict(v.split("=", 1) for v in args.var))
    matchers = [tuple(m.split("=", 1)) for m in args.match]
    lines, dots = [], []
    for target in panel["targets"]:
        expr = narrowed(substitute(target["expr"], values), matchers)
        for result in query_range(args.prometheus, expr, start, end, step):
            points = [(float(t), float(v)) for t, v in result["values"]]
            lines.append(Series(legend(target.get("legendFormat", ""), result["metric"], expr), points))
        if target.get("exemplar"):
            dots += exemplars(args.prometheus, expr, start, end)
    if not lines:
        raise SystemExit("no data: is Prometheus scraping the platform, and is the window right?")
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg(f"{dashboard['title']} — {panel['title']}", unit, lines, dots, (start, end)))
    print(f"{args.out}: {len(lines)} series, {len(dots)} exemplars")


if __name__ == "__main__":
    main()
