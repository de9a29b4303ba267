"""``GET /orders``: the orders of paid checkouts, per saga, customer or id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from checkout_kit.deps import SessionDep
from checkout_kit.messaging.participant import CUSTOMER_ID_PATTERN
from checkout_order.api.models import Money, Order, OrderLine
from checkout_order.storage import orders
from checkout_order.storage.orders import OrderView

router = APIRouter(prefix="/orders", tags=["orders"])

MAX_LIMIT = 1_000
NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "No such order"}}


def _view(view: OrderView) -> Order:
    row = view.order
    return Order(
        id=row.id,
        saga_id=row.saga_id,
        customer_id=row.customer_id,
        lines=[
            OrderLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=(
                    Money(amount_minor=line.unit_price_minor, currency=row.currency)
                    if line.unit_price_minor is not None
                    else None
                ),
            )
            for line in view.lines
        ],
        total=Money(amount_minor=row.total_minor, currency=row.currency),
        payment_id=row.payment_id,
        created_at=row.created_at,
    )


@router.get("")
async def list_orders(
    session: SessionDep,
    saga_id: Annotated[uuid.UUID | None, Query(description="Only this saga's order")] = None,
    customer_id: Annotated[str | None, Query(pattern=CUSTOMER_ID_PATTERN, description="Only this customer's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[Order]:
    """Orders, newest first (a saga has at most one; a refused saga has none)."""
    async with session.begin():
        found = await orders.search(session, saga_id=saga_id, customer_id=customer_id, limit=limit)
        return [_view(view) for view in found]


@router.get("/{order_id}", responses=NOT_FOUND)
async def get_order(order_id: uuid.UUID, session: SessionDep) -> Order:
    """One order by its id."""
    async with session.begin():
        view = await orders.get(session, order_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"order {order_id} not found")
        return _view(view)
