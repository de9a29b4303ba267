"""What the order service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_kit.app import Component, Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.consumer import TransactionalConsumer
from checkout_kit.outbox import OutboxRelay
from checkout_order.api import orders
from checkout_order.config import OrderSettings
from checkout_order.handlers import OrderCommands

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The order service's Alembic directory."""


def command_consumer(runtime: Runtime) -> Component:
    """Consumes ``<prefix>.order-command`` as the group named after the service."""
    settings = runtime.settings
    if not isinstance(settings, OrderSettings):
        raise TypeError(f"the order service runs with OrderSettings, not {type(settings).__name__}")
    return TransactionalConsumer(
        [runtime.topics.order_command],
        settings.service_name,
        OrderCommands(runtime.topics, settings.service_name, settings.rejected_customers, settings.max_lines_per_order),
        runtime.sessions,
        runtime.publisher,
        settings.kafka,
        settings.service_name,
    )


def outbox_relay(runtime: Runtime) -> Component:
    """Publishes the replies the handler enqueued."""
    settings = runtime.settings
    return OutboxRelay(
        runtime.sessions,
        runtime.publisher,
        settings.database,
        settings.outbox,
        application_name=f"{settings.service_name} outbox-relay",
    )


SPEC: Final = ServiceSpec(
    title="order",
    routers=(orders.router,),
    migrations=MIGRATIONS,
    kafka=True,
    # The relay starts first and stops last: replies the consumer commits while stopping still leave.
    components={"outbox-relay": outbox_relay, "command-consumer": command_consumer},
)
"""Read-only HTTP over its own schema; consumes its commands and replies through the outbox."""


def create_app(settings: OrderSettings) -> FastAPI:
    """The order app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
