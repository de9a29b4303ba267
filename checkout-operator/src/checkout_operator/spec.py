"""The ``CheckoutPlatform`` spec as typed objects, and the names derived from it.

The API server has already validated and defaulted the spec (OpenAPI schema + CEL rules in
``crds/``), so parsing here is about types, not about policing input; the defaults below repeat the
CRD's only so that a spec built in a test (or read from an older object) means the same thing.

Everything the reconcilers derive from the spec — topic names and configs, schema and role names,
Secret names — is computed here, in one place, so the topics, database and workloads reconcilers can
never disagree about what a name is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TOPICS: Final = ("checkout-events", "inventory-command", "payment-command", "order-command", "dlq")
"""Topic names without the prefix, in the order they are reported."""

SERVICES: Final = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
"""The services a platform can run, in the order they are reported."""

SERVICE_SCHEMAS: Final = {
    "gateway-bff": "gateway",
    "checkout-orchestrator": "orchestrator",
    "inventory": "inventory",
    "payment": "payment",
    "order": "orders",
    "cart": "cart",
}
"""Each service's base schema name (the service's own default, see charts/checkout-service/_helpers.tpl)."""

POSTGRES_IDENTIFIER_MAX: Final = 63


class _SpecModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class TopicDefaults(_SpecModel):
    """``spec.kafka.defaults``."""

    partitions: int = 3
    replication_factor: int = 1
    min_insync_replicas: int = 1
    retention_ms: int | None = None


class TopicOverride(_SpecModel):
    """``spec.kafka.topics[<name>]``."""

    partitions: int | None = None
    replication_factor: int | None = None
    config: dict[str, str] = Field(default_factory=dict)


class KafkaSpec(_SpecModel):
    """``spec.kafka``."""

    bootstrap_servers: list[str]
    topic_prefix: str = "checkout"
    defaults: TopicDefaults = Field(default_factory=TopicDefaults)
    topics: dict[str, TopicOverride] = Field(default_factory=dict)


class AdminSecretRef(_SpecModel):
    """``spec.postgres.adminSecretRef``."""

    name: str
    username_key: str = "username"
    password_key: str = "password"  # noqa: S105 - a key name, not a password


class PostgresSpec(_SpecModel):
    """``spec.postgres``."""

    host: str
    port: int = 5432
    database: str
    admin_secret_ref: AdminSecretRef


class EnvVar(_SpecModel):
    """One entry of ``spec.services[<name>].env``."""

    name: str
    value: str = ""


class ServiceSpec(_SpecModel):
    """``spec.services[<name>]``."""

    enabled: bool = True
    replicas: int = 1
    image: str | None = None
    resources: dict[str, dict[str, str | int]] = Field(default_factory=dict)
    env: list[EnvVar] = Field(default_factory=list)


class TracingSpec(_SpecModel):
    """``spec.tracing``."""

    otlp_endpoint: str | None = None
    sampling_ratio: float = 1.0


class MetricsSpec(_SpecModel):
    """``spec.metrics``."""

    service_monitor: bool = False


class PlatformSpec(_SpecModel):
    """``spec`` of a ``CheckoutPlatform``."""

    kafka: KafkaSpec
    postgres: PostgresSpec
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    tracing: TracingSpec = Field(default_factory=TracingSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    deletion_policy: Literal["Retain", "Delete"] = "Retain"

    @classmethod
    def parse(cls, spec: Any) -> PlatformSpec:
        """Build from the ``spec`` mapping of the object as the API server returned it."""
        return cls.model_validate(dict(spec))

    def service(self, name: str) -> ServiceSpec:
        """Settings of one service; a service absent from the map runs with the defaults."""
        if name not in SERVICES:
            raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
        return self.services.get(name, ServiceSpec())

    def enabled_services(self) -> tuple[str, ...]:
        """The services to run, in the reporting order."""
        return tuple(name for name in SERVICES if self.service(name).enabled)


@dataclass(frozen=True)
class DesiredTopic:
    """One topic as the spec wants it."""

    key: str
    """Name without the prefix (``checkout-events``)."""
    name: str
    """Full Kafka topic name (``<prefix>.checkout-events``)."""
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    """Topic-level configs the operator owns; any other dynamic topic config is drift."""


def desired_topics(kafka: KafkaSpec) -> list[DesiredTopic]:
    """The five topics of a platform with partitions, replication and configs resolved."""
    topics = []
    for key in TOPICS:
        override = kafka.topics.get(key, TopicOverride())
        configs = {"min.insync.replicas": str(kafka.defaults.min_insync_replicas)}
        if kafka.defaults.retention_ms is not None:
            configs["retention.ms"] = str(kafka.defaults.retention_ms)
        configs.update(override.config)
        topics.append(
            DesiredTopic(
                key=key,
                name=f"{kafka.topic_prefix}.{key}",
                partitions=override.partitions or kafka.defaults.partitions,
                replication_factor=override.replication_factor or kafka.defaults.replication_factor,
                configs=configs,
            )
        )
    return topics


def _identifier_part(text: str) -> str:
    """A lower-case PostgreSQL identifier fragment ([a-z0-9_]) from arbitrary text."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def _clip(identifier: str) -> str:
    """Fit an identifier into PostgreSQL's 63 bytes, keeping it unique with a short digest."""
    if len(identifier) <= POSTGRES_IDENTIFIER_MAX:
        return identifier
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:8]
    return f"{identifier[: POSTGRES_IDENTIFIER_MAX - 9]}_{digest}"


@dataclass(frozen=True)
class ServiceDatabase:
    """Where one service of one platform keeps its data, and who may touch it."""

    service: str
    schema: str
    """``<prefix>_<base>``: the platform's topic prefix keeps two platforms in one database apart."""
    role: str
    """``<database>_<schema>``: roles are server-wide, so the database is part of the name."""
    secret_name: str
    """The Secret (owned by the platform object) holding the role's password and the service's URL."""


def service_database(platform_name: str, spec: PlatformSpec, service: str) -> ServiceDatabase:
    """Schema, role and Secret names of one service."""
    if service not in SERVICE_SCHEMAS:
        raise KeyError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    prefix = _identifier_part(spec.kafka.topic_prefix)
    if not re.match(r"[a-z_]", prefix):
        prefix = f"p{prefix}"
    schema = _clip(f"{prefix}_{SERVICE_SCHEMAS[service]}")
    role = _clip(f"{_identifier_part(spec.postgres.database)}_{schema}")
    return ServiceDatabase(service=service, schema=schema, role=role, secret_name=f"{platform_name}-{service}-database")


def workload_name(platform_name: str, service: str) -> str:
    """Name of a service's Deployment, Service, ConfigMap and ServiceAccount (the Helm release name)."""
    return f"{platform_name}-{service}"
