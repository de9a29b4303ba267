"""Tracing seams: trace context into and out of Kafka headers, through the OpenTelemetry API only.

The API without an SDK is a no-op that still carries context: a consume span started from a
record's ``traceparent`` is a non-recording span with that parent, so messages published while
handling it carry the same trace on. Installing the SDK (the observability work) turns the same
calls into real spans — no code here changes. The propagator is the global one (W3C trace
context by default, or whatever ``OTEL_PROPAGATORS`` selects once the SDK is configured).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer

from checkout_kit.messaging.envelope import TRACE_HEADERS, Envelope

INSTRUMENTATION_NAME: Final = "checkout_kit"


def inject_trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers, for :attr:`Envelope.trace_headers`.

    Empty when there is no active (valid) span, e.g. without the SDK and outside a consume span.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {name: value for name, value in carrier.items() if name in TRACE_HEADERS}


@contextmanager
def consume_span(
    envelope: Envelope,
    topic: str,
    *,
    consumer_group: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """A CONSUMER span for processing ``envelope``, child of the context its headers carry.

    Named and attributed after the OpenTelemetry messaging conventions (``process <topic>``).
    The span is current inside the block, so database calls and messages published there join
    the checkout's trace.
    """
    parent = propagate.extract(dict(envelope.trace_headers))
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
        "messaging.message.id": envelope.id,
        "messaging.kafka.message.key": envelope.saga_id,
        "cloudevents.event_id": envelope.id,
        "cloudevents.event_type": envelope.type,
        "cloudevents.event_source": envelope.source,
        "checkout.saga_id": envelope.saga_id,
    }
    if consumer_group is not None:
        attributes["messaging.consumer.group.name"] = consumer_group
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    active = tracer or trace.get_tracer(INSTRUMENTATION_NAME)
    with active.start_as_current_span(
        f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def trace_exemplar() -> dict[str, str] | None:
    """``{"trace_id": <32 hex>}`` of the current sampled span, for a histogram exemplar; else None.

    Prometheus links a latency sample to the trace that produced it through this label (shown
    as exemplar dots on Grafana panels, one click to the trace).
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": format(context.trace_id, "032x")}
