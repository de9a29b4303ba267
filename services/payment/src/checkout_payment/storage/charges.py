"""Queries on charges and refunds. Each function runs inside the caller's transaction.

A saga has at most one charge row and at most one refund row, enforced by unique indexes. Two
transactions inserting for the same saga at once (two members briefly owning a partition
during a rebalance) cannot both win: the loser's insert fails, its transaction rolls back, and
the consumer's retry finds the winner's row and answers from it — never a second charge.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_kit.messaging.participant import Money
from checkout_payment.commands import Charge
from checkout_payment.storage.tables import VOIDED, ChargeRow, RefundRow


@dataclass(frozen=True)
class ChargeView:
    """A charge with its refunds, as read in one transaction."""

    charge: ChargeRow
    refunds: list[RefundRow]

    @property
    def refunded_minor(self) -> int:
        """Minor units given back."""
        return sum(refund.amount_minor for refund in self.refunds)


async def _refunds(session: AsyncSession, charge_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[RefundRow]]:
    found: dict[uuid.UUID, list[RefundRow]] = {charge_id: [] for charge_id in charge_ids}
    if charge_ids:
        rows = await session.scalars(
            select(RefundRow).where(RefundRow.charge_id.in_(charge_ids)).order_by(RefundRow.created_at)
        )
        for row in rows:
            found[row.charge_id].append(row)
    return found


async def find(session: AsyncSession, saga_id: uuid.UUID, *, lock: bool = False) -> ChargeView | None:
    """The saga's charge; with ``lock``, its row stays locked until the transaction ends."""
    query = select(ChargeRow).where(ChargeRow.saga_id == saga_id)
    if lock:
        query = query.with_for_update()
    charge = (await session.scalars(query, execution_options={"populate_existing": True})).one_or_none()
    if charge is None:
        return None
    return ChargeView(charge, (await _refunds(session, [charge.id]))[charge.id])


async def get(session: AsyncSession, charge_id: uuid.UUID) -> ChargeView | None:
    """A charge by its id (the ``payment_id`` of the saga's events)."""
    charge = await session.get(ChargeRow, charge_id, populate_existing=True)
    if charge is None:
        return None
    return ChargeView(charge, (await _refunds(session, [charge.id]))[charge.id])


async def search(
    session: AsyncSession, *, saga_id: uuid.UUID | None, status: str | None, limit: int
) -> list[ChargeView]:
    """Charges, newest first, optionally of one saga or in one status."""
    query = select(ChargeRow).order_by(ChargeRow.created_at.desc(), ChargeRow.id).limit(limit)
    if saga_id is not None:
        query = query.where(ChargeRow.saga_id == saga_id)
    if status is not None:
        query = query.where(ChargeRow.status == status)
    charges = list(await session.scalars(query))
    refunds = await _refunds(session, [charge.id for charge in charges])
    return [ChargeView(charge, refunds[charge.id]) for charge in charges]


async def insert_attempt(session: AsyncSession, charge: Charge, status: str, decline_message: str | None) -> ChargeView:
    """Record the saga's charge attempt with the provider's outcome."""
    row = ChargeRow(
        id=uuid.uuid4(),
        saga_id=charge.saga_id,
        customer_id=charge.customer_id,
        amount_minor=charge.amount.amount_minor,
        currency=charge.amount.currency,
        token=charge.token,
        status=status,
        decline_message=decline_message,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return ChargeView(row, [])


async def insert_tombstone(session: AsyncSession, saga_id: uuid.UUID, currency: str | None, reason: str) -> ChargeView:
    """Record that the saga was refunded before it was charged: a late charge is refused."""
    row = ChargeRow(
        id=uuid.uuid4(), saga_id=saga_id, amount_minor=0, currency=currency, status=VOIDED, compensation_reason=reason
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return ChargeView(row, [])


async def set_status(session: AsyncSession, charge: ChargeRow, status: str, reason: str) -> None:
    """Move a charge to VOIDED or REFUNDED, remembering why the saga compensated."""
    await session.execute(
        update(ChargeRow)
        .where(ChargeRow.id == charge.id)
        .values(status=status, compensation_reason=reason, updated_at=func.now())
    )
    await session.refresh(charge)


async def insert_refund(session: AsyncSession, charge: ChargeRow, amount: Money) -> RefundRow:
    """Record the money given back for a charge."""
    refund = RefundRow(
        id=uuid.uuid4(),
        charge_id=charge.id,
        saga_id=charge.saga_id,
        amount_minor=amount.amount_minor,
        currency=amount.currency,
    )
    session.add(refund)
    await session.flush()
    await session.refresh(refund)
    return refund
