"""Where the stack lives and which loopback ports it listens on.

Built once from the environment (prefix ``CHECKOUT_STACK_``, nested with ``__``), e.g.
``CHECKOUT_STACK_CACHE_DIR=/var/cache/cp``, ``CHECKOUT_STACK_KAFKA__PORT=29092`` or
``CHECKOUT_STACK_SERVICES__GATEWAY_PORT=9100``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The repository checkout this package lives in (stack/src/checkout_stack → repo)."""

HOST = "127.0.0.1"
"""Every server binds to loopback only."""


class PostgresPorts(BaseModel):
    """PostgreSQL server."""

    port: int = 15432
    """TCP port of the server."""
    user: str = "postgres"
    """Superuser the tests and the operator connect as (local trust auth on loopback only)."""
    database: str = "postgres"
    """Database the superuser DSN points at."""


class KafkaPorts(BaseModel):
    """Kafka in KRaft combined mode (one broker that is also the controller)."""

    port: int = 19092
    """PLAINTEXT listener for clients."""
    controller_port: int = 19093
    """CONTROLLER listener for the KRaft quorum."""
    proxied_port: int = 19094
    """PROXIED listener: a second client listener that advertises ``proxied_advertised_port`` instead of
    itself, so clients that bootstrap through a toxiproxy proxy listening there (upstream: this port)
    keep every later broker connection on the proxy too. The fault-injection suite uses it."""
    proxied_advertised_port: int = 19095
    """What the PROXIED listener advertises: where the fault-injection suite's toxiproxy proxy listens.
    Nothing listens there unless that proxy exists."""
    heap: str = "768m"
    """JVM heap (-Xmx and -Xms) of the broker."""


class KubernetesPorts(BaseModel):
    """The control plane: etcd, kube-apiserver, controller manager, scheduler, kwok."""

    etcd_port: int = 12379
    """etcd client URL port."""
    etcd_peer_port: int = 12380
    """etcd peer URL port (single member)."""
    apiserver_port: int = 16443
    """kube-apiserver secure port."""
    controller_manager_port: int = 10257
    """kube-controller-manager secure (healthz) port."""
    scheduler_port: int = 10259
    """kube-scheduler secure (healthz) port."""
    kwok_port: int = 10247
    """kwok's health and metrics port."""
    fake_nodes: int = 2
    """How many kwok-managed Nodes to create."""


class JaegerPorts(BaseModel):
    """Jaeger all-in-one: OTLP in, query API out."""

    otlp_grpc_port: int = 4317
    """OTLP/gRPC receiver."""
    otlp_http_port: int = 4318
    """OTLP/HTTP receiver (what OTEL_EXPORTER_OTLP_ENDPOINT points at)."""
    query_port: int = 16686
    """Query API and UI (what TRACES_QUERY_URL points at)."""
    query_grpc_port: int = 16685
    """Query gRPC API (always served by the query extension; nothing of ours uses it)."""
    health_port: int = 13133
    """Health-check extension."""
    metrics_port: int = 8888
    """Jaeger's own metrics (Prometheus text format at ``/metrics``)."""


class PrometheusPorts(BaseModel):
    """Prometheus scraping targets listed in files under its run directory."""

    port: int = 19090
    """Web and API port."""
    scrape_interval: str = "5s"
    """How often targets are scraped (short, so tests see fresh samples quickly)."""


class ToxiproxyPorts(BaseModel):
    """toxiproxy API server."""

    port: int = 18474
    """Toxiproxy HTTP API."""


SERVICE_NAMES = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
"""The platform's services, as `make services` names them."""


class ServicesSettings(BaseModel):
    """The six platform services `make services` runs as local processes against the stack."""

    gateway_port: int = Field(default=8100, ge=1, le=65_535)
    """gateway-bff, the public API (``BFF_URL``)."""
    orchestrator_port: int = Field(default=8101, ge=1, le=65_535)
    """checkout-orchestrator (``ORCHESTRATOR_URL``)."""
    inventory_port: int = Field(default=8102, ge=1, le=65_535)
    """inventory (``INVENTORY_URL``)."""
    payment_port: int = Field(default=8103, ge=1, le=65_535)
    """payment (``PAYMENT_URL``)."""
    order_port: int = Field(default=8104, ge=1, le=65_535)
    """order (``ORDER_URL``)."""
    cart_port: int = Field(default=8106, ge=1, le=65_535)
    """cart (``CART_URL``)."""
    enabled: list[str] = Field(default_factory=lambda: list(SERVICE_NAMES))
    """Which services to run (default: all six; those not built yet are reported and skipped)."""
    topic_prefix: str = Field(default="checkout", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    """``KAFKA__TOPIC_PREFIX`` of every service; the five topics are created under it."""
    topic_partitions: int = Field(default=3, ge=1, le=1_000)
    """Partitions of each topic the launcher creates (replication factor 1: one broker)."""
    database: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """Database the services use, created if missing; None: the superuser DSN's own database."""
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    """``LOG_LEVEL`` of every service."""
    stop_timeout_s: float = Field(default=45.0, gt=0)
    """How long a service may take to stop after SIGTERM (it drains for its own grace period)."""
    extra_env: dict[str, dict[str, str]] = Field(default_factory=dict)
    """More environment per service, applied over what the launcher sets, e.g.
    ``{"checkout-orchestrator": {"SAGA__STEP_TIMEOUT_S": "2"}}`` (from the environment as JSON:
    ``CHECKOUT_STACK_SERVICES__EXTRA_ENV``). Migrations run with it too."""

    @field_validator("enabled")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        _refuse_unknown(names)
        return names

    @field_validator("extra_env")
    @classmethod
    def _known_services(cls, extra: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        _refuse_unknown(list(extra))
        return extra


def _refuse_unknown(names: list[str]) -> None:
    unknown = [name for name in names if name not in SERVICE_NAMES]
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")


class StackSettings(BaseSettings):
    """The whole local stack's configuration."""

    model_config = SettingsConfigDict(env_prefix="CHECKOUT_STACK_", env_nested_delimiter="__", extra="ignore")

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "checkout-platform")
    """Installed/built components, one folder per component and version; survives `make down`."""
    run_dir: Path = REPO_ROOT / ".run"
    """Data, configuration, pid files and all logs of the running stack."""
    start_timeout_s: float = 120.0
    """How long one component may take to become healthy before `up` fails."""
    postgres: PostgresPorts = PostgresPorts()
    kafka: KafkaPorts = KafkaPorts()
    kubernetes: KubernetesPorts = KubernetesPorts()
    jaeger: JaegerPorts = JaegerPorts()
    prometheus: PrometheusPorts = PrometheusPorts()
    toxiproxy: ToxiproxyPorts = ToxiproxyPorts()
    services: ServicesSettings = ServicesSettings()

    @property
    def logs_dir(self) -> Path:
        """One log file per process."""
        return self.run_dir / "logs"
