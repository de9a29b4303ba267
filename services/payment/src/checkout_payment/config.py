"""The payment service's settings (environment → :class:`PaymentSettings`, built once at startup).

The nested blocks are subclassed, not just given other default instances: pydantic-settings
builds a nested block from the environment variables it finds, so with ``DATABASE__URL`` set a
plain ``DatabaseSettings`` would fall back to *its* default schema, not the service's.
"""

from __future__ import annotations

from pydantic import Field

from checkout_kit.settings import DatabaseSettings, HttpSettings, ServiceSettings


class PaymentDatabaseSettings(DatabaseSettings):
    """The database block with the payment service's own schema as default."""

    db_schema: str = Field(default="payment", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The payment service's schema (``DATABASE__SCHEMA``)."""


class PaymentHttpSettings(HttpSettings):
    """The HTTP block with the payment service's own port as default."""

    port: int = Field(default=8103, ge=1, le=65_535)
    """Port to bind (``HTTP__PORT``)."""


class PaymentSettings(ServiceSettings):
    """Everything the payment service reads from its environment."""

    service_name: str = "payment"
    """Name in logs and metrics, the CloudEvents source of its replies, and its consumer group."""
    database: PaymentDatabaseSettings = PaymentDatabaseSettings()
    http: PaymentHttpSettings = PaymentHttpSettings()
