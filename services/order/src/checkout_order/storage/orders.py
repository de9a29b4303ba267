"""Queries on orders, their lines and refusals. Each function runs inside the caller's transaction.

A saga has at most one order (``saga_id`` unique) and at most one refusal (``saga_id`` is the
key). Two transactions inserting for the same saga at once (two members briefly owning a
partition during a rebalance) cannot both win: the loser's insert fails, its transaction rolls
back, and the consumer's retry finds the winner's row and answers from it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_order.commands import CreateOrder
from checkout_order.storage.tables import OrderLineRow, OrderRefusalRow, OrderRow


@dataclass(frozen=True)
class OrderView:
    """An order with its lines (in line order), as read in one transaction."""

    order: OrderRow
    lines: list[OrderLineRow]


async def _lines(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[OrderLineRow]]:
    found: dict[uuid.UUID, list[OrderLineRow]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        rows = await session.scalars(
            select(OrderLineRow)
            .where(OrderLineRow.order_id.in_(order_ids))
            .order_by(OrderLineRow.order_id, OrderLineRow.line_no)
        )
        for row in rows:
            found[row.order_id].append(row)
    return found


async def find(session: AsyncSession, saga_id: uuid.UUID) -> OrderView | None:
    """The saga's order, if it has one."""
    order = (
        await session.scalars(
            select(OrderRow).where(OrderRow.saga_id == saga_id), execution_options={"populate_existing": True}
        )
    ).one_or_none()
    if order is None:
        return None
    return OrderView(order, (await _lines(session, [order.id]))[order.id])


async def find_refusal(session: AsyncSession, saga_id: uuid.UUID) -> OrderRefusalRow | None:
    """The refusal of the saga's order, if it was refused."""
    return await session.get(OrderRefusalRow, saga_id, populate_existing=True)


async def get(session: AsyncSession, order_id: uuid.UUID) -> OrderView | None:
    """An order by its id."""
    order = await session.get(OrderRow, order_id, populate_existing=True)
    if order is None:
        return None
    return OrderView(order, (await _lines(session, [order.id]))[order.id])


async def search(
    session: AsyncSession, *, saga_id: uuid.UUID | None, customer_id: str | None, limit: int
) -> list[OrderView]:
    """Orders, newest first, optionally of one saga or one customer."""
    query = select(OrderRow).order_by(OrderRow.created_at.desc(), OrderRow.id).limit(limit)
    if saga_id is not None:
        query = query.where(OrderRow.saga_id == saga_id)
    if customer_id is not None:
        query = query.where(OrderRow.customer_id == customer_id)
    orders = list(await session.scalars(query))
    lines = await _lines(session, [order.id for order in orders])
    return [OrderView(order, lines[order.id]) for order in orders]


async def insert(session: AsyncSession, command: CreateOrder) -> OrderView:
    """Create the saga's order with its lines."""
    order = OrderRow(
        id=uuid.uuid4(),
        saga_id=command.saga_id,
        customer_id=command.customer_id,
        total_minor=command.total.amount_minor,
        currency=command.total.currency,
        payment_id=command.payment_id,
    )
    session.add(order)
    await session.flush()
    lines = [
        OrderLineRow(
            order_id=order.id,
            line_no=number,
            sku=line.sku,
            quantity=line.quantity,
            unit_price_minor=line.unit_price_minor,
        )
        for number, line in enumerate(command.lines, start=1)
    ]
    session.add_all(lines)
    await session.flush()
    await session.refresh(order)
    return OrderView(order, lines)


async def insert_refusal(
    session: AsyncSession, saga_id: uuid.UUID, customer_id: str, reason: str, message: str
) -> OrderRefusalRow:
    """Record that the saga's order was refused (and nothing of the order itself)."""
    refusal = OrderRefusalRow(saga_id=saga_id, customer_id=customer_id, reason=reason, message=message)
    session.add(refusal)
    await session.flush()
    return refusal
