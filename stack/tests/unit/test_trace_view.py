"""`make trace`: the waterfall's layout, its terminal and SVG renderings, and how the trace is found.

The traces are Jaeger API JSON documents built here; finding them goes through an in-process
``httpx.MockTransport`` standing in for the query API (the real one is in the integration test).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from checkout_stack import cli
from checkout_stack.trace_view import (
    BAR_WIDTH,
    BAR_X,
    ERROR_COLOUR,
    PAGE_SIZE,
    SVG_NS,
    JaegerTraces,
    JaegerUnavailableError,
    TraceViewError,
    Waterfall,
    bar_geometry,
    checkout_root,
    is_checkout_request,
    layout,
    nice_ticks,
    parse_trace,
    render_svg,
    render_terminal,
    service_colour,
    service_colours,
    show_trace,
)

T0 = 1_760_000_000_000_000  # µs since the epoch
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SVG = f"{{{SVG_NS}}}"


def span(
    span_id: str,
    name: str,
    process: str,
    start_ms: float,
    duration_ms: float,
    parent: str | None = None,
    tags: dict[str, Any] | None = None,
    ref_type: str = "CHILD_OF",
    trace_id: str = TRACE_ID,
) -> dict[str, Any]:
    return {
        "traceID": trace_id,
        "spanID": span_id,
        "operationName": name,
        "references": [{"refType": ref_type, "traceID": trace_id, "spanID": parent}] if parent else [],
        "startTime": T0 + int(start_ms * 1000),
        "duration": int(duration_ms * 1000),
        "tags": [{"key": k, "type": "string", "value": v} for k, v in (tags or {}).items()],
        "logs": [],
        "processID": process,
        "warnings": None,
    }


PROCESSES = {
    "p1": {"serviceName": "gateway-bff", "tags": []},
    "p2": {"serviceName": "checkout-orchestrator", "tags": []},
    "p3": {"serviceName": "payment", "tags": []},
}


def document(*spans: dict[str, Any], trace_id: str = TRACE_ID) -> dict[str, Any]:
    return {"traceID": trace_id, "spans": list(spans), "processes": PROCESSES, "warnings": None}


def checkout_document(trace_id: str = TRACE_ID, start_ms: float = 0.0) -> dict[str, Any]:
    """A checkout across three services; the spans listed out of order on purpose."""

    def at(ms: float) -> float:
        return start_ms + ms

    return document(
        span("c", "process checkout.payment-command", "p3", at(30), 20, parent="b", trace_id=trace_id),
        span(
            "a",
            "POST /api/checkout/initiate",
            "p1",
            at(0),
            100,
            tags={"span.kind": "server", "http.request.method": "POST", "http.route": "/api/checkout/initiate"},
            trace_id=trace_id,
        ),
        span("d", "charge", "p3", at(35), 10, parent="c", tags={"error": True}, trace_id=trace_id),
        span(
            "b",
            "process checkout.checkout-events",
            "p2",
            at(10),
            50,
            parent="a",
            tags={"checkout.saga.id": "saga-1"},
            trace_id=trace_id,
        ),
        span("e", "INSERT orchestrator.saga", "p2", at(5), 2, parent="a", trace_id=trace_id),
        trace_id=trace_id,
    )


# --- layout ------------------------------------------------------------------------------------


def test_rows_follow_the_tree_parent_first_children_by_start_time() -> None:
    waterfall = layout(parse_trace(checkout_document()))
    assert [row.span.span_id for row in waterfall.rows] == ["a", "e", "b", "c", "d"]
    assert [row.depth for row in waterfall.rows] == [0, 1, 1, 2, 3]
    assert waterfall.services == ["gateway-bff", "checkout-orchestrator", "payment"]
    assert [row.tree_prefix for row in waterfall.rows] == ["", "├─ ", "└─ ", "   └─ ", "      └─ "]


def test_offsets_and_axis_are_relative_to_the_root_start() -> None:
    waterfall = layout(parse_trace(checkout_document()))
    offsets = {row.span.span_id: row.offset_us for row in waterfall.rows}
    assert offsets == {"a": 0, "e": 5_000, "b": 10_000, "c": 30_000, "d": 35_000}
    assert (waterfall.axis_start_us, waterfall.axis_end_us) == (0, 100_000)
    assert waterfall.saga_id == "saga-1"
    assert all(row.skew_us == 0 and not row.orphan for row in waterfall.rows)


def test_bar_geometry_scales_onto_the_track() -> None:
    waterfall = layout(parse_trace(checkout_document()))
    bars = {row.span.span_id: waterfall.bar(row, 200) for row in waterfall.rows}
    assert bars["a"] == (0.0, 200.0)
    assert bars["b"] == pytest.approx((20.0, 100.0))
    assert bars["d"] == pytest.approx((70.0, 20.0))


def test_bars_are_never_thinner_than_the_minimum_nor_past_the_track() -> None:
    assert bar_geometry(50, 0, 0, 100, 100, min_width=2) == (50.0, 2.0)
    assert bar_geometry(100, 0, 0, 100, 100, min_width=2) == (98.0, 2.0)
    assert bar_geometry(90, 50, 0, 100, 100) == (90.0, 10.0)
    assert bar_geometry(0, 0, 0, 0, 100) == (0.0, 1.0)  # an empty axis still draws


def test_a_child_that_starts_before_its_parent_is_flagged_and_the_axis_widened() -> None:
    skewed = document(
        span("a", "POST /api/checkout/initiate", "p1", 0, 10),
        span("b", "process checkout.checkout-events", "p2", -2, 4, parent="a"),
    )
    waterfall = layout(parse_trace(skewed))
    root, child = waterfall.rows
    assert child.skew_us == 2_000
    assert child.offset_us == -2_000
    assert waterfall.axis_start_us == -2_000
    assert waterfall.bar(root, 120) == pytest.approx((20.0, 100.0))
    assert waterfall.bar(child, 120) == pytest.approx((0.0, 40.0))
    console = Console(record=True, width=200)
    render_terminal(waterfall, console)
    text = console.export_text()
    assert "process checkout.checkout-events  ⚠ skew -2.0 ms" in text
    assert "1 span(s) start N ms before their parent" in text


def test_a_span_whose_parent_is_missing_becomes_a_root_marked_as_such() -> None:
    trace = parse_trace(
        document(span("a", "POST /api/checkout/initiate", "p1", 0, 10), span("x", "late", "p2", 5, 1, parent="gone"))
    )
    waterfall = layout(trace)
    assert [(row.span.span_id, row.depth, row.orphan) for row in waterfall.rows] == [("a", 0, False), ("x", 0, True)]


def test_follows_from_counts_as_parent_and_parent_cycles_do_not_hang() -> None:
    linked = layout(parse_trace(document(span("a", "root", "p1", 0, 10), span("b", "b", "p2", 1, 1, "a", None, "X"))))
    assert [row.depth for row in linked.rows] == [0, 0]  # unknown reference types are ignored
    follows = document(span("a", "root", "p1", 0, 10), span("b", "b", "p2", 1, 1, parent="a", ref_type="FOLLOWS_FROM"))
    assert [row.depth for row in layout(parse_trace(follows)).rows] == [0, 1]
    cycle = document(span("a", "a", "p1", 0, 10, parent="b"), span("b", "b", "p2", 1, 1, parent="a"))
    assert sorted(row.span.span_id for row in layout(parse_trace(cycle)).rows) == ["a", "b"]


def test_ticks_are_round_and_cover_the_axis() -> None:
    assert nice_ticks(0, 100_000, target=5) == [0, 20_000, 40_000, 60_000, 80_000, 100_000]
    assert nice_ticks(-2_000, 10_000, target=6) == [-2_000, 0, 2_000, 4_000, 6_000, 8_000, 10_000]
    assert nice_ticks(0, 1) == [0, 1]


def test_service_colours_are_stable_and_distinct_within_a_trace() -> None:
    assert service_colour("payment") == service_colour("payment") != service_colour("inventory")
    assert service_colour("some-other-service") == service_colour("some-other-service")
    services = ["gateway-bff", *(f"e2e.service-{index}" for index in range(8)), "payment"]
    colours = service_colours(services)
    assert colours["gateway-bff"] == service_colour("gateway-bff")
    assert colours["payment"] == service_colour("payment")
    assert len(set(colours.values())) == len(services)


def test_deep_trees_get_narrow_guides_and_the_top_levels_summarised() -> None:
    chain = [span("s0", "root", "p1", 0, 100)]
    chain += [span(f"s{i}", f"step {i}", "p2", i, 1, parent=f"s{i - 1}") for i in range(1, 31)]
    waterfall = layout(parse_trace(document(*chain)))
    deepest = waterfall.rows[-1]
    assert deepest.depth == waterfall.depth == 30
    assert deepest.guides(step=2, max_levels=5) == "…26 " + "  " * 3 + "└ "  # 26 hidden + 4 drawn
    assert waterfall.rows[2].guides(step=2) == "  └ "
    console = Console(record=True, width=160)
    render_terminal(waterfall, console)
    assert any(line.rstrip().startswith("…7 ") and "step 30" in line for line in console.export_text().splitlines())


# --- rendering ---------------------------------------------------------------------------------


def _svg(waterfall: Waterfall) -> ET.Element:
    return ET.fromstring(render_svg(waterfall))  # noqa: S314 - our own output


def _span_groups(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "span"]


def test_terminal_waterfall_names_every_span_service_time_and_marks_errors() -> None:
    console = Console(record=True, width=200)
    render_terminal(layout(parse_trace(checkout_document())), console, bar_width=40)
    text = console.export_text()
    lines = text.splitlines()
    assert f"trace {TRACE_ID}, saga saga-1: 5 spans, 3 services, 100.0 ms" in lines[0]
    row = next(line for line in lines if "process checkout.checkout-events" in line)
    assert "checkout-orchestrator" in row
    assert " 10.0 " in row
    assert " 50.0 " in row
    assert "█" * 20 in row  # half of the 40-column track
    charge = next(line for line in lines if "charge" in line)
    assert "✗ charge" in charge
    assert "1 span(s) ended in error" in text


def test_svg_is_well_formed_with_one_row_per_span_in_tree_order() -> None:
    waterfall = layout(parse_trace(checkout_document()))
    root = _svg(waterfall)
    groups = _span_groups(root)
    assert [g.get("data-span-id") for g in groups] == ["a", "e", "b", "c", "d"]
    assert {g.get("data-service") for g in groups} == {"gateway-bff", "checkout-orchestrator", "payment"}
    bars = [rect for g in groups for rect in g.iter(f"{SVG}rect") if rect.get("class") == "bar"]
    assert len(bars) == 5
    assert float(bars[0].get("x", "")) == BAR_X
    assert float(bars[0].get("width", "")) == BAR_WIDTH
    assert bars[0].get("fill") == service_colour("gateway-bff")
    assert bars[4].get("stroke") == ERROR_COLOUR  # "charge" ended in error
    ticks = [line for line in root.iter(f"{SVG}line") if line.get("class") == "tick"]
    assert len(ticks) >= 3
    assert "100.0 ms" in "".join(root.itertext())


def test_svg_escapes_names_and_drops_characters_xml_cannot_carry() -> None:
    nasty = "<script>alert('x')</script> & \"quoted\" \x01"
    waterfall = layout(parse_trace(document(span("a", nasty, "p1", 0, 10), span("b", "ok", "p2", 1, 2, parent="a"))))
    root = _svg(waterfall)
    groups = _span_groups(root)
    assert len(groups) == 2
    labels = ["".join(t.itertext()) for g in groups for t in g.iter(f"{SVG}text") if t.get("class") == "label"]
    assert labels[0] == "gateway-bff <script>alert('x')</script> & \"quoted\" \ufffd"
    assert not list(root.iter("script"))
    assert not list(root.iter(f"{SVG}script"))


def test_long_names_are_cut_in_the_label_but_kept_whole_in_the_tooltip() -> None:
    name = "process " + "very-long-topic-name." * 20
    root = _svg(layout(parse_trace(document(span("a", name, "p1", 0, 10)))))
    [group] = _span_groups(root)
    label = "".join(next(t for t in group.iter(f"{SVG}text") if t.get("class") == "label").itertext())
    assert label.endswith("…")
    assert len(label) < len(name)
    assert name in (group.findtext(f"{SVG}title") or "")


# --- finding the trace -------------------------------------------------------------------------


def test_a_checkout_request_is_a_post_server_span_to_a_checkout_path() -> None:
    def root(name: str, **tags: Any) -> Any:
        return parse_trace(document(span("a", name, "p1", 0, 1, tags=tags))).spans[0]

    assert is_checkout_request(root("POST /api/checkout/initiate", **{"span.kind": "server"}))
    assert is_checkout_request(root("POST /checkouts"))
    assert is_checkout_request(root("POST", **{"http.method": "POST", "http.route": "/checkouts"}))
    assert not is_checkout_request(root("GET /api/checkout/{saga_id}", **{"span.kind": "server"}))
    assert not is_checkout_request(root("POST /api/carts"))
    assert not is_checkout_request(root("POST /api/checkout/initiate", **{"span.kind": "client"}))
    payment = parse_trace(document(span("a", "POST /checkouts", "p3", 0, 1))).spans[0]
    assert not is_checkout_request(payment)


Handler = Callable[[httpx.Request], httpx.Response]


def jaeger(handler: Handler) -> JaegerTraces:
    return JaegerTraces("http://jaeger.test", http=httpx.Client(transport=httpx.MockTransport(handler)))


def answer(*documents: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": list(documents), "total": 0, "limit": 0, "offset": 0, "errors": None})


def poll(trace_id: str, start_ms: float) -> dict[str, Any]:
    tags = {"span.kind": "server", "http.request.method": "GET"}
    return document(
        span("p", "GET /api/checkout/{saga_id}", "p1", start_ms, 1, tags=tags, trace_id=trace_id), trace_id=trace_id
    )


OPERATIONS = [
    {"name": "GET /api/checkout/{saga_id}", "spanKind": "server"},
    {"name": "POST /api/carts", "spanKind": "server"},
    {"name": "POST /api/checkout/initiate", "spanKind": "server"},
]


def operations(*names: dict[str, str]) -> httpx.Response:
    return httpx.Response(200, json={"data": list(names), "total": len(names), "errors": None})


def test_latest_checkout_asks_for_the_checkout_operation_and_takes_the_newest_checkout() -> None:
    seen: list[httpx.Request] = []
    older, newer = "0" * 31 + "1", "0" * 31 + "2"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/operations":
            return operations(*OPERATIONS)
        return answer(checkout_document(older, 0), checkout_document(newer, 200))

    trace = jaeger(handler).latest_checkout()
    assert trace.trace_id == newer
    ops, search = seen
    assert dict(ops.url.params) == {"service": "gateway-bff", "spanKind": "server"}
    assert search.url.path == "/api/traces"
    assert search.url.params["service"] == "gateway-bff"
    assert search.url.params["operation"] == "POST /api/checkout/initiate"
    assert int(search.url.params["start"]) < int(search.url.params["end"])


def test_latest_checkout_checks_the_root_not_just_the_operation_name() -> None:
    # A POST /api/checkout/initiate span that is not the root (some client called the BFF and
    # exported its own span) does not make the trace a checkout by itself; the scan then finds one.
    client_rooted = document(
        span("r", "POST", "p2", 0, 10, tags={"span.kind": "client"}, trace_id="a" * 32),
        span("s", "POST /api/checkout/initiate", "p1", 1, 5, parent="r", trace_id="a" * 32),
        trace_id="a" * 32,
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/operations":
            return operations(*OPERATIONS)
        if "operation" in request.url.params:
            return answer(client_rooted)
        return answer(poll("f" * 32, 500), checkout_document("b" * 32, 0))

    assert jaeger(handler).latest_checkout().trace_id == "b" * 32


def test_without_a_checkout_operation_the_scan_pages_back_past_the_polls() -> None:
    ends: list[int] = []
    checkout = "c" * 32

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/operations":
            return httpx.Response(404, text="not here")
        assert "operation" not in request.url.params
        assert int(request.url.params["limit"]) == PAGE_SIZE
        ends.append(int(request.url.params["end"]))
        if len(ends) == 1:
            return answer(*(poll(f"{index + 1:032x}", 1_000 + index) for index in range(PAGE_SIZE)))
        return answer(checkout_document(checkout, 0))

    assert jaeger(handler).latest_checkout().trace_id == checkout
    assert len(ends) == 2
    assert ends[1] == T0 + 1_000_000 - 1  # just before the earliest span of the first page


def test_no_checkout_trace_says_to_run_the_demo() -> None:
    def only_polls(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/operations":
            return operations({"name": "GET /api/checkout/{saga_id}", "spanKind": "server"})
        return answer(poll("f" * 32, 0))

    with pytest.raises(
        TraceViewError, match=r"no checkout trace.*GET /api/checkout/\{saga_id\}.*run `make demo` first"
    ):
        jaeger(only_polls).latest_checkout()
    with pytest.raises(TraceViewError, match=r"make demo"):
        jaeger(lambda request: httpx.Response(404, json={"data": None})).latest_checkout()


def test_saga_search_asks_the_orchestrator_by_tag_then_the_bff() -> None:
    asked: list[tuple[str, dict[str, str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        service = request.url.params["service"]
        asked.append((service, json.loads(request.url.params["tags"])))
        return answer(checkout_document()) if service == "gateway-bff" else answer()

    [trace] = jaeger(handler).by_saga_id(" saga-1 ")
    assert trace.trace_id == TRACE_ID
    assert checkout_root(trace) is not None
    assert asked == [
        ("checkout-orchestrator", {"checkout.saga.id": "saga-1"}),
        ("gateway-bff", {"checkout.saga.id": "saga-1"}),
    ]


def test_of_several_traces_of_a_saga_the_checkout_itself_comes_first() -> None:
    timer = document(span("t", "saga deadline", "p2", -50, 1, tags={"checkout.saga.id": "saga-1"}), trace_id="e" * 32)
    traces = jaeger(lambda request: answer(timer, checkout_document())).by_saga_id("saga-1")
    assert [trace.trace_id for trace in traces] == [TRACE_ID, "e" * 32]


def test_unknown_saga_and_unknown_or_malformed_trace_ids_are_clear_errors() -> None:
    not_found = jaeger(lambda request: httpx.Response(404, json={"data": None, "errors": [{"code": 404}]}))
    with pytest.raises(TraceViewError, match=r"no trace in Jaeger has a span tagged checkout\.saga\.id=nope"):
        not_found.by_saga_id("nope")
    with pytest.raises(TraceViewError, match=f"Jaeger has no trace {TRACE_ID}"):
        not_found.by_trace_id(TRACE_ID.upper())
    with pytest.raises(TraceViewError, match="is not a trace id"):
        not_found.by_trace_id("not-a-trace")


def test_jaeger_not_running_says_make_up() -> None:
    with pytest.raises(JaegerUnavailableError, match=r"does not answer.*run `make up`"):
        JaegerTraces("http://127.0.0.1:1", timeout_s=2).latest_checkout()


def test_show_trace_prints_the_waterfall_and_writes_the_svg_under_the_run_directory(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/api/traces/{TRACE_ID}"
        return answer(checkout_document())

    console = Console(record=True, width=200)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    path = show_trace("http://jaeger.test", tmp_path, console, trace_id=TRACE_ID, http=client)
    assert path == tmp_path / "traces" / f"{TRACE_ID}.svg"
    assert len(_span_groups(ET.parse(path).getroot())) == 5  # noqa: S314 - our own output
    text = console.export_text()
    assert "POST /api/checkout/initiate" in text
    assert f"SVG: {path}" in text


# --- the command line --------------------------------------------------------------------------


def test_cli_trace_help_says_what_the_latest_checkout_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["trace", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--saga-id" in text
    assert "--trace-id" in text
    assert "--svg PATH" in text
    assert "the newest trace" in text
    assert 'gateway-bff server span of a POST to a path containing "checkout"' in text
    assert "status polls (GET) do not count" in text


def test_cli_trace_takes_one_id_at_most() -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["trace", "--saga-id", "s", "--trace-id", TRACE_ID])
    assert exited.value.code == 2


def test_cli_trace_without_jaeger_says_make_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_JAEGER__QUERY_PORT", "1")
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match=r"checkout-stack trace: Jaeger's query API .* run `make up`"):
        cli.main(["trace"])
