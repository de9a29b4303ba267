"""The orchestrator's settings (environment → :class:`OrchestratorSettings`, built once at startup).

The nested blocks are subclassed, not just given other default instances: pydantic-settings
builds a nested block from the environment variables it finds, so with ``DATABASE__URL`` set a
plain ``DatabaseSettings`` would fall back to *its* default schema, not the orchestrator's.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from checkout_kit.settings import DatabaseSettings, HttpSettings, ServiceSettings
from checkout_orchestrator.domain.rules import Policy

"""The default Kafka consumer group (and inbox consumer name) of the saga consumer."""


class OrchestratorDatabaseSettings(DatabaseSettings):
    """The database block with the orchestrator's own schema as default."""

    db_schema: str = Field(default="orchestrator", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The orchestrator's schema (``DATABASE__SCHEMA``)."""


class OrchestratorHttpSettings(HttpSettings):
    """The HTTP block with the orchestrator's own port as default."""

    port: int = Field(default=8101, ge=1, le=65_535)
    """Port to bind (``HTTP__PORT``)."""


class SagaPolicySettings(BaseModel):
    """Step deadlines and retry bounds (``SAGA__*``): how long the saga waits, and how often it asks again.

    Every saga reaches a terminal state within roughly ``step_timeout_s * max_attempts`` per
    forward step plus ``compensation_timeout_s * max_compensation_attempts`` for its
    compensations, whatever the participants do.
    """

    step_timeout_s: float = Field(default=10.0, gt=0, le=3_600)
    """How long a forward step (reserve, pay, create order) may take before its command is re-sent."""
    max_attempts: int = Field(default=3, ge=1, le=100)
    """Sends of one forward step before the saga gives up on it and compensates."""
    compensation_timeout_s: float = Field(default=10.0, gt=0, le=3_600)
    """How long a compensation (release, refund) may take before it is re-sent."""
    max_compensation_attempts: int = Field(default=30, ge=1, le=10_000)
    """Sends of one compensation before the saga closes as FAILED with it marked unconfirmed.

    Higher than ``max_attempts`` on purpose: an unconfirmed refund or release needs a human."""

    def policy(self) -> Policy:
        """The rules' view of these settings."""
        return Policy(
            step_timeout=dt.timedelta(seconds=self.step_timeout_s),
            max_attempts=self.max_attempts,
            compensation_timeout=dt.timedelta(seconds=self.compensation_timeout_s),
            max_compensation_attempts=self.max_compensation_attempts,
        )


class DeadlineScannerSettings(BaseModel):
    """How the deadline scanner looks for overdue sagas (``DEADLINES__*``)."""

    scan_interval_s: float = Field(default=0.25, gt=0, le=60)
    """Pause between scans that found nothing more to do; bounds how late a deadline fires."""
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """Sagas handled per scan (one transaction each) before pausing; a full batch is followed at once."""


class SagaGaugeSettings(BaseModel):
    """The gauges a query feeds: sagas in flight by state, stuck sagas (``SAGA_GAUGES__*``)."""

    refresh_interval_s: float = Field(default=10.0, gt=0, le=3_600)
    """How often the sagas in flight are counted (one aggregate over the non-terminal sagas)."""


class OrchestratorSettings(ServiceSettings):
    """Everything the orchestrator reads from its environment."""

    service_name: str = "checkout-orchestrator"
    database: OrchestratorDatabaseSettings = OrchestratorDatabaseSettings()
    http: OrchestratorHttpSettings = OrchestratorHttpSettings()
    saga: SagaPolicySettings = SagaPolicySettings()
    """Deadlines and retry bounds of every saga."""
    deadlines: DeadlineScannerSettings = DeadlineScannerSettings()
    """The scanner that fires overdue deadlines."""
    saga_gauges: SagaGaugeSettings = SagaGaugeSettings()
    """How often ``checkout_sagas_in_flight`` and ``checkout_sagas_stuck`` are refreshed."""
