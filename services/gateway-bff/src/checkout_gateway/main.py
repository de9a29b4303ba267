"""What the gateway runs, and its app factory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_gateway.api import carts, checkout
from checkout_gateway.config import GatewaySettings
from checkout_gateway.rate_limit import RateLimitMiddleware
from checkout_gateway.upstreams import UpstreamError, Upstreams, upstream_error_response
from checkout_kit.app import Component, Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.metrics import MessagingMetrics
from checkout_kit.outbox import OutboxRelay

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The gateway's Alembic directory."""


def _outbox_relay(runtime: Runtime) -> OutboxRelay:
    """Publishes the ``CheckoutInitiated`` messages committed with accepted checkouts."""
    return OutboxRelay(
        runtime.sessions,
        runtime.publisher,
        runtime.settings.database,
        runtime.settings.outbox,
        application_name=f"{runtime.settings.service_name} outbox relay",
        metrics=MessagingMetrics.of(runtime.registry),
        failpoint=runtime.failpoint,
    )


SPEC: Final = ServiceSpec(
    title="gateway-bff",
    routers=(checkout.router, carts.router),
    migrations=MIGRATIONS,
    kafka=True,
    components={"outbox relay": _outbox_relay},
)
"""The public API over its own schema; publishes through the outbox (Kafka is part of readiness).

The upstream services are deliberately not part of readiness: an orchestrator outage must turn
status requests into 503s, not take every gateway replica out of the load balancer.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app (connections and upstream clients open in its lifespan)."""
    upstreams = Upstreams(settings.upstreams)

    def upstream_clients(_runtime: Runtime) -> Component:
        return upstreams

    spec = dataclasses.replace(SPEC, components={"upstream clients": upstream_clients, **SPEC.components})
    app = create_service_app(spec, settings)
    app.state.upstreams = upstreams
    app.add_exception_handler(UpstreamError, upstream_error_response)
    if settings.rate_limit.enabled:
        # Outermost: a refused request costs no body read, no span and no database work.
        app.add_middleware(RateLimitMiddleware, settings=settings.rate_limit, registry=app.state.registry)
    return app
