"""The commands the payment service accepts, checked and normalised before anything touches the database.

A command that can never be applied — no saga id, no amount, a currency that is not three
upper-case letters — raises :class:`~checkout_kit.messaging.InvalidMessageError`: the consumer
rolls back and parks it in the dead-letter topic with the reason. A missing or unknown payment
token is not invalid: the provider declines it, as a real one would. Pure functions.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Final

from checkout.v1 import commands_pb2, types_pb2
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.envelope import Envelope

INVALID_PAYLOAD: Final = "invalid-payload"
"""``dlq_reason`` of a command whose content breaks a rule below."""
UNEXPECTED_TYPE: Final = "unexpected-type"
"""``dlq_reason`` of a well-formed message that is not a payment command (e.g. an event)."""
CUSTOMER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""A customer id as the gateway accepts it."""
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
"""ISO 4217 alphabetic code, upper case."""
MAX_TOKEN_CHARS: Final = 255
MAX_AMOUNT_MINOR: Final = 10**15
"""Upper bound of one charge in minor units (sanity, not policy)."""

_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)


@dataclass(frozen=True)
class Money:
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: str


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


def invalid(detail: str) -> InvalidMessageError:
    """The error for a command breaking a rule."""
    return InvalidMessageError(INVALID_PAYLOAD, detail)


def saga_id_of(payload_saga_id: str, envelope: Envelope) -> uuid.UUID:
    """The payload's saga id, which must be present and agree with the envelope's."""
    if not payload_saga_id:
        raise invalid("the command carries no saga_id")
    try:
        saga_id = uuid.UUID(payload_saga_id)
    except ValueError as error:
        raise invalid(f"saga_id {payload_saga_id!r} is not a UUID") from error
    if str(saga_id) != envelope.saga_id:
        raise invalid(f"payload saga_id {saga_id} differs from the envelope's {envelope.saga_id}")
    return saga_id


def optional_uuid(value: str, what: str) -> uuid.UUID | None:
    """An optional id field: empty is None, anything else must be a UUID."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as error:
        raise invalid(f"{what} {value!r} is not a UUID") from error


def money(value: types_pb2.Money, what: str) -> Money:
    """A checked amount: a known currency format and a non-negative, bounded number of minor units."""
    if not _CURRENCY.fullmatch(value.currency):
        raise invalid(f"{what}.currency {value.currency!r} is not an ISO 4217 code (three upper-case letters)")
    if not 0 <= value.amount_minor <= MAX_AMOUNT_MINOR:
        raise invalid(f"{what}.amount_minor {value.amount_minor} is not between 0 and {MAX_AMOUNT_MINOR}")
    return Money(value.amount_minor, value.currency)


def known_reason(reason: int) -> types_pb2.FailureCode.ValueType:
    """The failure code, or UNSPECIFIED for a value this build does not know (a newer sender)."""
    if reason in types_pb2.FailureCode.values():
        return types_pb2.FailureCode.ValueType(reason)
    return types_pb2.FAILURE_CODE_UNSPECIFIED


def reason_name(reason: types_pb2.FailureCode.ValueType) -> str:
    """The code's name as stored (``FAILURE_CODE_DEADLINE_EXCEEDED``)."""
    return types_pb2.FailureCode.Name(reason)


def reason_value(name: str | None, default: types_pb2.FailureCode.ValueType) -> types_pb2.FailureCode.ValueType:
    """A stored name back to its code; ``default`` when none (or an unknown one) was stored."""
    if name and name in types_pb2.FailureCode.keys():  # noqa: SIM118 - an enum wrapper, not a dict
        return types_pb2.FailureCode.Value(name)
    return default


def _charge(message: commands_pb2.ProcessPayment, envelope: Envelope) -> Charge:
    saga_id = saga_id_of(message.saga_id, envelope)
    if not _CUSTOMER_ID.fullmatch(message.customer_id):
        raise invalid(f"customer_id {message.customer_id!r} is not a customer id (pattern {CUSTOMER_ID_PATTERN})")
    if not message.HasField("amount"):
        raise invalid("the command carries no amount")
    if len(message.payment_token) > MAX_TOKEN_CHARS:
        raise invalid(f"payment_token is longer than {MAX_TOKEN_CHARS} characters")
    return Charge(saga_id, message.customer_id, money(message.amount, "amount"), message.payment_token)


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
