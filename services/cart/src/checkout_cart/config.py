"""The cart service's settings (environment → :class:`CartSettings`, built once at startup).

The nested blocks are subclassed, not just given other default instances: pydantic-settings
builds a nested block from the environment variables it finds, so with ``DATABASE__URL`` set a
plain ``DatabaseSettings`` would fall back to *its* default schema, not the service's.
"""

from __future__ import annotations

from pydantic import Field

from checkout_kit.settings import DatabaseSettings, HttpSettings, ServiceSettings


class CartDatabaseSettings(DatabaseSettings):
    """The database block with the cart's own schema as default."""

    db_schema: str = Field(default="cart", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The cart's schema (``DATABASE__SCHEMA``)."""


class CartHttpSettings(HttpSettings):
    """The HTTP block with the cart's own port as default."""

    port: int = Field(default=8106, ge=1, le=65_535)
    """Port to bind (``HTTP__PORT``)."""


class CartSettings(ServiceSettings):
    """Everything the cart service reads from its environment."""

    service_name: str = "cart"
    database: CartDatabaseSettings = CartDatabaseSettings()
    http: CartHttpSettings = CartHttpSettings()
    max_lines_per_cart: int = Field(default=100, ge=1, le=1_000)
    """Distinct SKUs one cart may hold (``MAX_LINES_PER_CART``); one more is refused with 409."""
