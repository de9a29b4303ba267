"""HTTP server metrics: request count and duration per route template, method and status.

The metrics live in a :class:`~prometheus_client.CollectorRegistry` handed in by the app factory
(one per app), never in the library's global registry, so two apps in one test process do not
collide and a test sees only its own app's samples.

Routes are labelled by their *template* (``/carts/{cart_id}``), never by the raw path, so an id in
a URL cannot explode the label cardinality; requests that match no route share one label.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE: Final = "<unmatched>"
"""Route label of requests no route matched (404s from scanners, typos)."""
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
"""Seconds; dense below 100 ms where a healthy service answers."""

ExemplarProvider = Callable[[], dict[str, str] | None]
"""Returns the exemplar labels (e.g. ``{"trace_id": ...}``) for the current request, or None.

This is the seam tracing fills: the default provides none.
"""


def _no_exemplar() -> dict[str, str] | None:
    return None


class HttpMetrics:
    """The HTTP server instruments of one app, registered in the registry given."""

    def __init__(self, registry: CollectorRegistry, exemplar: ExemplarProvider = _no_exemplar) -> None:
        self.requests = Counter(
            "http_server_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from receiving an HTTP request to sending the end of its response.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_server_active_requests",
            "HTTP requests being handled right now.",
            registry=registry,
        )
        self._exemplar = exemplar

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds, exemplar=self._exemplar())


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
        started = time.perf_counter()

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe(scope["method"], route_template(scope), status, time.perf_counter() - started)
