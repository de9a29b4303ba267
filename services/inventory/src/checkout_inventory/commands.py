"""The commands the inventory accepts, checked and normalised before anything touches the database.

A command that can never be applied — no lines, a quantity below 1, no saga id — raises
:class:`~checkout_kit.messaging.InvalidMessageError`: the consumer rolls back and parks it in
the dead-letter topic with the reason, instead of retrying it forever or answering something
the orchestrator would act on. The checks every participant makes (saga id, optional ids,
failure codes) are the kit's (:mod:`checkout_kit.messaging.participant`). Pure functions: the
unit tests cover every rule.
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
from checkout_kit.messaging.participant import UNEXPECTED_TYPE, invalid, known_reason, optional_uuid, saga_id_of

SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A SKU: letters, digits, ``.``, ``_``, ``-``; at most 64 characters (the cart's rule too)."""
MAX_QUANTITY: Final = 1_000_000
"""Units of one SKU a command may ask for; with prices bounded too, a total always fits 64 bits."""

_SKU = re.compile(SKU_PATTERN)


@dataclass(frozen=True)
class Line:
    """Units of one SKU."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class Reserve:
    """Reserve every line, all or nothing."""

    saga_id: uuid.UUID
    lines: tuple[Line, ...]
    """One line per SKU (repeats merged), sorted by SKU: the order stock rows are locked in."""


@dataclass(frozen=True)
class Release:
    """Give back whatever the saga holds."""

    saga_id: uuid.UUID
    reservation_id: uuid.UUID | None
    """The reservation the orchestrator names, if it knows one (the saga id decides)."""
    reason: types_pb2.FailureCode.ValueType
    """Why the saga compensates; kept on a tombstone to explain a refused late reservation."""


Command = Reserve | Release


def _lines(items: Sequence[types_pb2.LineItem], max_lines: int) -> tuple[Line, ...]:
    """Check each line, merge repeats of a SKU, and sort by SKU."""
    totals: dict[str, int] = {}
    for index, item in enumerate(items):
        if not _SKU.fullmatch(item.sku):
            raise invalid(f"items[{index}].sku {item.sku!r} is not a SKU (pattern {SKU_PATTERN})")
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise invalid(f"items[{index}].quantity {item.quantity} is not between 1 and {MAX_QUANTITY}")
        totals[item.sku] = totals.get(item.sku, 0) + item.quantity
    if not totals:
        raise invalid("the command has no items")
    if len(totals) > max_lines:
        raise invalid(f"the command asks for {len(totals)} SKUs; at most {max_lines} are allowed")
    over = sorted(sku for sku, quantity in totals.items() if quantity > MAX_QUANTITY)
    if over:
        raise invalid(f"repeated lines of {', '.join(over)} add up to more than {MAX_QUANTITY} units")
    return tuple(Line(sku, totals[sku]) for sku in sorted(totals))


def parse(envelope: Envelope, *, max_lines: int) -> Command:
    """The command an envelope carries; raise InvalidMessageError if it is none or breaks a rule."""
    message = envelope.message
    if isinstance(message, commands_pb2.ReserveInventory):
        return Reserve(saga_id=saga_id_of(message.saga_id, envelope), lines=_lines(message.items, max_lines))
    if isinstance(message, commands_pb2.ReleaseInventory):
        return Release(
            saga_id=saga_id_of(message.saga_id, envelope),
            reservation_id=optional_uuid(message.reservation_id, "reservation_id"),
            reason=known_reason(message.reason),
        )
    raise InvalidMessageError(UNEXPECTED_TYPE, f"{envelope.type} is not an inventory command")
