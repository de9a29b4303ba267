"""Queries on accepted checkouts. Each function runs inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_gateway.storage.tables import CheckoutRow


async def find(session: AsyncSession, saga_id: uuid.UUID) -> CheckoutRow | None:
    """The checkout that started saga ``saga_id``, if this gateway accepted it."""
    return await session.get(CheckoutRow, saga_id)


async def find_by_key(session: AsyncSession, idempotency_key: str) -> CheckoutRow | None:
    """The checkout accepted under ``idempotency_key``, if any."""
    result = await session.scalars(select(CheckoutRow).where(CheckoutRow.idempotency_key == idempotency_key))
    return result.one_or_none()


async def insert_unless_key_taken(
    session: AsyncSession,
    *,
    saga_id: uuid.UUID,
    customer_id: str,
    idempotency_key: str | None,
    request_fingerprint: str,
    cart_id: uuid.UUID | None,
    trace_id: str | None,
    created_at: dt.datetime,
) -> bool:
    """Insert the checkout; False (and nothing written) when another one holds the key.

    ``ON CONFLICT DO NOTHING`` on the unique key waits for a concurrent insert of the same key
    to commit or roll back, so of many concurrent retries exactly one inserts; the others then
    read the winner's row. A checkout without a key never conflicts (NULLs are distinct).
    """
    statement = (
        insert(CheckoutRow)
        .values(
            saga_id=saga_id,
            customer_id=customer_id,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            cart_id=cart_id,
            trace_id=trace_id,
            created_at=created_at,
        )
        .on_conflict_do_nothing(index_elements=[CheckoutRow.idempotency_key])
        .returning(CheckoutRow.saga_id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None
