"""The gateway's settings (environment → :class:`GatewaySettings`, built once at startup).

Besides the kit's blocks (``DATABASE__*``, ``KAFKA__*``, ``HTTP__*``, ``OUTBOX__*``) the gateway
reads where its upstreams live and how long it waits for them (``UPSTREAMS__*``). The nested
blocks are subclassed so the gateway's own defaults (schema ``gateway``, port 8100) hold even
when part of a block comes from the environment.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from checkout_kit.settings import DatabaseSettings, HttpSettings, ServiceSettings


class GatewayDatabaseSettings(DatabaseSettings):
    """The database block with the gateway's own schema as default."""

    db_schema: str = Field(default="gateway", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The gateway's schema (``DATABASE__SCHEMA``): accepted checkouts and the outbox."""


class GatewayHttpSettings(HttpSettings):
    """The HTTP block with the gateway's own port as default."""

    port: int = Field(default=8100, ge=1, le=65_535)
    """Port to bind (``HTTP__PORT``)."""


class UpstreamSettings(BaseModel):
    """The services the gateway calls over HTTP, and how patiently."""

    orchestrator_url: str = Field(default="http://127.0.0.1:8101", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """Base URL of the checkout orchestrator (``UPSTREAMS__ORCHESTRATOR_URL``); ``GET /sagas/{id}`` there."""
    cart_url: str = Field(default="http://127.0.0.1:8106", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """Base URL of the cart service (``UPSTREAMS__CART_URL``); ``/api/carts…`` goes to ``/carts…`` there."""
    connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    """How long to wait for a TCP connection to an upstream (``UPSTREAMS__CONNECT_TIMEOUT_S``)."""
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    """How long to wait for an upstream's answer (read, write, pool) before giving up with 504."""
    connect_retries: int = Field(default=1, ge=0, le=5)
    """Retries of a connection that failed to open (safe for every method: nothing was sent)."""
    max_connections: int = Field(default=100, ge=1, le=10_000)
    """Open connections per upstream client, at most."""

    @field_validator("orchestrator_url", "cart_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class GatewaySettings(ServiceSettings):
    """Everything the gateway reads from its environment."""

    service_name: str = "gateway-bff"
    database: GatewayDatabaseSettings = GatewayDatabaseSettings()
    http: GatewayHttpSettings = GatewayHttpSettings()
    upstreams: UpstreamSettings = UpstreamSettings()
