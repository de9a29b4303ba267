"""What the inventory service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_inventory.api import reservations, stock
from checkout_inventory.config import InventorySettings
from checkout_inventory.handlers import InventoryCommands
from checkout_kit.app import Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.participant import command_components
from checkout_kit.topics import Topics

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The inventory's Alembic directory."""


def _command_topic(topics: Topics) -> str:
    return topics.inventory_command


def _handler(runtime: Runtime, settings: InventorySettings) -> InventoryCommands:
    return InventoryCommands(runtime.topics, settings.service_name, settings.max_lines_per_reservation)


SPEC: Final = ServiceSpec(
    title="inventory",
    routers=(stock.router, reservations.router),
    migrations=MIGRATIONS,
    kafka=True,
    # The outbox relay, then the consumer of <prefix>.inventory-command (its group: the service name).
    components=command_components(InventorySettings, _command_topic, _handler),
)
"""Admin HTTP over its own schema; consumes its commands and replies through the outbox."""


def create_app(settings: InventorySettings) -> FastAPI:
    """The inventory app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
