"""Tracing seams: trace context into and out of Kafka headers, through the OpenTelemetry API only.

The API without an SDK is a no-op that still carries context: a consume span started from a
record's ``traceparent`` is a non-recording span with that parent, so messages published while
handling it carry the same trace on. With the SDK (installed at process start by
:mod:`checkout_kit.tracing`) the same calls make real spans — no code here changes. The
propagator is the global one (W3C trace context by default, or what ``OTEL_PROPAGATORS`` selects).

One checkout is one trace across every Kafka hop:

- a message's ``traceparent``/``tracestate`` are captured when it is *written* (the envelope's
  :attr:`~checkout_kit.messaging.envelope.Envelope.trace_headers`, stored with the outbox row);
- the outbox relay publishes it in a PRODUCER span ``send <topic>`` (:class:`PublishSpan`), child
  of that stored context — the publish belongs to the saga, not to the relay's loop — and the
  record carries the send span's context;
- the consumer processes it in a CONSUMER span ``process <topic>`` (:func:`consume_span`), child
  of the send span; what the handler writes and enqueues there continues the trace;
- work started later from stored state (a saga's deadline) continues the context stored with it
  (:func:`continued_span`).

Spans follow the OpenTelemetry messaging conventions (``messaging.*``) and carry the saga's own
attributes: :data:`SAGA_ID`, :data:`SAGA_STEP`, :data:`SAGA_STATE`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from checkout_kit.messaging.envelope import TRACE_HEADERS, Envelope

INSTRUMENTATION_NAME: Final = "checkout_kit"

SAGA_ID: Final = "checkout.saga.id"
"""Span attribute: the saga (checkout) id, on every span of a saga hop (search a checkout's trace by it)."""
SAGA_STEP: Final = "checkout.saga.step"
"""Span attribute: the saga step a span handles (``reserve_inventory``, ``process_payment`` …)."""
SAGA_STATE: Final = "checkout.saga.state"
"""Span attribute: the saga's state once the orchestrator applied what the span handles."""


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
        SAGA_ID: envelope.saga_id,
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


def _stored_context(headers: Mapping[str, str]) -> Any:
    """The context the W3C headers carry (an empty one without them)."""
    return propagate.extract({name: value for name, value in headers.items() if name in TRACE_HEADERS})


class PublishSpan:
    """A PRODUCER span ``send <topic>`` for one stored message, child of the context it was written in.

    Written by hand rather than by the aiokafka instrumentation: the outbox relay sends rows that
    other transactions wrote, in its own loop, so the current context at send time is the relay's
    (none); the right parent is the context stored with the row. :attr:`headers` are the row's
    headers with ``traceparent``/``tracestate`` replaced by this span's, so the consumer's span is
    a child of the send (the messaging conventions' creation context). The span ends when the
    broker acknowledges (:meth:`delivered`) or the send fails (:meth:`failed`).
    """

    def __init__(
        self, topic: str, headers: Sequence[Sequence[str]], key: str | None, *, tracer: Tracer | None = None
    ) -> None:
        stored = {str(name): str(value) for name, value in headers}
        parent = _stored_context(stored)
        attributes: dict[str, str] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
        }
        if key is not None:
            attributes["messaging.kafka.message.key"] = key
        for header, attribute in (
            ("ce_id", "messaging.message.id"),
            ("ce_type", "cloudevents.event_type"),
            ("ce_source", "cloudevents.event_source"),
            ("saga_id", SAGA_ID),
        ):
            if header in stored:
                attributes[attribute] = stored[header]
        if "ce_id" in stored:
            attributes["cloudevents.event_id"] = stored["ce_id"]
        active = tracer or trace.get_tracer(INSTRUMENTATION_NAME)
        self.span = active.start_span(f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.span, parent))
        self.headers: list[tuple[str, bytes]] = [
            (name, value.encode()) for name, value in stored.items() if name not in TRACE_HEADERS
        ] + [(name, carrier[name].encode()) for name in TRACE_HEADERS if name in carrier]
        """The record's headers, carrying this span's context."""

    def delivered(self, delivery: asyncio.Future[Any]) -> None:
        """End the span with the broker's answer (a ``Future.add_done_callback`` callback)."""
        if delivery.cancelled():
            self.failed(asyncio.CancelledError("the send was abandoned"))
            return
        error = delivery.exception()
        if error is not None:
            self.failed(error)
            return
        metadata = delivery.result()
        self.span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
        self.span.set_attribute("messaging.kafka.offset", int(metadata.offset))
        self.span.end()

    def failed(self, error: BaseException) -> None:
        """End the span as failed (the row stays unpublished and is sent again later)."""
        self.span.record_exception(error)
        self.span.set_attribute("error.type", type(error).__name__)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.span.end()


@contextmanager
def continued_span(
    name: str,
    trace_headers: Mapping[str, str],
    *,
    attributes: Mapping[str, str | int] | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """An INTERNAL span continuing a trace stored earlier (W3C headers), current inside the block.

    For work that state stored in the database starts later, outside any message or request —
    the orchestrator's deadline scanner re-sending a command or compensating a saga — so that it
    stays in the checkout's trace. Without stored headers the span starts a trace of its own.
    """
    active = tracer or trace.get_tracer(INSTRUMENTATION_NAME)
    with active.start_as_current_span(
        name, context=_stored_context(trace_headers), kind=SpanKind.INTERNAL, attributes=attributes
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
