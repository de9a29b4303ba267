"""The order service's tables. Declared without a schema: the engine's search_path is its schema.

``orders`` holds only real orders, so "one order per completed saga" is a plain count. A
refused order leaves a row in ``order_refusals`` instead — nothing of the order is kept,
only the refusal, so a retried CreateOrder is refused the same way. Constraints are named by
convention so that migrations name them the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from checkout_kit.db import service_metadata
from checkout_kit.inbox import inbox_table
from checkout_kit.outbox import outbox_table

metadata = service_metadata()

outbox = outbox_table(metadata)
"""Replies waiting to be published (written in the command's transaction)."""
inbox = inbox_table(metadata)
"""Commands already applied (a redelivery is skipped)."""


class Base(DeclarativeBase):
    """Declarative base bound to the order service's metadata."""

    metadata = metadata


class OrderRow(Base):
    """The order of a saga: at most one (``saga_id`` unique)."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    saga_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    """The charge that paid for it (the payment service's id)."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderLineRow(Base):
    """One line of an order, in the order the command gave them."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("unit_price_minor IS NULL OR unit_price_minor >= 0", name="unit_price_not_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int | None] = mapped_column(BigInteger)


class OrderRefusalRow(Base):
    """A saga whose order was refused, and why: a retried CreateOrder gets the same refusal."""

    __tablename__ = "order_refusals"

    saga_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    """A FailureCode name."""
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
