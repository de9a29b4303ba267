"""Trace context crosses a Kafka hop: headers in, a consumer span, the same trace on the way out."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from checkout.v1 import events_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.telemetry import PublishSpan, consume_span, continued_span, inject_trace_headers

SAGA = "9d7a3b7e-5c55-4a36-9f0c-1c1f2b6a7d80"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def envelope(trace_headers: dict[str, str]) -> Envelope:
    return Envelope(
        message=events_pb2.OrderCreated(saga_id=SAGA, order_id="o-1"),
        saga_id=SAGA,
        source="order",
        trace_headers=trace_headers,
    )


def test_no_headers_outside_a_trace() -> None:
    assert inject_trace_headers() == {}


def test_without_the_sdk_the_context_still_passes_through_a_hop() -> None:
    with consume_span(envelope({"traceparent": TRACEPARENT}), "checkout.checkout-events"):
        headers = inject_trace_headers()
    assert headers["traceparent"] == TRACEPARENT


def test_a_record_without_trace_headers_starts_no_trace_without_the_sdk() -> None:
    with consume_span(envelope({}), "checkout.checkout-events") as span:
        assert not span.get_span_context().is_valid
        assert inject_trace_headers() == {}


def test_with_an_sdk_the_consumer_span_is_a_child_of_the_producer() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    env = envelope({"traceparent": TRACEPARENT})

    with consume_span(
        env, "checkout.checkout-events", consumer_group="orchestrator", partition=2, offset=7, tracer=tracer
    ):
        outgoing = inject_trace_headers()

    (span,) = exporter.get_finished_spans()
    assert span.name == "process checkout.checkout-events"
    assert span.kind is SpanKind.CONSUMER
    assert trace.format_trace_id(span.context.trace_id) == TRACE_ID
    assert span.parent is not None
    assert trace.format_span_id(span.parent.span_id) == "00f067aa0ba902b7"
    assert span.parent.is_remote
    attributes = dict(span.attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == "checkout.checkout-events"
    assert attributes["messaging.message.id"] == env.id
    assert attributes["messaging.consumer.group.name"] == "orchestrator"
    assert attributes["messaging.destination.partition.id"] == "2"
    assert attributes["messaging.kafka.offset"] == 7
    assert attributes["checkout.saga.id"] == SAGA
    # What a handler publishes inside the span continues the same trace, from this span.
    assert outgoing["traceparent"].split("-")[1] == TRACE_ID
    assert outgoing["traceparent"].split("-")[2] == trace.format_span_id(span.context.span_id)


@pytest.fixture
def recorded() -> tuple[InMemorySpanExporter, trace.Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("test")


def stored_row(trace_headers: dict[str, str]) -> list[list[str]]:
    """An outbox row's headers as stored (JSON pairs), written in a trace or not."""
    return [[name, value.decode()] for name, value in envelope(trace_headers).headers()]


def test_the_send_span_is_a_child_of_the_context_stored_with_the_row(recorded) -> None:
    exporter, tracer = recorded
    row = stored_row({"traceparent": TRACEPARENT})

    async def acknowledged() -> None:
        publish = PublishSpan("checkout.checkout-events", row, SAGA, tracer=tracer)
        delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        delivery.add_done_callback(publish.delivered)
        sent = dict(publish.headers)
        delivery.set_result(RecordMetadata("checkout.checkout-events", 2, TopicPartition("t", 2), 41, -1, 0, -1))
        await asyncio.sleep(0)
        (span,) = exporter.get_finished_spans()
        assert span.name == "send checkout.checkout-events"
        assert span.kind is SpanKind.PRODUCER
        assert trace.format_trace_id(span.context.trace_id) == TRACE_ID
        assert span.parent is not None
        assert trace.format_span_id(span.parent.span_id) == "00f067aa0ba902b7"
        attributes = dict(span.attributes or {})
        assert attributes["messaging.operation.type"] == "send"
        assert attributes["messaging.destination.name"] == "checkout.checkout-events"
        assert attributes["messaging.destination.partition.id"] == "2"
        assert attributes["messaging.kafka.offset"] == 41
        assert attributes["checkout.saga.id"] == SAGA
        assert attributes["cloudevents.event_type"] == "checkout.v1.OrderCreated"
        # The record carries the send span's context: the consumer becomes its child.
        assert sent["traceparent"].decode().split("-")[2] == trace.format_span_id(span.context.span_id)
        assert [name for name, _ in publish.headers].count("traceparent") == 1
        assert {name for name, _ in publish.headers} == {name for name, _ in row}

    asyncio.run(acknowledged())


def test_a_failed_send_ends_its_span_as_an_error(recorded) -> None:
    exporter, tracer = recorded
    publish = PublishSpan("checkout.order-command", stored_row({"traceparent": TRACEPARENT}), SAGA, tracer=tracer)
    publish.failed(TimeoutError("no broker"))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "TimeoutError"


def test_a_row_written_outside_a_trace_is_sent_in_a_trace_of_its_own(recorded) -> None:
    exporter, tracer = recorded
    publish = PublishSpan("checkout.order-command", stored_row({}), SAGA, tracer=tracer)
    publish.failed(RuntimeError("x"))
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert dict(publish.headers)["traceparent"].decode().split("-")[1] == trace.format_trace_id(span.context.trace_id)


def test_without_the_sdk_the_send_passes_the_stored_context_on() -> None:
    publish = PublishSpan("checkout.order-command", stored_row({"traceparent": TRACEPARENT}), SAGA)
    assert dict(publish.headers)["traceparent"].decode() == TRACEPARENT


def test_a_continued_span_resumes_the_stored_trace(recorded) -> None:
    exporter, tracer = recorded
    with continued_span("deadline PAYMENT_PENDING", {"traceparent": TRACEPARENT}, tracer=tracer) as span:
        outgoing = inject_trace_headers()
    (finished,) = exporter.get_finished_spans()
    assert trace.format_trace_id(finished.context.trace_id) == TRACE_ID
    assert finished.parent is not None
    assert trace.format_span_id(finished.parent.span_id) == "00f067aa0ba902b7"
    assert outgoing["traceparent"].split("-")[2] == trace.format_span_id(span.get_span_context().span_id)
