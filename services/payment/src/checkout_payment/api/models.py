"""Response bodies of the payment service's HTTP API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel

PaymentStatus = Literal["CHARGED", "DECLINED", "PENDING", "VOIDED", "REFUNDED"]


class Refund(BaseModel):
    """Money given back for a charge."""

    id: uuid.UUID
    amount_minor: int
    currency: str
    created_at: dt.datetime


class Payment(BaseModel):
    """A saga's charge attempt with its refunds. The payment token is not shown."""

    id: uuid.UUID
    """The ``payment_id`` of the saga's events."""
    saga_id: uuid.UUID
    customer_id: str | None
    """Null on a tombstone (the saga was refunded before anyone tried to pay)."""
    status: PaymentStatus
    amount_minor: int
    """What was asked of the provider."""
    currency: str | None
    decline_message: str | None
    compensation_reason: str | None
    """Why the saga compensated (VOIDED, REFUNDED)."""
    refunds: list[Refund]
    net_amount_minor: int
    """Money the customer is out of now: charged minus refunded (0 unless CHARGED)."""
    created_at: dt.datetime
    updated_at: dt.datetime
