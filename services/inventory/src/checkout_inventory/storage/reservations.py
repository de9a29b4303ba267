"""Queries on reservations and their lines. Each function runs inside the caller's transaction.

A saga has at most one reservation row (``saga_id`` is unique): held, released, refused, or a
release tombstone. Two transactions inserting one for the same saga at once (two members
briefly owning a partition during a rebalance) cannot both win: the loser's insert fails on
the unique index, its transaction rolls back, and the consumer's retry finds the winner's row
and answers from it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import types_pb2
from checkout_inventory.allocation import Allocation, Refusal
from checkout_inventory.storage.tables import FAILED, HELD, RELEASED, ReservationLineRow, ReservationRow
from checkout_kit.messaging.participant import reason_name


@dataclass(frozen=True)
class ReservationView:
    """A reservation with its lines (by SKU), as read in one transaction."""

    reservation: ReservationRow
    lines: list[ReservationLineRow]


async def _lines(
    session: AsyncSession, reservation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ReservationLineRow]]:
    found: dict[uuid.UUID, list[ReservationLineRow]] = {reservation_id: [] for reservation_id in reservation_ids}
    if reservation_ids:
        rows = await session.scalars(
            select(ReservationLineRow)
            .where(ReservationLineRow.reservation_id.in_(reservation_ids))
            .order_by(ReservationLineRow.reservation_id, ReservationLineRow.sku)
        )
        for row in rows:
            found[row.reservation_id].append(row)
    return found


async def find(session: AsyncSession, saga_id: uuid.UUID, *, lock: bool = False) -> ReservationView | None:
    """The saga's reservation; with ``lock``, its row stays locked until the transaction ends."""
    query = select(ReservationRow).where(ReservationRow.saga_id == saga_id)
    if lock:
        query = query.with_for_update()
    reservation = (await session.scalars(query, execution_options={"populate_existing": True})).one_or_none()
    if reservation is None:
        return None
    return ReservationView(reservation, (await _lines(session, [reservation.id]))[reservation.id])


async def search(
    session: AsyncSession, *, saga_id: uuid.UUID | None, status: str | None, limit: int
) -> list[ReservationView]:
    """Reservations, newest first, optionally of one saga or in one status."""
    query = select(ReservationRow).order_by(ReservationRow.created_at.desc(), ReservationRow.id).limit(limit)
    if saga_id is not None:
        query = query.where(ReservationRow.saga_id == saga_id)
    if status is not None:
        query = query.where(ReservationRow.status == status)
    reservations = list(await session.scalars(query))
    lines = await _lines(session, [reservation.id for reservation in reservations])
    return [ReservationView(reservation, lines[reservation.id]) for reservation in reservations]


async def insert_held(session: AsyncSession, saga_id: uuid.UUID, allocation: Allocation) -> ReservationView:
    """Record the saga's reservation of the allocated lines."""
    reservation = ReservationRow(
        id=uuid.uuid4(),
        saga_id=saga_id,
        status=HELD,
        total_minor=allocation.total_minor,
        currency=allocation.currency,
    )
    session.add(reservation)
    await session.flush()
    lines = [
        ReservationLineRow(
            reservation_id=reservation.id,
            sku=line.sku,
            quantity=line.quantity,
            unit_price_minor=line.unit_price_minor,
            currency=line.currency,
        )
        for line in allocation.lines
    ]
    session.add_all(lines)
    await session.flush()
    return ReservationView(reservation, sorted(lines, key=lambda line: line.sku))


async def insert_failed(session: AsyncSession, saga_id: uuid.UUID, refusal: Refusal) -> ReservationView:
    """Record that the saga's reservation was refused, so a retry is refused the same way."""
    reservation = ReservationRow(
        id=uuid.uuid4(),
        saga_id=saga_id,
        status=FAILED,
        failure_reason=reason_name(refusal.reason),
        failure_message=refusal.message,
        failed_skus=list(refusal.skus),
    )
    session.add(reservation)
    await session.flush()
    return ReservationView(reservation, [])


async def insert_tombstone(
    session: AsyncSession, saga_id: uuid.UUID, reason: types_pb2.FailureCode.ValueType
) -> ReservationView:
    """Record that the saga was released before it reserved: a late reservation is refused."""
    reservation = ReservationRow(
        id=uuid.uuid4(),
        saga_id=saga_id,
        status=RELEASED,
        failure_reason=reason_name(reason),
        released_at=func.now(),
    )
    session.add(reservation)
    await session.flush()
    await session.refresh(reservation)
    return ReservationView(reservation, [])


async def mark_released(
    session: AsyncSession, reservation: ReservationRow, reason: types_pb2.FailureCode.ValueType
) -> None:
    """Mark a held reservation released (its units must be given back in the same transaction)."""
    await session.execute(
        update(ReservationRow)
        .where(ReservationRow.id == reservation.id)
        .values(status=RELEASED, released_at=func.now(), failure_reason=reason_name(reason))
    )
    await session.refresh(reservation)
