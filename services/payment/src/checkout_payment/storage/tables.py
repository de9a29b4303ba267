"""The payment service's tables. Declared without a schema: the engine's search_path is its schema.

The database holds the money invariants on its own: at most one charge per saga (``saga_id``
unique on charges), at most one refund per saga and per charge (both unique on refunds), known
statuses only, no negative amounts. Constraints are named by convention so that migrations
name them the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from checkout_kit.db import service_metadata
from checkout_kit.inbox import inbox_table
from checkout_kit.outbox import outbox_table

CHARGED: Final = "CHARGED"
"""The provider approved: the customer paid ``amount_minor``."""
DECLINED: Final = "DECLINED"
"""The provider declined: no money moved."""
PENDING: Final = "PENDING"
"""The provider never answered: unknown until a refund voids it. No reply was sent."""
VOIDED: Final = "VOIDED"
"""Voided by a refund before any money moved (a pending charge, or a tombstone: the saga was
refunded before it was charged, so a late ProcessPayment is refused)."""
REFUNDED: Final = "REFUNDED"
"""Charged, then refunded in full (its row in ``refunds``)."""
STATUSES: Final = (CHARGED, DECLINED, PENDING, VOIDED, REFUNDED)

metadata = service_metadata()

outbox = outbox_table(metadata)
"""Replies waiting to be published (written in the command's transaction)."""
inbox = inbox_table(metadata)
"""Commands already applied (a redelivery is skipped)."""


class Base(DeclarativeBase):
    """Declarative base bound to the payment service's metadata."""

    metadata = metadata


class ChargeRow(Base):
    """The one charge attempt of a saga (or its void tombstone)."""

    __tablename__ = "charges"
    __table_args__ = (
        CheckConstraint("status IN ('CHARGED', 'DECLINED', 'PENDING', 'VOIDED', 'REFUNDED')", name="status_known"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("currency IS NULL OR currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
        CheckConstraint(
            "status = 'VOIDED' OR (customer_id IS NOT NULL AND currency IS NOT NULL AND token IS NOT NULL)",
            name="attempt_is_complete",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    saga_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(64))
    """Who paid (NULL on a tombstone: nobody tried)."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """What was asked of the provider (0 on a tombstone)."""
    currency: Mapped[str | None] = mapped_column(String(3))
    token: Mapped[str | None] = mapped_column(String(255))
    """The test token the provider decided on."""
    status: Mapped[str] = mapped_column(String(8))
    decline_message: Mapped[str | None] = mapped_column(Text)
    """The provider's words for a decline."""
    compensation_reason: Mapped[str | None] = mapped_column(String(40))
    """For VOIDED and REFUNDED: why the saga compensated (a FailureCode name)."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefundRow(Base):
    """Money given back for a charge: at most one per charge and per saga, always the full amount."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor >= 0", name="amount_not_negative"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    charge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("charges.id"), unique=True)
    saga_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
