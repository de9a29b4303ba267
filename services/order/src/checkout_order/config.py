"""The order service's settings (environment → :class:`OrderSettings`, built once at startup).

The nested blocks are subclassed, not just given other default instances: pydantic-settings
builds a nested block from the environment variables it finds, so with ``DATABASE__URL`` set a
plain ``DatabaseSettings`` would fall back to *its* default schema, not the service's.
"""

from __future__ import annotations

from pydantic import Field

from checkout_kit.settings import DatabaseSettings, HttpSettings, ServiceSettings


class OrderDatabaseSettings(DatabaseSettings):
    """The database block with the order service's own schema as default.

    ``orders``, not ``order``: ORDER is an SQL keyword, and a schema that needs quoting in
    every hand-written query is a trap during an incident.
    """

    db_schema: str = Field(default="orders", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The order service's schema (``DATABASE__SCHEMA``)."""


class OrderHttpSettings(HttpSettings):
    """The HTTP block with the order service's own port as default."""

    port: int = Field(default=8104, ge=1, le=65_535)
    """Port to bind (``HTTP__PORT``)."""


class OrderSettings(ServiceSettings):
    """Everything the order service reads from its environment."""

    service_name: str = "order"
    """Name in logs and metrics, the CloudEvents source of its replies, and its consumer group."""
    database: OrderDatabaseSettings = OrderDatabaseSettings()
    http: OrderHttpSettings = OrderHttpSettings()
    rejected_customers: frozenset[str] = frozenset({"cust_order_fail"})
    """Customers whose orders are refused (``REJECTED_CUSTOMERS``, a JSON list): the test hook that
    makes the saga's last step fail, so refund and release can be exercised end to end."""
    max_lines_per_order: int = Field(default=1_000, ge=1, le=10_000)
    """Lines one CreateOrder may carry (``MAX_LINES_PER_ORDER``); more is an invalid command."""
