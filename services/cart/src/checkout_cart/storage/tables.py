"""The cart's tables. Declared without a schema: the engine's search_path is the cart's schema.

Constraints are named by convention so that migrations name them the same way in every
environment and a later revision can drop them by name.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from checkout_kit.db import service_metadata

MAX_QUANTITY = 1_000
"""Units of one SKU a line may hold (the database enforces it too)."""

metadata = service_metadata()


class Base(DeclarativeBase):
    """Declarative base bound to the cart's metadata."""

    metadata = metadata


class CartRow(Base):
    """A customer's cart."""

    __tablename__ = "carts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CartLineRow(Base):
    """One SKU in a cart and how many units of it."""

    __tablename__ = "cart_lines"
    __table_args__ = (CheckConstraint(f"quantity BETWEEN 1 AND {MAX_QUANTITY}", name="quantity_range"),)

    cart_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
