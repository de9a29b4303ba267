"""The inventory service's settings (environment → :class:`InventorySettings`, built once at startup).

The nested blocks are subclassed, not just given other default instances: pydantic-settings
builds a nested block from the environment variables it finds, so with ``DATABASE__URL`` set a
plain ``DatabaseSettings`` would fall back to *its* default schema, not the service's.
"""

from __future__ import annotations

from pydantic import Field

from checkout_kit.settings import DatabaseSettings, HttpSettings, ServiceSettings


class InventoryDatabaseSettings(DatabaseSettings):
    """The database block with the inventory's own schema as default."""

    db_schema: str = Field(default="inventory", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The inventory's schema (``DATABASE__SCHEMA``)."""


class InventoryHttpSettings(HttpSettings):
    """The HTTP block with the inventory's own port as default."""

    port: int = Field(default=8102, ge=1, le=65_535)
    """Port to bind (``HTTP__PORT``)."""


class InventorySettings(ServiceSettings):
    """Everything the inventory service reads from its environment."""

    service_name: str = "inventory"
    """Name in logs and metrics, the CloudEvents source of its replies, and its consumer group."""
    database: InventoryDatabaseSettings = InventoryDatabaseSettings()
    http: InventoryHttpSettings = InventoryHttpSettings()
    max_lines_per_reservation: int = Field(default=100, ge=1, le=1_000)
    """Distinct SKUs one ReserveInventory may ask for (``MAX_LINES_PER_RESERVATION``); more is an
    invalid command (dead-lettered): it bounds how many stock rows one transaction locks."""
