"""The gateway's tables. Declared without a schema: the engine's search_path is the gateway's schema.

``checkouts`` records every accepted checkout, written in the same transaction as the
``CheckoutInitiated`` message in the kit's ``outbox``: a checkout the gateway answered 202 for
is never lost, and the outbox relay publishes its message even after a crash.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from checkout_kit.db import service_metadata
from checkout_kit.outbox import outbox_table

IDEMPOTENCY_KEY_MAX = 255
"""Longest ``Idempotency-Key`` accepted (the column's length)."""

metadata = service_metadata()

outbox = outbox_table(metadata)
"""The kit's outbox, in the gateway's schema: ``CheckoutInitiated`` waits here until published."""


class Base(DeclarativeBase):
    """Declarative base bound to the gateway's metadata."""

    metadata = metadata


class CheckoutRow(Base):
    """A checkout the gateway accepted (and so a saga that will run)."""

    __tablename__ = "checkouts"
    __table_args__ = {"comment": "Checkouts the gateway accepted (202): one saga each."}  # noqa: RUF012

    saga_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(
        String(IDEMPOTENCY_KEY_MAX),
        unique=True,
        comment="The client's Idempotency-Key; unique, so concurrent retries create one saga.",
    )
    request_fingerprint: Mapped[str] = mapped_column(
        String(64), comment="SHA-256 of the normalised request: a reused key must come with the same request."
    )
    cart_id: Mapped[uuid.UUID | None] = mapped_column(comment="The cart the items came from, if any.")
    trace_id: Mapped[str | None] = mapped_column(String(32), comment="W3C trace id of the request, if traced.")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
