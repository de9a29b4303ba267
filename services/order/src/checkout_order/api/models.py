"""Response bodies of the order service's HTTP API."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel


class Money(BaseModel):
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: str


class OrderLine(BaseModel):
    """A bought SKU at its unit price (null if the command carried none)."""

    sku: str
    quantity: int
    unit_price: Money | None


class Order(BaseModel):
    """An order with its lines."""

    id: uuid.UUID
    saga_id: uuid.UUID
    customer_id: str
    lines: list[OrderLine]
    total: Money
    payment_id: uuid.UUID | None
    created_at: dt.datetime
