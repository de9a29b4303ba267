"""What the cart service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_cart.api import carts
from checkout_cart.config import CartSettings
from checkout_kit.app import ServiceSpec
from checkout_kit.app import create_app as create_service_app

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The cart's Alembic directory."""

SPEC: Final = ServiceSpec(title="cart", routers=(carts.router,), migrations=MIGRATIONS)
"""HTTP routes over its own schema; no Kafka, no background components."""


def create_app(settings: CartSettings) -> FastAPI:
    """The cart app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
