"""What the payment service runs, and its app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI

from checkout_kit.app import Runtime, ServiceSpec
from checkout_kit.app import create_app as create_service_app
from checkout_kit.messaging.participant import command_components
from checkout_kit.topics import Topics
from checkout_payment.api import payments
from checkout_payment.config import PaymentSettings
from checkout_payment.handlers import PaymentCommands
from checkout_payment.provider import SimulatedProvider

MIGRATIONS: Final = Path(__file__).parent / "migrations"
"""The payment service's Alembic directory."""


def _command_topic(topics: Topics) -> str:
    return topics.payment_command


def _handler(runtime: Runtime, settings: PaymentSettings) -> PaymentCommands:
    return PaymentCommands(runtime.topics, settings.service_name, SimulatedProvider())


SPEC: Final = ServiceSpec(
    title="payment",
    routers=(payments.router,),
    migrations=MIGRATIONS,
    kafka=True,
    # The outbox relay, then the consumer of <prefix>.payment-command (its group: the service name).
    components=command_components(PaymentSettings, _command_topic, _handler),
)
"""Read-only HTTP over its own schema; consumes its commands and replies through the outbox."""


def create_app(settings: PaymentSettings) -> FastAPI:
    """The payment app (connections open in its lifespan)."""
    return create_service_app(SPEC, settings)
