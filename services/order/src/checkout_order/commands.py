"""The command the order service accepts, checked before anything touches the database.

A CreateOrder that can never be applied — no saga id, no lines, a quantity below 1, a total in
a malformed currency or disagreeing with its priced lines — raises
:class:`~checkout_kit.messaging.InvalidMessageError`: the consumer rolls back and parks it in
the dead-letter topic with the reason. The saga then misses its deadline and compensates,
which refunds the customer: the safe outcome for an order the service cannot make sense of.
The checks every participant makes (saga id, customer id, amounts, optional ids) are the kit's
(:mod:`checkout_kit.messaging.participant`). Pure functions.
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
from checkout_kit.messaging.participant import (
    UNEXPECTED_TYPE,
    Money,
    customer_id_of,
    invalid,
    money,
    optional_uuid,
    saga_id_of,
)

SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_QUANTITY: Final = 1_000_000

_SKU = re.compile(SKU_PATTERN)


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
    customer_id = customer_id_of(message.customer_id)
    if not message.HasField("total"):
        raise invalid("the command carries no total")
    total = money(message.total, "total")
    payment_id = optional_uuid(message.payment_id, "payment_id")
    return CreateOrder(saga_id, customer_id, _lines(message.items, total, max_lines), total, payment_id)
