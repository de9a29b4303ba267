"""The service's Prometheus instruments: HTTP server metrics and the messaging metrics of the kit.

Instruments live in a :class:`~prometheus_client.CollectorRegistry` handed in by the app factory
(one per app, :func:`service_registry`), never in the library's global registry, so two apps in
one test process do not collide and a test sees only its own app's samples. Components that
share one set of instruments get it with :meth:`MessagingMetrics.of` (built once per registry).
Names follow ``docs/metrics.md``, the catalogue dashboards and alerts are written against.

HTTP: routes are labelled by their *template* (``/carts/{cart_id}``), never by the raw path, so
an id in a URL cannot explode the label cardinality; requests that match no route share one label.

Messaging (every service that consumes or publishes): records consumed by outcome and the time
to handle each, the consumers' lag, the outbox backlog and its oldest row, the relay's latency
from the outbox write to Kafka's acknowledgement, and dead letters by source topic and reason.
Counters are incremented once the effect they count is durable (the database commit, the
broker's acknowledgement), so an at-least-once redelivery is counted as a duplicate, not twice.

Latency histograms carry the current trace as an exemplar (``trace_id``), which Prometheus
keeps when it scrapes the OpenMetrics exposition (``/metrics`` negotiates it).

Gauges that only a query can answer (lag, backlog) are refreshed by a :class:`PeriodicRefresh`
loop in the background, never computed during a scrape: a slow database or broker must not make
``/metrics`` slow or fail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkout_kit.background import BackgroundLoop
from checkout_kit.backoff import wait_or_stop
from checkout_kit.telemetry import trace_exemplar

log = logging.getLogger(__name__)

UNMATCHED_ROUTE: Final = "<unmatched>"
"""Route label of requests no route matched (404s from scanners, typos)."""
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
"""Seconds; dense below 100 ms where a healthy service answers."""
DELIVERY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds from an outbox write to the broker's ack: milliseconds normally, minutes in an outage."""

PROCESSED: Final = "processed"
"""Outcome of a record whose handler ran and whose effects committed."""
DUPLICATE: Final = "duplicate"
"""Outcome of a redelivered record the inbox recognised (committed without running the handler)."""
DEAD_LETTERED: Final = "dead_lettered"
"""Outcome of a record parked in the dead-letter topic (poison, refused, or failing for good)."""
FAILED: Final = "failed"
"""Outcome of one attempt that raised and will be retried (each retry counts once more)."""
CONSUMED_OUTCOMES: Final = (PROCESSED, DUPLICATE, DEAD_LETTERED, FAILED)

ExemplarProvider = Callable[[], dict[str, str] | None]
"""Returns the exemplar labels (``{"trace_id": ...}``) of the current span, or None."""

_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")

InstrumentsT = TypeVar("InstrumentsT")
_BUILT: weakref.WeakKeyDictionary[CollectorRegistry, dict[object, object]] = weakref.WeakKeyDictionary()


def service_registry() -> CollectorRegistry:
    """A fresh registry for one app, with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def instruments_of(registry: CollectorRegistry, build: Callable[[CollectorRegistry], InstrumentsT]) -> InstrumentsT:
    """The instruments ``build`` registers in ``registry``, built on first use and shared after.

    A registry refuses a second metric of the same name; every component of an app that counts
    into the same metrics (the consumer and the relay, the saga consumer and the deadline
    scanner) therefore asks here, and a second lifespan of the same app finds them too.
    """
    built = _BUILT.setdefault(registry, {})
    if build not in built:
        built[build] = build(registry)
    instruments: InstrumentsT = built[build]  # type: ignore[assignment]  # keyed by its own builder
    return instruments


def traceparent_exemplar(traceparent: str | None) -> dict[str, str] | None:
    """``{"trace_id": ...}`` of a W3C ``traceparent`` whose trace is sampled, else None.

    For latencies measured where no span is current (the relay, after its commit), the trace the
    message itself travels in is the one to link to.
    """
    match = _TRACEPARENT.match(traceparent or "")
    if match is None or set(match.group(1)) == {"0"} or not int(match.group(2), 16) & 1:
        return None
    return {"trace_id": match.group(1)}


class HttpMetrics:
    """The HTTP server instruments of one app, registered in the registry given."""

    def __init__(self, registry: CollectorRegistry, exemplar: ExemplarProvider = trace_exemplar) -> None:
        self.requests = Counter(
            "http_server_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from receiving an HTTP request to sending the start of its response.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_server_active_requests",
            "HTTP requests being handled right now.",
            ("method",),
            registry=registry,
        )
        self.exemplar = exemplar
        """Where a duration's exemplar comes from (the current span)."""

    def observe(
        self, method: str, route: str, status: int, seconds: float, exemplar: dict[str, str] | None = None
    ) -> None:
        """Record one finished request (``exemplar`` defaults to the current span's trace)."""
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds, exemplar=exemplar or self.exemplar())


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request (set by the router in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (no ``BaseHTTPMiddleware``: it streams)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and count it under its route template and final status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        exemplar: dict[str, str] | None = None
        started = time.perf_counter()

        async def send_and_record_status(message: Message) -> None:
            nonlocal status, exemplar
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # The request's span (the tracing middleware's, inside this one) is current now.
                exemplar = self.metrics.exemplar()
            await send(message)

        in_flight = self.metrics.in_flight.labels(scope["method"])
        in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            in_flight.dec()
            self.metrics.observe(
                scope["method"], route_template(scope), status, time.perf_counter() - started, exemplar
            )


class MessagingMetrics:
    """The messaging instruments of one app (consumers, outbox relay, dead letters).

    Get them with :meth:`of` (one set per registry); a component built without them (a test)
    counts into a private registry nobody scrapes.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "checkout_messages_consumed",
            "Records handled by a consumer, by topic and outcome "
            "(processed, duplicate, dead_lettered; failed counts each attempt that will be retried).",
            ("topic", "outcome"),
            registry=registry,
        )
        self.processing = Histogram(
            "checkout_message_processing_duration_seconds",
            "Time to handle one consumed record: decode, inbox check, handler and database commit.",
            ("topic",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "checkout_consumer_lag",
            "Records of a partition this consumer owns that are not done yet: "
            "the partition's end offset minus the group's committed offset.",
            ("topic", "partition"),
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "checkout_outbox_backlog",
            "Outbox rows not yet published to Kafka.",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "checkout_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row (0 when there is none).",
            registry=registry,
        )
        self.relay_latency = Histogram(
            "checkout_outbox_relay_latency_seconds",
            "Time from a message's outbox write to the broker's acknowledgement of it.",
            ("topic",),
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.published = Counter(
            "checkout_outbox_published",
            "Messages the outbox relay published (acknowledged by Kafka and marked published).",
            ("topic",),
            registry=registry,
        )
        self.dead_letters = Counter(
            "checkout_dead_letters",
            "Poison records sent to the dead-letter topic, by the topic they were read from and the reason.",
            ("topic", "reason"),
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> MessagingMetrics:
        """The app's messaging instruments in ``registry`` (created on first use)."""
        return instruments_of(registry, cls)

    @classmethod
    def detached(cls) -> MessagingMetrics:
        """Instruments in a registry of their own, for a component built without the app's."""
        return cls(CollectorRegistry())

    def consumed_record(
        self, topic: str, outcome: str, seconds: float | None = None, exemplar: dict[str, str] | None = None
    ) -> None:
        """Count one record's outcome and, when given, how long handling it took."""
        self.consumed.labels(topic, outcome).inc()
        if seconds is not None:
            self.processing.labels(topic).observe(seconds, exemplar=exemplar)

    def published_row(self, topic: str, written_at: dt.datetime, acked_at: float, traceparent: str | None) -> None:
        """Count a published outbox row and observe its delay (write → ack; a skewed clock counts 0)."""
        self.published.labels(topic).inc()
        seconds = max(0.0, acked_at - written_at.timestamp())
        self.relay_latency.labels(topic).observe(seconds, exemplar=traceparent_exemplar(traceparent))

    def set_backlog(self, count: int, oldest_age_s: float) -> None:
        """The outbox's unpublished rows and the age of the oldest."""
        self.outbox_backlog.set(count)
        self.outbox_oldest_age.set(max(0.0, oldest_age_s))

    def set_lag(self, lags: dict[tuple[str, int], int], dropped: Iterable[tuple[str, int]] = ()) -> None:
        """Set the lag of each ``(topic, partition)``; forget ``dropped`` ones (no longer this consumer's)."""
        for topic, partition in dropped:
            with contextlib.suppress(KeyError):  # never set, or removed already
                self.consumer_lag.remove(topic, str(partition))
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)


class PeriodicRefresh(BackgroundLoop):
    """Runs ``refresh`` at once and then every ``interval_s`` until stopped (gauges fed by a query).

    A failing refresh is logged (a warning when a run of failures begins, then quietly) and tried
    again at the next interval; the gauges keep their last values meanwhile. The loop never ends
    on its own, so the service's readiness never depends on its metrics.
    """

    in_flight_work = "its refresh"

    def __init__(self, description: str, refresh: Callable[[], Awaitable[None]], interval_s: float) -> None:
        super().__init__(description, f"refresh[{description}]")
        self.refresh = refresh
        self.interval_s = interval_s

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self.refresh()
            except Exception as error:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "%s failed (%s: %s); retrying every %gs",
                    self.description,
                    type(error).__name__,
                    error,
                    self.interval_s,
                )
            else:
                if failures:
                    log.info("%s works again after %d failures", self.description, failures)
                failures = 0
            await wait_or_stop(self._stopping, self.interval_s)
