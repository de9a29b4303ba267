"""What the order service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_kit.app import Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.participant import command_components
from checkout_kit.topics import Topics
from checkout_order.api import orders
from checkout_order.config import OrderSettings
from checkout_order.handlers import OrderCommands

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The order service's Alembic directory."""


def _command_topic(topics: Topics) -> str:
    return topics.order_command


def _handler(runtime: Runtime, settings: OrderSettings) -> OrderCommands:
    return OrderCommands(
        runtime.topics, settings.service_name, settings.rejected_customers, settings.max_lines_per_order
    )


SPEC: Final = ServiceSpec(
    title="order",
    routers=(orders.router,),
    migrations=MIGRATIONS,
    kafka=True,
    # The outbox relay, then the consumer of <prefix>.order-command (its group: the service name).
    components=command_components(OrderSettings, _command_topic, _handler),
)
"""Read-only HTTP over its own schema; consumes its commands and replies through the outbox."""


def create_app(settings: OrderSettings) -> FastAPI:
    """The order app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
