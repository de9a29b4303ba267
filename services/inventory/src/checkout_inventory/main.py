"""What the inventory service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_inventory.api import reservations, stock
from checkout_inventory.config import InventorySettings
from checkout_inventory.handlers import InventoryCommands
from checkout_kit.app import Component, Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.consumer import TransactionalConsumer
from checkout_kit.outbox import OutboxRelay

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The inventory's Alembic directory."""


def command_consumer(runtime: Runtime) -> Component:
    """Consumes ``<prefix>.inventory-command`` as the group named after the service."""
    settings = runtime.settings
    if not isinstance(settings, InventorySettings):
        raise TypeError(f"the inventory service runs with InventorySettings, not {type(settings).__name__}")
    return TransactionalConsumer(
        [runtime.topics.inventory_command],
        settings.service_name,
        InventoryCommands(runtime.topics, settings.service_name, settings.max_lines_per_reservation),
        runtime.sessions,
        runtime.publisher,
        settings.kafka,
        settings.service_name,
    )


def outbox_relay(runtime: Runtime) -> Component:
    """Publishes the replies the handlers enqueued."""
    settings = runtime.settings
    return OutboxRelay(
        runtime.sessions,
        runtime.publisher,
        settings.database,
        settings.outbox,
        application_name=f"{settings.service_name} outbox-relay",
    )


SPEC: Final = ServiceSpec(
    title="inventory",
    routers=(stock.router, reservations.router),
    migrations=MIGRATIONS,
    kafka=True,
    # The relay starts first and stops last: replies the consumer commits while stopping still leave.
    components={"outbox-relay": outbox_relay, "command-consumer": command_consumer},
)
"""Admin HTTP over its own schema; consumes its commands and replies through the outbox."""


def create_app(settings: InventorySettings) -> FastAPI:
    """The inventory app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
