"""`make trace`: one checkout's trace as a waterfall, in the terminal and as a self-contained SVG.

The trace comes from Jaeger's HTTP query API (the stack talks to the platform over the network
only). Three ways to pick it:

- the latest checkout: the newest trace of ``gateway-bff`` that has a root span (a span whose
  parent is not in the trace) which is the BFF's checkout HTTP request — a server span for a POST
  to a path containing "checkout" (``POST /api/checkout/initiate``, ``POST /checkouts``), looked
  up through the BFF's server operation names first, then by scanning its recent traces;
- a saga id: traces with a span tagged ``checkout.saga.id=<id>``, searched in
  ``checkout-orchestrator`` then ``gateway-bff``;
- a trace id: ``/api/traces/<id>``.

Layout: one row per span, children under their parent ordered by start time. Times are shown as
the services measured them, relative to the start of the first root span. A span that starts
before its parent can only be clock skew between hosts (a child cannot begin before its cause);
it is not moved — rewriting timestamps would hide the skew and could hide a real ordering bug —
but the axis is widened to the left to show it (negative offset) and the row is flagged with how
much earlier than its parent it starts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

BFF_SERVICE: Final = "gateway-bff"
ORCHESTRATOR_SERVICE: Final = "checkout-orchestrator"
SAGA_ID_KEY: Final = "checkout.saga.id"
"""The span attribute that carries the saga id."""
SAGA_SEARCH_SERVICES: Final = (ORCHESTRATOR_SERVICE, BFF_SERVICE)

LOOKBACK: Final = dt.timedelta(days=2)
"""How far back the searches look (Jaeger keeps the stack's traces in memory only anyway)."""
OPERATION_LIMIT: Final = 20
"""Newest traces asked for per candidate operation (``POST /api/checkout/initiate``)."""
PAGE_SIZE: Final = 100
"""Traces per request when scanning; the scan pages back through at most MAX_PAGES."""
MAX_PAGES: Final = 5

LATEST_CHECKOUT_RULE: Final = (
    f"the newest trace (by the start of that span) whose root span - the span without a parent in the "
    f"trace - is the {BFF_SERVICE} server span of a POST to a path containing "
    '"checkout" (http.route, url.path or http.target, else the span name), e.g. '
    "`POST /api/checkout/initiate`; status polls (GET) do not count. It asks Jaeger for traces of "
    f"{BFF_SERVICE}'s server operations named like that, and if none qualifies scans the last "
    f"{PAGE_SIZE * MAX_PAGES} traces of {BFF_SERVICE}"
)

HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_TRACE_ID: Final = re.compile(r"[0-9a-f]{1,32}")
_XML_ILLEGAL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

SERVICE_COLOURS: Final = {
    BFF_SERVICE: "#8e44ad",
    ORCHESTRATOR_SERVICE: "#1f77b4",
    "inventory": "#2ca02c",
    "payment": "#ff7f0e",
    "order": "#17becf",
    "cart": "#bcbd22",
}
"""Each platform service's colour (terminal and SVG); other services get one of FALLBACK_COLOURS."""
FALLBACK_COLOURS: Final = (
    "#e377c2",
    "#8c564b",
    "#393b79",
    "#637939",
    "#7f7f7f",
    "#8c6d31",
    "#7b4173",
    "#3182bd",
    "#9467bd",
    "#843c39",
)
ERROR_COLOUR: Final = "#d62728"


class TraceViewError(RuntimeError):
    """The trace cannot be shown; the message says why and what to do next."""


class JaegerUnavailableError(TraceViewError):
    """Jaeger's query API does not answer."""


def service_colour(service: str) -> str:
    """A stable colour per service (the same in every run, terminal and SVG)."""
    return SERVICE_COLOURS.get(service) or FALLBACK_COLOURS[zlib.crc32(service.encode()) % len(FALLBACK_COLOURS)]


def service_colours(services: Sequence[str]) -> dict[str, str]:
    """Colours for the services of one trace: the platform's own, then distinct fallbacks while they last."""
    colours = {service: SERVICE_COLOURS[service] for service in services if service in SERVICE_COLOURS}
    spare = [colour for colour in FALLBACK_COLOURS if colour not in colours.values()]
    for service in services:
        if service not in colours:
            colours[service] = spare.pop(0) if spare else service_colour(service)
    return colours


# --- the trace, typed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One span of a Jaeger trace, with what the waterfall needs."""

    span_id: str
    parent_id: str | None
    """The CHILD_OF (else FOLLOWS_FROM) reference; it may name a span that is not in the trace."""
    service: str
    name: str
    start_us: int
    """Start, microseconds since the epoch (as the service's clock saw it)."""
    duration_us: int
    tags: Mapping[str, Any]

    @property
    def end_us(self) -> int:
        """End, microseconds since the epoch."""
        return self.start_us + self.duration_us

    @property
    def kind(self) -> str | None:
        """``server``, ``client``, ``producer``, ``consumer``, ``internal`` or None if not tagged."""
        kind = self.tags.get("span.kind")
        return str(kind).lower() if kind is not None else None

    @property
    def error(self) -> bool:
        """Whether the span ended in error (Jaeger's ``error`` tag or the OTel status)."""
        flag = self.tags.get("error")
        return flag is True or str(flag).lower() == "true" or str(self.tags.get("otel.status_code")).upper() == "ERROR"

    @property
    def saga_id(self) -> str | None:
        """The checkout saga this span belongs to, if it says."""
        saga_id = self.tags.get(SAGA_ID_KEY)
        return str(saga_id) if saga_id else None


@dataclass(frozen=True)
class Trace:
    """A trace as Jaeger returns it: its id and spans."""

    trace_id: str
    spans: tuple[Span, ...]

    @property
    def start_us(self) -> int:
        """The earliest span start."""
        return min(span.start_us for span in self.spans)

    def roots(self) -> list[Span]:
        """Spans whose parent is not in the trace (normally one: the entry point), earliest first."""
        ids = {span.span_id for span in self.spans}
        return sorted((s for s in self.spans if s.parent_id not in ids), key=_span_order)


def _parent_id(references: Iterable[Mapping[str, Any]]) -> str | None:
    by_type: dict[str, str] = {}
    for reference in references:
        by_type.setdefault(str(reference.get("refType", "")).upper(), str(reference.get("spanID")))
    return by_type.get("CHILD_OF") or by_type.get("FOLLOWS_FROM")


def parse_trace(document: Mapping[str, Any]) -> Trace:
    """One element of the ``data`` list of Jaeger's ``/api/traces`` answers."""
    processes: Mapping[str, Any] = document.get("processes") or {}
    spans = []
    for raw in document.get("spans") or []:
        process = processes.get(raw.get("processID")) or raw.get("process") or {}
        spans.append(
            Span(
                span_id=str(raw["spanID"]),
                parent_id=_parent_id(raw.get("references") or []),
                service=str(process.get("serviceName") or "unknown"),
                name=str(raw.get("operationName") or ""),
                start_us=int(raw.get("startTime") or 0),
                duration_us=max(0, int(raw.get("duration") or 0)),
                tags={str(tag["key"]): tag.get("value") for tag in raw.get("tags") or [] if "key" in tag},
            )
        )
    if not spans:
        raise TraceViewError(f"trace {document.get('traceID')} has no spans")
    return Trace(trace_id=str(document.get("traceID") or spans[0].span_id), spans=tuple(spans))


def _span_order(span: Span) -> tuple[int, str, str]:
    return (span.start_us, span.name, span.span_id)


# --- finding the checkout ----------------------------------------------------------------------


def _method_in_name(name: str) -> str | None:
    first = name.split(" ", 1)[0]
    return first if first in HTTP_METHODS else None


def _is_checkout_post(method: str | None, where: Iterable[object]) -> bool:
    return method in (None, "POST") and "checkout" in " ".join(str(text) for text in where if text).lower()


def http_method(span: Span) -> str | None:
    """The request's method: the semconv attribute (new or old name), else the span name's first word."""
    method = span.tags.get("http.request.method") or span.tags.get("http.method")
    return str(method).upper() if method else _method_in_name(span.name)


def is_checkout_request(span: Span, service: str = BFF_SERVICE) -> bool:
    """Whether ``span`` is ``service``'s server span of a checkout POST (see LATEST_CHECKOUT_RULE)."""
    if span.service != service or span.kind not in (None, "server"):
        return False
    paths = [span.tags.get(key) for key in ("http.route", "url.path", "http.target")]
    return _is_checkout_post(http_method(span), [*paths, span.name])


def is_checkout_operation(name: str) -> bool:
    """Whether a server operation's name (``METHOD route`` from the HTTP instrumentation) may be the checkout."""
    return _is_checkout_post(_method_in_name(name), [name])


def checkout_root(trace: Trace, service: str = BFF_SERVICE) -> Span | None:
    """The root span that makes ``trace`` a checkout's trace, if one does."""
    return next((span for span in trace.roots() if is_checkout_request(span, service)), None)


def newest_checkout(traces: Iterable[Trace], service: str = BFF_SERVICE) -> Trace | None:
    """Of ``traces``, the checkout trace whose checkout request started last."""
    checkouts = [(root, trace) for trace in traces if (root := checkout_root(trace, service))]
    return max(checkouts, key=lambda found: (found[0].start_us, found[1].trace_id))[1] if checkouts else None


def _now_us() -> int:
    return time.time_ns() // 1000


class JaegerTraces:
    """Finds traces through Jaeger's query API (``/api/traces``, ``/api/traces/<id>``)."""

    def __init__(self, base_url: str, http: httpx.Client | None = None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()

    def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            return self.http.get(url, params=params)
        except httpx.TransportError as error:
            raise JaegerUnavailableError(
                f"Jaeger's query API at {self.base_url} does not answer ({error.__class__.__name__}: {error}); "
                "is the stack running? run `make up` (`make status` shows it)"
            ) from error

    def _documents(self, response: httpx.Response) -> list[Mapping[str, Any]]:
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise TraceViewError(
                f"Jaeger answered {response.status_code} to {response.request.url}: {response.text[:300]}"
            )
        body = response.json()
        data = body.get("data") or []
        if not data and body.get("errors"):
            raise TraceViewError(f"Jaeger answered {response.request.url} with errors: {body['errors']}")
        return [document for document in data if document.get("spans")]

    def search(
        self,
        service: str,
        *,
        tags: Mapping[str, str] | None = None,
        operation: str | None = None,
        limit: int = PAGE_SIZE,
        end_us: int | None = None,
        lookback: dt.timedelta = LOOKBACK,
    ) -> list[Trace]:
        """Newest traces with a span of ``service`` (named ``operation``, with ``tags``) in the time window."""
        end = end_us if end_us is not None else _now_us()
        params: dict[str, str | int] = {
            "service": service,
            "limit": limit,
            "start": end - int(lookback / dt.timedelta(microseconds=1)),
            "end": end,
        }
        if tags:
            params["tags"] = json.dumps(dict(tags))
        if operation:
            params["operation"] = operation
        return [parse_trace(document) for document in self._documents(self._get("/api/traces", params))]

    def server_operations(self, service: str) -> list[str]:
        """Names of ``service``'s server spans Jaeger has seen (empty if it cannot say)."""
        response = self._get("/api/operations", {"service": service, "spanKind": "server"})
        if response.status_code != 200:
            return []
        data = response.json().get("data") or []
        return [str(item["name"]) for item in data if isinstance(item, Mapping) and item.get("name")]

    def by_trace_id(self, trace_id: str) -> Trace:
        """The trace with this id (32 hex digits, as printed by the services and the UI)."""
        wanted = trace_id.strip().lower()
        if not _TRACE_ID.fullmatch(wanted):
            raise TraceViewError(f"{trace_id!r} is not a trace id (up to 32 hex digits)")
        documents = self._documents(self._get(f"/api/traces/{wanted}"))
        if not documents:
            raise TraceViewError(
                f"Jaeger has no trace {wanted} (it keeps traces in memory: a restart of the stack forgets them); "
                "`make trace` without an id shows the latest checkout"
            )
        return parse_trace(documents[0])

    def by_saga_id(self, saga_id: str, services: Sequence[str] = SAGA_SEARCH_SERVICES) -> list[Trace]:
        """Traces with a span tagged with this saga id, the checkout's own trace first, then by start."""
        wanted = saga_id.strip()
        if not wanted:
            raise TraceViewError("the saga id is empty")
        found: dict[str, Trace] = {}
        for service in services:
            for trace in self.search(service, tags={SAGA_ID_KEY: wanted}):
                found.setdefault(trace.trace_id, trace)
            if found:
                break
        if not found:
            raise TraceViewError(
                f"no trace in Jaeger has a span tagged {SAGA_ID_KEY}={wanted} "
                f"(searched {', '.join(services)}, last {LOOKBACK.days} days); check the id "
                "(`make demo` prints it) — traces are kept in memory and gone after a restart of the stack"
            )
        return sorted(found.values(), key=lambda t: (checkout_root(t) is None, t.start_us, t.trace_id))

    def latest_checkout(self, service: str = BFF_SERVICE) -> Trace:
        """The newest checkout trace (LATEST_CHECKOUT_RULE).

        Status polls outnumber checkouts many times over, so the search asks for the operations that
        can be the checkout request by name first; only if none is found there does it page back
        through the service's recent traces, checking every root span's attributes.
        """
        known = self.server_operations(service)
        operations = [name for name in known if is_checkout_operation(name)]
        found = [trace for name in operations for trace in self.search(service, operation=name, limit=OPERATION_LIMIT)]
        newest = newest_checkout(found, service)
        if newest is not None:
            return newest
        end = _now_us()
        seen: set[str] = {trace.trace_id for trace in found}
        for _ in range(MAX_PAGES):
            answer = self.search(service, end_us=end)
            page = [trace for trace in answer if trace.trace_id not in seen]
            seen.update(trace.trace_id for trace in page)
            newest = newest_checkout(page, service)
            if newest is not None:
                return newest
            if len(answer) < PAGE_SIZE or not page:
                break
            # The store answers newest first: the next page ends where this one's earliest span began.
            end = min(trace.start_us for trace in page) - 1
        raise TraceViewError(
            f"no checkout trace in Jaeger (looked at {len(seen)} traces of {service} for a root span that is a "
            f"POST to a checkout path; its server operations: {', '.join(known) or 'none'}"
            "): run `make demo` first (it starts the services and runs one "
            "checkout), or pass --saga-id / --trace-id"
        )


EXPORT_WAIT_S: Final = 8.0
"""How long to wait for a checkout that just ran: the services export spans in batches every 5 s."""


def _latest_checkout_after_export(jaeger: JaegerTraces, wait_s: float) -> Trace:
    """The latest checkout, waiting up to ``wait_s`` for one still in the services' export batches."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return jaeger.latest_checkout()
        except TraceViewError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


# --- layout ------------------------------------------------------------------------------------


MAX_GUIDE_LEVELS: Final = 24
"""Tree levels drawn in the terminal before the top ones are summarised (sagas nest deep)."""


@dataclass(frozen=True)
class Row:
    """One span placed in the waterfall."""

    span: Span
    depth: int
    offset_us: int
    """Start relative to the waterfall's origin (negative for skewed spans before the first root)."""
    skew_us: int
    """How much earlier than its parent the span starts (clock skew); 0 when it does not."""
    orphan: bool
    """Its parent is named but not in the trace (not exported yet, or lost)."""
    lineage: tuple[bool, ...]
    """For each level from depth 1 down to this row: whether that ancestor (or the row) is a last child."""

    @property
    def tree_prefix(self) -> str:
        """Box-drawing guides that draw the tree in a terminal."""
        return self.guides()

    def guides(self, step: int = 3, max_levels: int = MAX_GUIDE_LEVELS) -> str:
        """The tree guides, ``step`` characters a level; past ``max_levels`` the top levels become ``…N``."""
        if not self.lineage:
            return ""
        levels = self.lineage
        elided = ""
        if len(levels) > max_levels:
            elided = f"…{len(levels) - max_levels + 1} "
            levels = levels[len(levels) - max_levels + 1 :]
        pad = " " * (step - 1)
        guides = "".join(" " + pad if last else "│" + pad for last in levels[:-1])
        branch = ("└" if levels[-1] else "├") + "─" * (step - 2) + " "
        return elided + guides + branch


@dataclass(frozen=True)
class Waterfall:
    """A trace laid out: rows in tree order on a common time axis (microseconds from the origin)."""

    trace_id: str
    rows: tuple[Row, ...]
    origin_us: int
    """Absolute start of the first root span: offset 0."""
    axis_start_us: int
    """Left end of the axis: 0, or the earliest (skewed) offset if negative."""
    axis_end_us: int

    @property
    def services(self) -> list[str]:
        """Services in order of first appearance."""
        return list(dict.fromkeys(row.span.service for row in self.rows))

    @property
    def colours(self) -> dict[str, str]:
        """Each service's colour in this trace."""
        return service_colours(self.services)

    @property
    def depth(self) -> int:
        """The deepest row's depth."""
        return max(row.depth for row in self.rows)

    @property
    def duration_us(self) -> int:
        """Span of the whole axis."""
        return self.axis_end_us - self.axis_start_us

    @property
    def saga_id(self) -> str | None:
        """The saga id any span carries."""
        return next((row.span.saga_id for row in self.rows if row.span.saga_id), None)

    def bar(self, row: Row, width: float, min_width: float = 1.0) -> tuple[float, float]:
        """``(left, length)`` of the row's bar in a track ``width`` units wide."""
        return bar_geometry(row.offset_us, row.span.duration_us, self.axis_start_us, self.axis_end_us, width, min_width)


def bar_geometry(
    offset_us: int, duration_us: int, axis_start_us: int, axis_end_us: int, width: float, min_width: float = 1.0
) -> tuple[float, float]:
    """Scale a span onto a track: ``(left, length)``, at least ``min_width`` long, never past the track."""
    total = max(1, axis_end_us - axis_start_us)
    left = (offset_us - axis_start_us) / total * width
    left = min(max(0.0, left), max(0.0, width - min_width))
    length = max(min_width, duration_us / total * width)
    return left, min(length, width - left)


def layout(trace: Trace) -> Waterfall:
    """Order the spans parent first, children by start time, and place them on one time axis."""
    by_id = {span.span_id: span for span in trace.spans}
    children: dict[str, list[Span]] = {}
    for span in trace.spans:
        if span.parent_id in by_id and span.parent_id != span.span_id:
            children.setdefault(span.parent_id, []).append(span)
    for siblings in children.values():
        siblings.sort(key=_span_order)
    roots = trace.roots()
    origin = roots[0].start_us if roots else trace.start_us
    rows: list[Row] = []
    placed: set[str] = set()

    def place(top: Span) -> None:
        # Depth first without recursion; a parent cycle in bad data stops at a span already placed.
        stack: list[tuple[Span, int, tuple[bool, ...]]] = [(top, 0, ())]
        while stack:
            span, depth, lineage = stack.pop()
            if span.span_id in placed:
                continue
            placed.add(span.span_id)
            parent = by_id.get(span.parent_id) if span.parent_id and depth else None
            rows.append(
                Row(
                    span=span,
                    depth=depth,
                    offset_us=span.start_us - origin,
                    skew_us=max(0, parent.start_us - span.start_us) if parent else 0,
                    orphan=span.parent_id is not None and span.parent_id not in by_id,
                    lineage=lineage,
                )
            )
            kids = [kid for kid in children.get(span.span_id, []) if kid.span_id not in placed]
            for index, kid in reversed(list(enumerate(kids))):
                stack.append((kid, depth + 1, (*lineage, index == len(kids) - 1)))

    for root in roots:
        place(root)
    for span in sorted(trace.spans, key=_span_order):  # only spans caught in a parent cycle are left
        place(span)
    axis_start = min(0, *(row.offset_us for row in rows))
    axis_end = max(row.offset_us + row.span.duration_us for row in rows)
    return Waterfall(
        trace_id=trace.trace_id,
        rows=tuple(rows),
        origin_us=origin,
        axis_start_us=axis_start,
        axis_end_us=max(axis_end, axis_start + 1),
    )


def nice_ticks(axis_start_us: int, axis_end_us: int, target: int = 8) -> list[int]:
    """Round tick positions (1, 2 or 5 times a power of ten microseconds) covering the axis."""
    span = max(1, axis_end_us - axis_start_us)
    raw = span / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(1, int(step))
    first = math.ceil(axis_start_us / step) * step
    return list(range(first, axis_end_us + 1, step))


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def _title(waterfall: Waterfall) -> str:
    return f"trace {waterfall.trace_id}" + (f", saga {waterfall.saga_id}" if waterfall.saga_id else "")


def _details(waterfall: Waterfall) -> str:
    started = dt.datetime.fromtimestamp(waterfall.origin_us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (
        f"{len(waterfall.rows)} spans, {len(waterfall.services)} services, {_ms(waterfall.duration_us)} ms, "
        f"started {started} UTC"
    )


def _summary(waterfall: Waterfall) -> str:
    return f"{_title(waterfall)}: {_details(waterfall)}"


def _notes(row: Row) -> list[str]:
    notes = []
    if row.skew_us:
        notes.append(f"starts {_ms(row.skew_us)} ms before its parent (clock skew)")
    if row.orphan:
        notes.append("parent not in the trace")
    return notes


# --- terminal ----------------------------------------------------------------------------------

MAX_SERVICE_WIDTH: Final = 28


def _terminal_bar(waterfall: Waterfall, row: Row, width: int, colour: str) -> Text:
    left, length = waterfall.bar(row, width)
    first = min(int(left), width - 1)
    last = max(first + 1, min(width, round(left + length)))
    colour = ERROR_COLOUR if row.span.error else colour
    bar = Text(" " * first)
    bar.append("█" * (last - first), style=colour)
    bar.append(" " * (width - last))
    return bar


def _axis_header(waterfall: Waterfall, width: int) -> str:
    left = f"{_ms(waterfall.axis_start_us)} ms"
    right = f"{_ms(waterfall.axis_end_us)} ms"
    return left + " " * max(1, width - len(left) - len(right)) + right


def render_terminal(waterfall: Waterfall, console: Console, bar_width: int | None = None) -> None:
    """Print the waterfall: tree of spans, service, start and duration in ms, a bar on the time axis.

    Every column but the span's gets the width its content needs (the service's at most
    MAX_SERVICE_WIDTH); the span column takes the rest and cuts long names with an ellipsis.
    """
    total = console.width or 120
    width = bar_width or max(20, min(60, total // 3))
    starts = [_ms(row.offset_us) for row in waterfall.rows]
    durations = [_ms(row.span.duration_us) for row in waterfall.rows]
    start_width = max(len("start ms"), *map(len, starts))
    duration_width = max(len("dur ms"), *map(len, durations))
    service_width = min(MAX_SERVICE_WIDTH, max(len("service"), *(len(s) for s in waterfall.services)))
    span_width = max(24, total - width - start_width - duration_width - service_width - 2 * 4)
    console.print(Text(_summary(waterfall), style="bold"))
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("span", no_wrap=True, overflow="ellipsis", width=span_width)
    table.add_column("service", no_wrap=True, overflow="ellipsis", width=service_width)
    table.add_column("start ms", justify="right", no_wrap=True, width=start_width)
    table.add_column("dur ms", justify="right", no_wrap=True, width=duration_width)
    table.add_column(_axis_header(waterfall, width), no_wrap=True, width=width)
    colours = waterfall.colours
    step = 3 if waterfall.depth <= 8 else 2  # deep sagas: narrower guides leave room for the names
    for index, row in enumerate(waterfall.rows):
        colour = colours[row.span.service]
        label = Text(row.guides(step), style="dim")
        if row.span.error:
            label.append("✗ ", style=f"bold {ERROR_COLOUR}")
        label.append(row.span.name, style=f"bold {ERROR_COLOUR}" if row.span.error else "")
        if row.skew_us:
            label.append(f"  ⚠ skew -{_ms(row.skew_us)} ms", style="yellow")
        if row.orphan:
            label.append("  (parent not in trace)", style="dim")
        table.add_row(
            label,
            Text(row.span.service, style=colour),
            starts[index],
            durations[index],
            _terminal_bar(waterfall, row, width, colour),
        )
    console.print(table)
    errors = sum(row.span.error for row in waterfall.rows)
    skewed = sum(bool(row.skew_us) for row in waterfall.rows)
    if errors:
        console.print(f"[{ERROR_COLOUR}]✗ {errors} span(s) ended in error[/]")
    if skewed:
        console.print(
            f"[yellow]⚠ skew -N ms: {skewed} span(s) start N ms before their parent, which only clock skew "
            "between hosts can cause; shown as measured, not shifted[/]"
        )


# --- SVG ---------------------------------------------------------------------------------------

SVG_WIDTH: Final = 1280
LABEL_WIDTH: Final = 520
BAR_X: Final = LABEL_WIDTH + 16
BAR_WIDTH: Final = SVG_WIDTH - BAR_X - 96
"""The track; the rest on the right leaves room for the duration after a bar that ends at the edge."""
ROW_HEIGHT: Final = 22
LEGEND_TOP: Final = 50
LEGEND_LINE: Final = 18
INDENT: Final = 14
MAX_INDENT: Final = LABEL_WIDTH // 2
"""Deep trees get a narrower indent so that the labels keep at least half the label column."""
CHAR_WIDTH: Final = 7.2
"""Approximate advance of a 12px monospace glyph, to cut labels that would run into the bars."""
SVG_NS: Final = "http://www.w3.org/2000/svg"


def xml_text(value: str) -> str:
    """Escape ``value`` for XML character data, dropping characters XML 1.0 cannot carry."""
    return escape(_XML_ILLEGAL.sub("\ufffd", value))


def xml_attr(value: str) -> str:
    """``value`` as a quoted XML attribute value."""
    return quoteattr(_XML_ILLEGAL.sub("\ufffd", value))


def _cut(value: str, chars: int) -> str:
    return value if len(value) <= chars else value[: max(1, chars - 1)] + "…"


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def render_svg(waterfall: Waterfall) -> str:
    """A self-contained SVG document: one ``<g class="span">`` row per span, an axis with ticks."""
    colours = waterfall.colours
    legend: list[tuple[float, int, str]] = []  # x, y, service; wraps at the right edge
    x, y = 8.0, LEGEND_TOP
    for service in waterfall.services:
        advance = 14 + CHAR_WIDTH * len(service) + 18
        if legend and x + advance > SVG_WIDTH:
            x, y = 8.0, y + LEGEND_LINE
        legend.append((x, y, service))
        x += advance
    rows_top = y + LEGEND_LINE + 28  # room for the tick labels
    height = rows_top + len(waterfall.rows) * ROW_HEIGHT + 16
    out = [
        f'<svg xmlns="{SVG_NS}" width="{SVG_WIDTH}" height="{height}" viewBox="0 0 {SVG_WIDTH} {height}" '
        'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="12">',
        f"<title>{xml_text(_summary(waterfall))}</title>",
        f'<rect x="0" y="0" width="{SVG_WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="20" font-size="14" font-weight="bold">{xml_text(_title(waterfall))}</text>',
        f'<text x="8" y="38" fill="#333333">{xml_text(_details(waterfall))}</text>',
    ]
    for x, y, service in legend:
        out.append(f'<rect x="{_fmt(x)}" y="{y}" width="10" height="10" fill="{colours[service]}"/>')
        out.append(f'<text class="legend" x="{_fmt(x + 14)}" y="{y + 9}">{xml_text(service)}</text>')
    indent_step = min(INDENT, MAX_INDENT / max(1, waterfall.depth))
    for index in range(1, len(waterfall.rows), 2):  # zebra stripes under the ticks and rows
        y = rows_top + index * ROW_HEIGHT
        out.append(f'<rect x="0" y="{y}" width="{SVG_WIDTH}" height="{ROW_HEIGHT}" fill="#f6f6f6"/>')
    bottom = height - 12
    for tick in nice_ticks(waterfall.axis_start_us, waterfall.axis_end_us):
        tx = BAR_X + bar_geometry(tick, 0, waterfall.axis_start_us, waterfall.axis_end_us, BAR_WIDTH, 0)[0]
        out.append(
            f'<line class="tick" x1="{_fmt(tx)}" y1="{rows_top - 8}" x2="{_fmt(tx)}" y2="{bottom}" stroke="#dddddd"/>'
        )
        out.append(
            f'<text x="{_fmt(tx)}" y="{rows_top - 12}" text-anchor="middle" fill="#555555">{_ms(tick)} ms</text>'
        )
    for index, row in enumerate(waterfall.rows):
        y = rows_top + index * ROW_HEIGHT
        span = row.span
        colour = colours[span.service]
        left, length = waterfall.bar(row, BAR_WIDTH)
        notes = _notes(row)
        tooltip = (
            f"{span.service}: {span.name}\nstart {_ms(row.offset_us)} ms, duration {_ms(span.duration_us)} ms"
            f"{', ERROR' if span.error else ''}\nspan {span.span_id}" + "".join(f"\n{note}" for note in notes)
        )
        out.append(f'<g class="span" data-span-id={xml_attr(span.span_id)} data-service={xml_attr(span.service)}>')
        out.append(f"<title>{xml_text(tooltip)}</title>")
        indent = 8 + row.depth * indent_step
        out.append(f'<rect x="{_fmt(indent)}" y="{y + 6}" width="10" height="10" fill="{colour}"/>')
        room = int((LABEL_WIDTH - indent - 14) / CHAR_WIDTH)
        service_text = _cut(span.service, room)
        name_text = _cut(("✗ " if span.error else "") + span.name, room - len(service_text) - 1)
        name_fill = f' fill="{ERROR_COLOUR}" font-weight="bold"' if span.error else ""
        out.append(
            f'<text class="label" x="{_fmt(indent + 14)}" y="{y + 15}"><tspan fill="{colour}">{xml_text(service_text)}'
            f"</tspan> <tspan{name_fill}>{xml_text(name_text)}</tspan></text>"
        )
        outline = ""
        if span.error:
            outline = f' stroke="{ERROR_COLOUR}" stroke-width="2"'
        elif row.skew_us:
            outline = ' stroke="#b8860b" stroke-width="1.5" stroke-dasharray="3 2"'
        out.append(
            f'<rect class="bar" x="{_fmt(BAR_X + left)}" y="{y + 4}" width="{_fmt(length)}" height="{ROW_HEIGHT - 8}" '
            f'rx="2" fill="{colour}"{outline}/>'
        )
        after = f"{_ms(span.duration_us)} ms" + (f"  ⚠ skew -{_ms(row.skew_us)} ms" if row.skew_us else "")
        out.append(f'<text x="{_fmt(BAR_X + left + length + 4)}" y="{y + 15}" fill="#333333">{xml_text(after)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(waterfall: Waterfall, path: Path) -> Path:
    """Write the SVG (creating the directory) and return where it went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_svg(waterfall), encoding="utf-8")
    return path


# --- the command -------------------------------------------------------------------------------


def show_trace(
    query_url: str,
    run_dir: Path,
    console: Console,
    *,
    saga_id: str | None = None,
    trace_id: str | None = None,
    svg_path: Path | None = None,
    http: httpx.Client | None = None,
    export_wait_s: float = EXPORT_WAIT_S,
) -> Path:
    """``checkout-stack trace``: find the trace, print its waterfall, write the SVG; return its path."""
    jaeger = JaegerTraces(query_url, http=http)
    try:
        if trace_id:
            trace = jaeger.by_trace_id(trace_id)
        elif saga_id:
            traces = jaeger.by_saga_id(saga_id)
            trace = traces[0]
            if len(traces) > 1:
                others = ", ".join(t.trace_id for t in traces[1:])
                console.print(f"[yellow]{len(traces)} traces carry saga {saga_id}; showing the first, others: {others}")
        else:
            trace = _latest_checkout_after_export(jaeger, wait_s=export_wait_s)
    finally:
        if http is None:
            jaeger.close()
    waterfall = layout(trace)
    render_terminal(waterfall, console)
    path = write_svg(waterfall, svg_path or run_dir / "traces" / f"{waterfall.trace_id}.svg")
    console.print(f"SVG: {path}")
    return path
