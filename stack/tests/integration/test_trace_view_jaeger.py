"""`make trace` against the real Jaeger: a two-service trace sent over OTLP is found and rendered.

Two TracerProviders with their own ``service.name`` stand in for the BFF and the orchestrator;
the trace context crosses from one to the other through W3C headers, as it crosses Kafka. The
service names are unique per run so that the search cannot pick up anything else.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from rich.console import Console

from checkout_stack import cli
from checkout_stack.trace_view import SVG_NS, JaegerTraces, Waterfall, layout, render_svg, render_terminal
from checkout_stack.traces import TraceQuery

pytestmark = pytest.mark.integration

SPANS = 4


def _provider(service: str, otlp_endpoint: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")))
    return provider


@pytest.fixture(scope="module")
def sent_trace(otlp_endpoint: str, trace_query: TraceQuery) -> dict[str, str]:
    """Send bff → (headers) → orchestrator spans, wait until Jaeger has all of them."""
    suffix = uuid.uuid4().hex[:10]
    bff_service, orchestrator_service = f"trace-view-bff-{suffix}", f"trace-view-orch-{suffix}"
    saga_id = str(uuid.uuid4())
    bff, orchestrator = _provider(bff_service, otlp_endpoint), _provider(orchestrator_service, otlp_endpoint)
    try:
        bff_tracer = bff.get_tracer("checkout_stack.tests.trace_view")
        orchestrator_tracer = orchestrator.get_tracer("checkout_stack.tests.trace_view")
        headers: dict[str, str] = {}
        attributes = {"http.request.method": "POST", "http.route": "/api/checkout/initiate"}
        with bff_tracer.start_as_current_span(
            "POST /api/checkout/initiate", kind=SpanKind.SERVER, attributes=attributes
        ) as root:
            with bff_tracer.start_as_current_span("publish checkout.checkout-events", kind=SpanKind.PRODUCER):
                TraceContextTextMapPropagator().inject(headers)
            trace_id = format(root.get_span_context().trace_id, "032x")
        # The orchestrator's side: no ambient context, only what the headers carry.
        token = otel_context.attach(otel_context.Context())
        try:
            parent = TraceContextTextMapPropagator().extract(headers)
            with (
                orchestrator_tracer.start_as_current_span(
                    "process checkout.checkout-events",
                    context=parent,
                    kind=SpanKind.CONSUMER,
                    attributes={"checkout.saga.id": saga_id},
                ),
                orchestrator_tracer.start_as_current_span("reserve inventory") as failing,
            ):
                failing.set_status(Status(StatusCode.ERROR, "out of stock"))
        finally:
            otel_context.detach(token)
        assert bff.force_flush(timeout_millis=10_000)
        assert orchestrator.force_flush(timeout_millis=10_000)
    finally:
        bff.shutdown()
        orchestrator.shutdown()
    trace_query.wait_for_trace(trace_id, min_spans=SPANS)
    return {"trace_id": trace_id, "saga_id": saga_id, "bff": bff_service, "orchestrator": orchestrator_service}


def _check(waterfall: Waterfall, sent: dict[str, str]) -> None:
    assert waterfall.trace_id == sent["trace_id"]
    rows = [(row.depth, row.span.service, row.span.name) for row in waterfall.rows]
    assert rows == [
        (0, sent["bff"], "POST /api/checkout/initiate"),
        (1, sent["bff"], "publish checkout.checkout-events"),
        (2, sent["orchestrator"], "process checkout.checkout-events"),
        (3, sent["orchestrator"], "reserve inventory"),
    ]
    assert [row.span.error for row in waterfall.rows] == [False, False, False, True]
    assert waterfall.saga_id == sent["saga_id"]

    console = Console(record=True, width=220)
    render_terminal(waterfall, console)
    lines = console.export_text().splitlines()
    assert any(sent["bff"] in line and "POST /api/checkout/initiate" in line for line in lines)
    assert any(sent["orchestrator"] in line and "✗ reserve inventory" in line for line in lines)

    svg = ET.fromstring(render_svg(waterfall))  # noqa: S314 - our own output
    groups = [g for g in svg.iter(f"{{{SVG_NS}}}g") if g.get("class") == "span"]
    assert [g.get("data-service") for g in groups] == [
        sent["bff"],
        sent["bff"],
        sent["orchestrator"],
        sent["orchestrator"],
    ]


def test_trace_is_found_and_rendered_by_saga_id(sent_trace: dict[str, str], traces_query_url: str) -> None:
    jaeger = JaegerTraces(traces_query_url)
    try:
        [trace] = jaeger.by_saga_id(sent_trace["saga_id"], services=(sent_trace["orchestrator"], sent_trace["bff"]))
    finally:
        jaeger.close()
    _check(layout(trace), sent_trace)


def test_trace_is_found_and_rendered_by_trace_id(sent_trace: dict[str, str], traces_query_url: str) -> None:
    jaeger = JaegerTraces(traces_query_url)
    try:
        trace = jaeger.by_trace_id(sent_trace["trace_id"])
    finally:
        jaeger.close()
    _check(layout(trace), sent_trace)


def test_the_checkout_is_the_latest_checkout_of_its_bff(sent_trace: dict[str, str], traces_query_url: str) -> None:
    jaeger = JaegerTraces(traces_query_url)
    try:
        trace = jaeger.latest_checkout(service=sent_trace["bff"])
    finally:
        jaeger.close()
    assert trace.trace_id == sent_trace["trace_id"]


def test_cli_trace_by_trace_id_prints_both_services_and_writes_the_svg(
    sent_trace: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = tmp_path / "checkout.svg"
    assert cli.main(["trace", "--trace-id", sent_trace["trace_id"], "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    assert sent_trace["bff"] in out
    assert sent_trace["orchestrator"] in out
    assert f"SVG: {svg}" in " ".join(out.split())
    groups = [g for g in ET.parse(svg).getroot().iter(f"{{{SVG_NS}}}g") if g.get("class") == "span"]  # noqa: S314
    assert len(groups) == SPANS
