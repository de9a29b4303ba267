"""Request and response bodies of the inventory's HTTP API, with the bounds it promises."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from checkout_inventory.commands import SKU_PATTERN

MAX_AVAILABLE: Final = 1_000_000_000
"""Units one SKU may have available."""
MAX_UNIT_PRICE_MINOR: Final = 1_000_000_000
"""Highest unit price in minor units: with the command's bounds, any total fits in 64 bits."""

Sku = Annotated[str, Field(pattern=SKU_PATTERN, examples=["SKU-001"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])]
ReservationStatus = Literal["HELD", "RELEASED", "FAILED"]


class StockUpdate(BaseModel):
    """``PUT /inventory/{sku}``: the SKU's free units and price. Units held by reservations stay held."""

    model_config = ConfigDict(extra="forbid")

    # strict: JSON integers only (lax mode would take ``false`` as 0 and ``"5"`` as 5).
    available: Annotated[int, Field(strict=True, ge=0, le=MAX_AVAILABLE)]
    unit_price_minor: Annotated[int, Field(strict=True, ge=0, le=MAX_UNIT_PRICE_MINOR)]
    currency: Currency


class Stock(BaseModel):
    """One SKU's stock."""

    sku: Sku
    available: int
    """Units free to reserve."""
    reserved: int
    """Units held by reservations."""
    unit_price_minor: int
    currency: Currency
    updated_at: dt.datetime


class Money(BaseModel):
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: Currency


class ReservationLine(BaseModel):
    """A reserved SKU at the price it was reserved at."""

    sku: Sku
    quantity: int
    unit_price: Money


class Reservation(BaseModel):
    """A saga's reservation: held, released, refused, or a release tombstone (released, no lines)."""

    id: uuid.UUID
    saga_id: uuid.UUID
    status: ReservationStatus
    lines: list[ReservationLine]
    total: Money | None
    """The lines' total; null when nothing was ever held."""
    failure_reason: str | None
    """Why it was refused (FAILED) or why the saga was released (RELEASED)."""
    failure_message: str | None
    failed_skus: list[str]
    created_at: dt.datetime
    released_at: dt.datetime | None
