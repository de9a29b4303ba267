"""The gateway's settings (environment → :class:`GatewaySettings`, built once at startup).

Besides the kit's blocks (``DATABASE__*``, ``KAFKA__*``, ``HTTP__*``, ``OUTBOX__*``) the gateway
reads where its upstreams live and how long it waits for them (``UPSTREAMS__*``) and how fast one
client may call it (``RATE_LIMIT__*``, see :mod:`checkout_gateway.rate_limit`). The nested
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


class RateLimitSettings(BaseModel):
    """Request rate per client (``RATE_LIMIT__*``): a token bucket per client address.

    The defaults (on, 50 writes a second, bursts of 200, a read a fiftieth of a write) are sized
    against what one legitimate client does here: the e2e suites and the benchmark drive the gateway
    from a single address with up to 100 initiates at once (within the burst, with half of it to
    spare) and then poll every pending checkout's status in rounds, 100 GETs every ~0.1 s at most
    (2 tokens a round, ~20 a second, under the refill), while the platform itself completes ~5-13
    sagas a second on two cores — so 50 initiates a second from one client is already more than it can
    serve, and a client above it is flooding it. Reads are cheap (one indexed lookup or one upstream
    GET) but not free, hence a cost of their own rather than none.
    """

    enabled: bool = True
    """Limit at all (``RATE_LIMIT__ENABLED``); off for a gateway behind a proxy that already limits."""
    requests_per_s: float = Field(default=50.0, gt=0, le=1_000_000)
    """Tokens a client's bucket regains a second (``RATE_LIMIT__REQUESTS_PER_S``): its sustained write rate."""
    burst: float = Field(default=200.0, ge=1, le=10_000_000)
    """Tokens a bucket holds at most (``RATE_LIMIT__BURST``): how many writes an idle client may send at once."""
    read_cost: float = Field(default=0.02, ge=0, le=1)
    """Tokens a ``GET``/``HEAD``/``OPTIONS`` costs (``RATE_LIMIT__READ_COST``; a write costs 1): status polls
    of many pending checkouts stay within the rate while a flood of reads does not."""
    client_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    """A header set by a trusted proxy in front of the gateway that names the client (``RATE_LIMIT__CLIENT_HEADER``,
    e.g. ``X-Forwarded-For``: its last address counts). Unset: the TCP peer's address, since anyone can send any
    header — trust one only when every request comes through a proxy that sets it."""
    max_clients: int = Field(default=10_000, ge=1, le=10_000_000)
    """Buckets kept at most (``RATE_LIMIT__MAX_CLIENTS``); idle ones are forgotten first (bounded memory)."""


class GatewaySettings(ServiceSettings):
    """Everything the gateway reads from its environment."""

    service_name: str = "gateway-bff"
    database: GatewayDatabaseSettings = GatewayDatabaseSettings()
    http: GatewayHttpSettings = GatewayHttpSettings()
    upstreams: UpstreamSettings = UpstreamSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
