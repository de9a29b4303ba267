"""The inventory's tables. Declared without a schema: the engine's search_path is the inventory's schema.

The database holds the invariants on its own, so no code path (a bug, a hand-written fix)
can break them: stock never negative, a reservation HELD or RELEASED or FAILED and its
``released_at`` set exactly when released, at most one reservation per saga. Constraints are
named by convention so that migrations name them the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from checkout_kit.db import service_metadata
from checkout_kit.inbox import inbox_table
from checkout_kit.outbox import outbox_table

HELD: Final = "HELD"
"""The reservation's units are counted in ``stock.reserved``."""
RELEASED: Final = "RELEASED"
"""Its units went back to ``stock.available`` — or, without lines, a tombstone: the saga was
released before it reserved anything, so a late ReserveInventory is refused."""
FAILED: Final = "FAILED"
"""The reservation was refused (out of stock, unknown SKU): nothing is held, and a retried
command gets the same refusal instead of a second, possibly different, decision."""
STATUSES: Final = (HELD, RELEASED, FAILED)

metadata = service_metadata()

outbox = outbox_table(metadata)
"""Replies waiting to be published (written in the command's transaction)."""
inbox = inbox_table(metadata)
"""Commands already applied (a redelivery is skipped)."""


class Base(DeclarativeBase):
    """Declarative base bound to the inventory's metadata."""

    metadata = metadata


class StockRow(Base):
    """Units of one SKU: free to reserve, and held by reservations."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger, server_default="0")
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReservationRow(Base):
    """The one reservation of a saga (or its refusal, or its release tombstone)."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("status IN ('HELD', 'RELEASED', 'FAILED')", name="status_known"),
        CheckConstraint("(status = 'RELEASED') = (released_at IS NOT NULL)", name="released_at_iff_released"),
        CheckConstraint("total_minor IS NULL OR total_minor >= 0", name="total_not_negative"),
        CheckConstraint("(total_minor IS NULL) = (currency IS NULL)", name="total_has_currency"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    saga_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(String(8))
    total_minor: Mapped[int | None] = mapped_column(BigInteger)
    """Sum of the lines (NULL when nothing was ever held: a refusal or a tombstone)."""
    currency: Mapped[str | None] = mapped_column(String(3))
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    """For FAILED: the FailureCode name given; for RELEASED: why the saga compensated."""
    failure_message: Mapped[str | None] = mapped_column(Text)
    failed_skus: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    """For FAILED: the SKUs that could not be reserved, as answered."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ReservationLineRow(Base):
    """One SKU of a reservation, priced when it was reserved."""

    __tablename__ = "reservation_lines"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price_not_negative"),
    )

    reservation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reservations.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(ForeignKey("stock.sku"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
