"""``GET /reservations``: what the inventory holds for which saga (for operators and the invariant checks)."""

from __future__ import annotations

import uuid
from typing import Annotated, cast

from fastapi import APIRouter, Query

from checkout_inventory.api.models import Money, Reservation, ReservationLine, ReservationStatus
from checkout_inventory.storage import reservations
from checkout_inventory.storage.reservations import ReservationView
from checkout_kit.deps import SessionDep

router = APIRouter(prefix="/reservations", tags=["reservations"])

MAX_LIMIT = 1_000


def _view(view: ReservationView) -> Reservation:
    row = view.reservation
    return Reservation(
        id=row.id,
        saga_id=row.saga_id,
        status=cast(ReservationStatus, row.status),  # the database CHECK keeps it to these
        lines=[
            ReservationLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Money(amount_minor=line.unit_price_minor, currency=line.currency),
            )
            for line in view.lines
        ],
        total=(
            Money(amount_minor=row.total_minor, currency=row.currency)
            if row.total_minor is not None and row.currency is not None
            else None
        ),
        failure_reason=row.failure_reason,
        failure_message=row.failure_message,
        failed_skus=row.failed_skus or [],
        created_at=row.created_at,
        released_at=row.released_at,
    )


@router.get("")
async def list_reservations(
    session: SessionDep,
    saga_id: Annotated[uuid.UUID | None, Query(description="Only this saga's reservation")] = None,
    status: Annotated[ReservationStatus | None, Query(description="Only reservations in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[Reservation]:
    """Reservations, newest first (a saga has at most one)."""
    async with session.begin():
        found = await reservations.search(session, saga_id=saga_id, status=status, limit=limit)
        return [_view(view) for view in found]
