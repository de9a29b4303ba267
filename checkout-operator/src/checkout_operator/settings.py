"""The operator's settings: environment → one pydantic-settings object, built once at startup.

Grouped like kopf's own settings, one docstring per field. Nested fields use ``__``:
``KAFKA__TIMEOUT_S=5``, ``PEERING__NAME=checkout-operator``. Nothing else in the operator reads
``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReconcileSettings(BaseModel):
    """How often and how patiently the operator converges."""

    interval_s: float = Field(default=30.0, gt=0)
    """Seconds between drift-repair passes over an unchanged object (a hand-deleted topic comes back within this)."""
    retry_backoff_s: float = Field(default=5.0, gt=0)
    """First delay after a failed pass; doubles per failure up to ``retry_backoff_max_s``."""
    retry_backoff_max_s: float = Field(default=120.0, gt=0)
    """Longest delay between retries of a failing pass."""
    release_annotation: str = "checkout.platform.io/release-finalizer"
    """Set to "true" on an object being deleted to let it go without cleaning its backends."""
    pause_annotation: str = "checkout.platform.io/paused"
    """Set to "true" to stop reconciling an object (reported by the Paused condition)."""


class KafkaClientSettings(BaseModel):
    """The operator's Kafka admin client."""

    timeout_s: float = Field(default=10.0, gt=0)
    """Upper bound on connecting and on each admin request; a slower broker counts as unreachable."""


class PostgresClientSettings(BaseModel):
    """The operator's PostgreSQL admin connections."""

    timeout_s: float = Field(default=10.0, gt=0)
    """Upper bound on connecting and on each statement."""


class WatchSettings(BaseModel):
    """Kubernetes watch streams (kopf's silent-watch failure mode is avoided by bounding them)."""

    server_timeout_s: int = Field(default=300, gt=0)
    """Asks the API server to close a watch after this long; kopf then re-lists and watches again."""
    client_timeout_s: int = Field(default=330, gt=0)
    """Client-side bound on a watch request, in case the server never closes it."""
    connect_timeout_s: int = Field(default=30, gt=0)
    """Bound on opening a connection to the API server."""


class KubernetesClientSettings(BaseModel):
    """Requests to the API server besides the watches: the operator's own (reads, applies, status) and kopf's."""

    request_timeout_s: float = Field(default=60.0, gt=0)
    """Bound on waiting for each read of an answer; a connection that died silently fails the pass after this
    long (the next pass opens a new one) instead of blocking the object's reconcile loop forever."""
    connect_timeout_s: float = Field(default=30.0, gt=0)
    """Bound on opening a connection to the API server."""


class PeeringSettings(BaseModel):
    """kopf peering: of several operator processes, only the highest priority acts."""

    name: str = "checkout-operator"
    """Name of the KopfPeering object shared by the replicas of one installation."""
    priority: int = Field(default=0, ge=0)
    """This process's priority; 0 derives a stable value from the host name so replicas differ."""
    standalone: bool = False
    """Run without peering (a single process on a developer machine)."""


class ServiceImage(BaseModel):
    """An image of one service, as the checkout-service chart takes it."""

    repository: str
    tag: str = ""


class WorkloadSettings(BaseModel):
    """Rendering and applying the services' manifests."""

    images: dict[str, ServiceImage] = Field(default_factory=dict)
    """Default image per service name when a CheckoutPlatform names none (JSON); unset = the chart's default."""

    chart_dir: Path = Path("charts/checkout-service")
    """The checkout-service chart; the single source of truth for a service's manifests."""
    helm_binary: str = "helm"
    """The helm executable used for ``helm template``."""
    kube_version: str = "1.34.4"
    """Kubernetes version passed to ``helm template --kube-version``."""
    field_manager: str = "checkout-operator"
    """Field manager of the operator's server-side applies."""


class OperatorSettings(BaseSettings):
    """Everything the operator process needs."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to watch; empty watches the whole cluster."""
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    """Port of ``/metrics`` (Prometheus); 0 turns the endpoint off."""
    health_port: int = Field(default=8081, ge=0, le=65535)
    """Port of kopf's liveness endpoint ``/healthz``; 0 turns it off."""
    log_level: str = "INFO"
    """Root log level."""
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    kafka: KafkaClientSettings = Field(default_factory=KafkaClientSettings)
    postgres: PostgresClientSettings = Field(default_factory=PostgresClientSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    kubernetes: KubernetesClientSettings = Field(default_factory=KubernetesClientSettings)
    peering: PeeringSettings = Field(default_factory=PeeringSettings)
    workloads: WorkloadSettings = Field(default_factory=WorkloadSettings)
