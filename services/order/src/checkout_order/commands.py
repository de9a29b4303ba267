"""The command the order service accepts, checked before anything touches the database.

A CreateOrder that can never be applied — no saga id, no lines, a quantity below 1, a total in
a malformed currency or disagreeing with its priced lines — raises
:class:`~checkout_kit.messaging.InvalidMessageError`: the consumer rolls back and parks it in
the dead-letter topic with the reason. The saga then misses its deadline and compensates,
which refunds the customer: the safe outcome for an order the service cannot make sense of.
Pure functions.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from checkout.v1 import commands_pb2, types_pb2
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.envelope import Envelope

INVALID_PAYLOAD: Final = "invalid-payload"
"""``dlq_reason`` of a command whose content breaks a rule below."""
UNEXPECTED_TYPE: Final = "unexpected-type"
"""``dlq_reason`` of a well-formed message that is not an order command (e.g. an event)."""
SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CUSTOMER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
MAX_QUANTITY: Final = 1_000_000
MAX_AMOUNT_MINOR: Final = 10**15

_SKU = re.compile(SKU_PATTERN)
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)


@dataclass(frozen=True)
class Money:
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: str


@dataclass(frozen=True)
class OrderLine:
    """A bought SKU, at the unit price the inventory reserved it at (None if the command had none)."""

    sku: str
    quantity: int
    unit_price_minor: int | None


@dataclass(frozen=True)
class CreateOrder:
    """Create the saga's order."""

    saga_id: uuid.UUID
    customer_id: str
    lines: tuple[OrderLine, ...]
    """In the order given."""
    total: Money
    payment_id: uuid.UUID | None


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


def money(value: types_pb2.Money, what: str) -> Money:
    """A checked amount: a well-formed currency and a non-negative, bounded number of minor units."""
    if not _CURRENCY.fullmatch(value.currency):
        raise invalid(f"{what}.currency {value.currency!r} is not an ISO 4217 code (three upper-case letters)")
    if not 0 <= value.amount_minor <= MAX_AMOUNT_MINOR:
        raise invalid(f"{what}.amount_minor {value.amount_minor} is not between 0 and {MAX_AMOUNT_MINOR}")
    return Money(value.amount_minor, value.currency)


def _lines(items: Sequence[types_pb2.LineItem], total: Money, max_lines: int) -> tuple[OrderLine, ...]:
    if not items:
        raise invalid("the command has no items")
    if len(items) > max_lines:
        raise invalid(f"the command has {len(items)} lines; at most {max_lines} are allowed")
    lines: list[OrderLine] = []
    for index, item in enumerate(items):
        if not _SKU.fullmatch(item.sku):
            raise invalid(f"items[{index}].sku {item.sku!r} is not a SKU (pattern {SKU_PATTERN})")
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise invalid(f"items[{index}].quantity {item.quantity} is not between 1 and {MAX_QUANTITY}")
        price: int | None = None
        if item.HasField("unit_price"):
            unit_price = money(item.unit_price, f"items[{index}].unit_price")
            if unit_price.currency != total.currency:
                raise invalid(f"items[{index}] is priced in {unit_price.currency}, the total in {total.currency}")
            price = unit_price.amount_minor
        lines.append(OrderLine(item.sku, item.quantity, price))
    if all(line.unit_price_minor is not None for line in lines):
        computed = sum(line.quantity * (line.unit_price_minor or 0) for line in lines)
        if computed != total.amount_minor:
            raise invalid(f"the lines add up to {computed} {total.currency} but the total says {total.amount_minor}")
    return tuple(lines)


def parse(envelope: Envelope, *, max_lines: int) -> CreateOrder:
    """The command an envelope carries; raise InvalidMessageError if it is none or breaks a rule."""
    message = envelope.message
    if not isinstance(message, commands_pb2.CreateOrder):
        raise InvalidMessageError(UNEXPECTED_TYPE, f"{envelope.type} is not an order command")
    saga_id = saga_id_of(message.saga_id, envelope)
    if not _CUSTOMER_ID.fullmatch(message.customer_id):
        raise invalid(f"customer_id {message.customer_id!r} is not a customer id (pattern {CUSTOMER_ID_PATTERN})")
    if not message.HasField("total"):
        raise invalid("the command carries no total")
    total = money(message.total, "total")
    payment_id: uuid.UUID | None = None
    if message.payment_id:
        try:
            payment_id = uuid.UUID(message.payment_id)
        except ValueError as error:
            raise invalid(f"payment_id {message.payment_id!r} is not a UUID") from error
    return CreateOrder(saga_id, message.customer_id, _lines(message.items, total, max_lines), total, payment_id)
