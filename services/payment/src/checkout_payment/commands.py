"""The commands the payment service accepts, checked and normalised before anything touches the database.

A command that can never be applied — no saga id, no amount, a currency that is not three
upper-case letters — raises :class:`~checkout_kit.messaging.InvalidMessageError`: the consumer
rolls back and parks it in the dead-letter topic with the reason. A missing or unknown payment
token is not invalid: the provider declines it, as a real one would. The checks every
participant makes (saga id, customer id, amounts, optional ids, failure codes) are the kit's
(:mod:`checkout_kit.messaging.participant`). Pure functions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from checkout.v1 import commands_pb2, types_pb2
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import (
    UNEXPECTED_TYPE,
    Money,
    customer_id_of,
    invalid,
    known_reason,
    money,
    optional_uuid,
    saga_id_of,
)

MAX_TOKEN_CHARS: Final = 255


@dataclass(frozen=True)
class Charge:
    """Charge the customer once for the saga."""

    saga_id: uuid.UUID
    customer_id: str
    amount: Money
    token: str


@dataclass(frozen=True)
class Refund:
    """Give the saga's money back (or make sure none is ever taken)."""

    saga_id: uuid.UUID
    payment_id: uuid.UUID | None
    """The charge the orchestrator names, if it knows one (the saga id decides)."""
    amount: Money | None
    """What the orchestrator expects back; the full charge is refunded whatever it says."""
    reason: types_pb2.FailureCode.ValueType
    """Why the saga compensates; kept on the charge to explain a refused late ProcessPayment."""


Command = Charge | Refund


def _charge(message: commands_pb2.ProcessPayment, envelope: Envelope) -> Charge:
    saga_id = saga_id_of(message.saga_id, envelope)
    customer_id = customer_id_of(message.customer_id)
    if not message.HasField("amount"):
        raise invalid("the command carries no amount")
    if len(message.payment_token) > MAX_TOKEN_CHARS:
        raise invalid(f"payment_token is longer than {MAX_TOKEN_CHARS} characters")
    return Charge(saga_id, customer_id, money(message.amount, "amount"), message.payment_token)


def _refund(message: commands_pb2.RefundPayment, envelope: Envelope) -> Refund:
    return Refund(
        saga_id=saga_id_of(message.saga_id, envelope),
        payment_id=optional_uuid(message.payment_id, "payment_id"),
        amount=money(message.amount, "amount") if message.HasField("amount") else None,
        reason=known_reason(message.reason),
    )


def parse(envelope: Envelope) -> Command:
    """The command an envelope carries; raise InvalidMessageError if it is none or breaks a rule."""
    message = envelope.message
    if isinstance(message, commands_pb2.ProcessPayment):
        return _charge(message, envelope)
    if isinstance(message, commands_pb2.RefundPayment):
        return _refund(message, envelope)
    raise InvalidMessageError(UNEXPECTED_TYPE, f"{envelope.type} is not a payment command")
