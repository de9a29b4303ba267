"""What the payment service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_kit.app import Component, Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.consumer import TransactionalConsumer
from checkout_kit.outbox import OutboxRelay
from checkout_payment.api import payments
from checkout_payment.config import PaymentSettings
from checkout_payment.handlers import PaymentCommands
from checkout_payment.provider import SimulatedProvider

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The payment service's Alembic directory."""


def command_consumer(runtime: Runtime) -> Component:
    """Consumes ``<prefix>.payment-command`` as the group named after the service."""
    settings = runtime.settings
    return TransactionalConsumer(
        [runtime.topics.payment_command],
        settings.service_name,
        PaymentCommands(runtime.topics, settings.service_name, SimulatedProvider()),
        runtime.sessions,
        runtime.publisher,
        settings.kafka,
        settings.service_name,
    )


def outbox_relay(runtime: Runtime) -> Component:
    """Publishes the replies the handlers enqueued."""
    settings = runtime.settings
    return OutboxRelay(
        runtime.sessions,
        runtime.publisher,
        settings.database,
        settings.outbox,
        application_name=f"{settings.service_name} outbox-relay",
    )


SPEC: Final = ServiceSpec(
    title="payment",
    routers=(payments.router,),
    migrations=MIGRATIONS,
    kafka=True,
    # The relay starts first and stops last: replies the consumer commits while stopping still leave.
    components={"outbox-relay": outbox_relay, "command-consumer": command_consumer},
)
"""Read-only HTTP over its own schema; consumes its commands and replies through the outbox."""


def create_app(settings: PaymentSettings) -> FastAPI:
    """The payment app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
