"""``GET /payments``: charges and refunds per saga, with the money that really moved."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, HTTPException, Query, status

from checkout_kit.deps import SessionDep
from checkout_payment.api.models import Payment, PaymentStatus, Refund
from checkout_payment.storage import charges
from checkout_payment.storage.charges import ChargeView
from checkout_payment.storage.tables import CHARGED, REFUNDED

router = APIRouter(prefix="/payments", tags=["payments"])

MAX_LIMIT = 1_000
NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "No such payment"}}


def net_amount_minor(view: ChargeView) -> int:
    """Charged minus refunded; a declined, pending or voided attempt moved no money."""
    charged = view.charge.amount_minor if view.charge.status in (CHARGED, REFUNDED) else 0
    return charged - view.refunded_minor


def _view(view: ChargeView) -> Payment:
    row = view.charge
    return Payment(
        id=row.id,
        saga_id=row.saga_id,
        customer_id=row.customer_id,
        status=cast(PaymentStatus, row.status),  # the database CHECK keeps it to these
        amount_minor=row.amount_minor,
        currency=row.currency,
        decline_message=row.decline_message,
        compensation_reason=row.compensation_reason,
        refunds=[
            Refund(id=r.id, amount_minor=r.amount_minor, currency=r.currency, created_at=r.created_at)
            for r in view.refunds
        ],
        net_amount_minor=net_amount_minor(view),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("")
async def list_payments(
    session: SessionDep,
    saga_id: Annotated[uuid.UUID | None, Query(description="Only this saga's payment")] = None,
    status: Annotated[PaymentStatus | None, Query(description="Only payments in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[Payment]:
    """Payments, newest first (a saga has at most one)."""
    async with session.begin():
        found = await charges.search(session, saga_id=saga_id, status=status, limit=limit)
        return [_view(view) for view in found]


@router.get("/{payment_id}", responses=NOT_FOUND)
async def get_payment(payment_id: uuid.UUID, session: SessionDep) -> Payment:
    """One payment by its id."""
    async with session.begin():
        view = await charges.get(session, payment_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"payment {payment_id} not found")
        return _view(view)
