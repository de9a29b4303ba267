"""What the orchestrator runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_kit.app import Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.consumer import TransactionalConsumer
from checkout_kit.metrics import MessagingMetrics
from checkout_kit.outbox import OutboxRelay
from checkout_orchestrator.api import sagas
from checkout_orchestrator.config import OrchestratorSettings
from checkout_orchestrator.handlers.deadlines import DeadlineScanner
from checkout_orchestrator.handlers.events import SagaEventHandler
from checkout_orchestrator.handlers.outcomes import OutcomeWriter
from checkout_orchestrator.metrics import SagaGauges, SagaMetrics

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The orchestrator's Alembic directory."""


def _settings(runtime: Runtime) -> OrchestratorSettings:
    settings = runtime.settings
    if not isinstance(settings, OrchestratorSettings):
        raise TypeError(f"the orchestrator runs with OrchestratorSettings, not {type(settings).__name__}")
    return settings


def _writer(runtime: Runtime) -> OutcomeWriter:
    return OutcomeWriter(runtime.topics, _settings(runtime).service_name, metrics=SagaMetrics.of(runtime.registry))


def outbox_relay(runtime: Runtime) -> OutboxRelay:
    """Publishes the commands sagas enqueue."""
    settings = _settings(runtime)
    return OutboxRelay(
        runtime.sessions,
        runtime.publisher,
        settings.database,
        settings.outbox,
        application_name=f"{settings.service_name} outbox-relay",
        metrics=MessagingMetrics.of(runtime.registry),
        failpoint=runtime.failpoint,
    )


def saga_consumer(runtime: Runtime) -> TransactionalConsumer:
    """Applies ``<prefix>.checkout-events`` to the sagas."""
    settings = _settings(runtime)
    return TransactionalConsumer(
        [runtime.topics.checkout_events],
        settings.group_id(),
        SagaEventHandler(_writer(runtime), settings.saga.policy()),
        runtime.sessions,
        runtime.publisher,
        settings.kafka,
        settings.service_name,
        metrics=MessagingMetrics.of(runtime.registry),
        failpoint=runtime.failpoint,
    )


def deadline_scanner(runtime: Runtime) -> DeadlineScanner:
    """Fires overdue step deadlines: retries, then compensation."""
    settings = _settings(runtime)
    return DeadlineScanner(runtime.sessions, _writer(runtime), settings.saga.policy(), settings.deadlines)


def saga_gauges(runtime: Runtime) -> SagaGauges:
    """Counts the sagas in flight and the stuck ones for their gauges, now and then."""
    settings = _settings(runtime)
    return SagaGauges(
        runtime.sessions,
        SagaMetrics.of(runtime.registry),
        settings.saga.policy(),
        settings.saga_gauges.refresh_interval_s,
    )


SPEC: Final = ServiceSpec(
    title="checkout-orchestrator",
    routers=(sagas.router,),
    migrations=MIGRATIONS,
    kafka=True,
    components={
        "outbox relay": outbox_relay,
        "saga consumer": saga_consumer,
        "deadline scanner": deadline_scanner,
        "saga gauges": saga_gauges,
    },
)
"""Saga state in its own schema; consumes checkout events; the relay starts first and stops last,
so commands enqueued by the consumer and the scanner while they finish still leave."""


def create_app(settings: OrchestratorSettings) -> FastAPI:
    """The orchestrator app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
