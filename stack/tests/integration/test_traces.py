"""Spans sent over OTLP/HTTP with the OpenTelemetry SDK come back from the trace backend's query API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from checkout_stack.traces import TraceQuery

pytestmark = pytest.mark.integration


def _traces_of(trace_query: TraceQuery, service: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Poll ``/api/traces?service=…`` until it returns something (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        traces = trace_query.traces(service)
        if traces:
            return traces
        time.sleep(0.5)
    raise AssertionError(f"no trace of service {service} after {timeout_s:.0f}s")


def test_span_sent_over_otlp_http_is_queryable(otlp_endpoint: str, trace_query: TraceQuery) -> None:
    service = f"stack-test-{uuid.uuid4().hex[:12]}"
    order_id = str(uuid.uuid4())
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")))
    tracer = provider.get_tracer("checkout_stack.tests")
    try:
        with (
            tracer.start_as_current_span(
                "POST /checkouts", kind=SpanKind.SERVER, attributes={"checkout.order_id": order_id}
            ) as parent,
            tracer.start_as_current_span("reserve stock") as child,
        ):
            trace_id = format(parent.get_span_context().trace_id, "032x")
            parent_id = format(parent.get_span_context().span_id, "016x")
            child_id = format(child.get_span_context().span_id, "016x")
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()

    [trace] = _traces_of(trace_query, service)
    assert trace["traceID"] == trace_id
    spans = {span["spanID"]: span for span in trace["spans"]}
    assert set(spans) == {parent_id, child_id}

    server_span = spans[parent_id]
    assert server_span["operationName"] == "POST /checkouts"
    tags = {tag["key"]: tag["value"] for tag in server_span["tags"]}
    assert tags["checkout.order_id"] == order_id
    assert tags["span.kind"] == "server"
    assert trace["processes"][server_span["processID"]]["serviceName"] == service

    child_span = spans[child_id]
    assert child_span["operationName"] == "reserve stock"
    assert {"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent_id} in child_span["references"]
