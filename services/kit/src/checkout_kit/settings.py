"""Typed settings, built once from the environment.

Every service has one settings class deriving from :class:`ServiceSettings`. Nested blocks are
read with ``__`` as the delimiter: ``KAFKA__BOOTSTRAP_SERVERS``, ``KAFKA__TOPIC_PREFIX``,
``DATABASE__URL``, ``DATABASE__SCHEMA``, ``HTTP__PORT``, ``OUTBOX__BATCH_SIZE``. Secrets are
``SecretStr`` so they never appear in logs or reprs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from checkout_kit import failpoints

KAFKA_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"


class KafkaSettings(BaseModel):
    """How to reach Kafka and which topics to use."""

    bootstrap_servers: str = "127.0.0.1:19092"
    """Comma-separated host:port list."""
    topic_prefix: str = Field(default="checkout", pattern=KAFKA_NAME_PATTERN)
    """Prefix of every topic name: ``<prefix>.checkout-events`` and so on."""
    client_id: str | None = None
    """Client id reported to the broker (defaults to the service name)."""
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    """How long a request to the broker may take."""
    linger_ms: int = Field(default=0, ge=0, le=1_000)
    """How long the producer waits to batch records before sending.

    0: the outbox relay hands the producer a whole batch of rows at once and then awaits every
    acknowledgement, so records already travel together; a linger only delayed each hop (2 ms
    over seven hops a saga)."""
    max_poll_records: int = Field(default=200, ge=1, le=10_000)
    """Upper bound of records one consumer poll returns."""
    fetch_max_wait_ms: int = Field(default=100, ge=1, le=10_000)
    """Longest a fetch waits at the broker for new records (aiokafka's default is 500).

    While one fetch waits there, the consumer sends no other fetch to that broker: a partition
    whose records were just handled waits for it before its next record is fetched, so a saga hop
    could wait up to half a second on a quiet partition. A short wait costs an idle fetch per
    interval: at 50 ms, bench/saga measured ~40 ms CPU a second per service and ~30 in the
    broker (10-15 ms a saga at 5 sagas/s); 100 ms halves that and still bounds the stall."""
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    """Consumer group session timeout."""
    rebalance_timeout_ms: int = Field(default=60_000, ge=1_000)
    """How long a rebalance waits for a member to finish its record in flight and rejoin.

    aiokafka defaults this to the session timeout; a handler slower than that during a rebalance
    would get its member dropped from the group and its record delivered again."""
    handler_max_attempts: int = Field(default=5, ge=1, le=1_000)
    """Tries of a message whose handler keeps failing before it is dead-lettered (``handler-failed``).

    A database or network outage does not count: the consumer waits it out, so an outage never
    fills the dead-letter topic with good messages."""
    retry_backoff_initial_ms: int = Field(default=200, ge=1)
    """First pause before a failed message (or an unreachable dependency) is tried again; it doubles."""
    retry_backoff_max_ms: int = Field(default=30_000, ge=1)
    """Upper bound of that pause."""
    lag_refresh_interval_s: float = Field(default=10.0, gt=0, le=3_600)
    """How often each consumer measures its lag (``checkout_consumer_lag``): one ListOffsets request
    per refresh, plus one OffsetFetch per partition newly assigned to it."""
    max_message_bytes: int = Field(default=256 * 1024, ge=1_024, le=64 * 1024 * 1024)
    """Largest record (key, value and headers together) a consumer applies; a larger one goes to the
    dead-letter topic as ``oversized`` without being decoded.

    A saga message is a few KiB (the gateway refuses HTTP bodies above ``HTTP__MAX_BODY_BYTES``, 64 KiB by
    default), so anything far larger is not one of ours: refusing it before protobuf/JSON parsing bounds
    the memory and CPU one hostile record can cost. Below the broker's default ``message.max.bytes`` (1 MiB),
    so such a record can reach a topic and is worth a limit of its own."""

    def common_params(self, service_name: str) -> dict[str, Any]:
        """Parameters every aiokafka client takes."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id or service_name,
            "request_timeout_ms": self.request_timeout_ms,
        }

    def producer_params(self, service_name: str) -> dict[str, Any]:
        """Aiokafka producer parameters: every write acknowledged by all in-sync replicas, idempotent."""
        return {
            **self.common_params(service_name),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": self.linger_ms,
        }

    def consumer_params(self, service_name: str, group_id: str) -> dict[str, Any]:
        """Aiokafka consumer parameters: offsets committed by hand, after the database commit."""
        return {
            **self.common_params(service_name),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
            "max_poll_records": self.max_poll_records,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "heartbeat_interval_ms": max(1_000, self.session_timeout_ms // 3),
        }


class DatabaseSettings(BaseModel):
    """How to reach this service's schema in PostgreSQL."""

    url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:15432/postgres")
    """libpq-style URL (``postgresql://user:password@host:port/db``); the password is secret."""
    db_schema: str = Field(default="public", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The service's own schema: its tables, outbox and inbox live there (search_path)."""
    pool_size: int = Field(default=10, ge=1, le=200)
    """Connections kept open."""
    max_overflow: int = Field(default=10, ge=0, le=200)
    """Extra connections allowed under load."""
    statement_timeout_ms: int = Field(default=10_000, ge=100)
    """Upper bound of any one statement."""

    model_config = {"populate_by_name": True}

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().split("://", 1)[0]
        if scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError(f"must be a postgresql:// URL, not {scheme}://")
        return value

    def sqlalchemy_url(self) -> str:
        """The URL with the asyncpg driver, for SQLAlchemy."""
        raw = self.url.get_secret_value()
        return "postgresql+asyncpg://" + raw.split("://", 1)[1]


class OutboxSettings(BaseModel):
    """How the outbox relay moves committed messages from PostgreSQL to Kafka."""

    batch_size: int = Field(default=100, ge=1, le=10_000)
    """Rows published per transaction."""
    poll_interval_s: float = Field(default=1.0, gt=0)
    """Fallback poll period; a ``NOTIFY`` at commit normally wakes the relay at once."""
    retention_s: float = Field(default=3_600.0, ge=0)
    """How long published rows stay in the table (to answer "what did we send?"); 0 deletes them soon."""
    cleanup_interval_s: float = Field(default=60.0, gt=0)
    """How often published rows older than the retention are deleted."""
    error_backoff_max_s: float = Field(default=30.0, gt=0)
    """Upper bound of the pause after a failed batch (it starts at 0.2 s and doubles)."""
    backlog_refresh_interval_s: float = Field(default=10.0, gt=0, le=3_600)
    """How often the relay counts its unpublished rows (``checkout_outbox_backlog``, ``…_oldest_age_seconds``):
    one query over the partial index of unpublished rows, as long as the backlog is."""


class HttpSettings(BaseModel):
    """The service's HTTP listener."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = Field(default=8000, ge=1, le=65_535)
    """Port to bind."""
    max_body_bytes: int = Field(default=64 * 1024, ge=1_024)
    """Requests with a larger body are refused with 413."""


class ServiceSettings(BaseSettings):
    """What every service needs; each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore", populate_by_name=True)

    service_name: str = "checkout-service"
    """Name in logs, metrics, traces and the CloudEvents source."""
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    outbox: OutboxSettings = OutboxSettings()
    shutdown_grace_s: float = Field(default=15.0, ge=0)
    """How long shutdown waits for in-flight work before closing."""
    consumer_group: str | None = Field(default=None, pattern=KAFKA_NAME_PATTERN)
    """Kafka consumer group of the service's consumer (``CONSUMER_GROUP``); unset = ``<topic prefix>.<service
    name>``. Group ids are global to a Kafka cluster: scoping them by the prefix keeps two platforms that
    share a cluster (or a test run next to a dev stack) out of each other's groups and rebalances."""
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    """Root log level, any case (``info`` is ``INFO``)."""
    failpoints: str = ""
    """``FAILPOINTS``: places where the process SIGKILLs itself, for the fault-injection suite only, e.g.
    ``consumer.after-db-commit=kill@3`` (see :mod:`checkout_kit.failpoints`). Empty in production."""
    failpoints_forbidden: bool = False
    """``FAILPOINTS_FORBIDDEN``: set by the images, so a production build refuses to start with failpoints."""

    def group_id(self) -> str:
        """The consumer group: ``consumer_group`` if set, else ``<topic prefix>.<service name>``."""
        return self.consumer_group or f"{self.kafka.topic_prefix}.{self.service_name}"

    @field_validator("failpoints")
    @classmethod
    def _failpoints_parse(cls, value: str) -> str:
        failpoints.parse(value)  # a typo must fail at startup, not silently arm nothing
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value
