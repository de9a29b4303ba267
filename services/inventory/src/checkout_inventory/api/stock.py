"""Admin routes of ``/inventory``: set and read a SKU's stock. One transaction per request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from checkout_inventory.api.models import Stock, StockUpdate
from checkout_inventory.commands import SKU_PATTERN
from checkout_inventory.storage import stock
from checkout_inventory.storage.tables import StockRow
from checkout_kit.deps import SessionDep

router = APIRouter(prefix="/inventory", tags=["inventory"])

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, description="The SKU")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "Unknown SKU"}}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_400_BAD_REQUEST: {"description": "The body cannot be read as UTF-8 JSON"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The body is larger than the service accepts"},
}
"""What a route taking a JSON body may answer besides its own codes (FastAPI's 400, the kit's body limit)."""


def _view(row: StockRow) -> Stock:
    return Stock(
        sku=row.sku,
        available=row.available,
        reserved=row.reserved,
        unit_price_minor=row.unit_price_minor,
        currency=row.currency,
        updated_at=row.updated_at,
    )


@router.put("/{sku}", responses=BODY_ERRORS)
async def put_stock(sku: SkuPath, body: StockUpdate, session: SessionDep) -> Stock:
    """Set the SKU's available units and price, creating it if new.

    ``reserved`` is not set here: it counts units held by sagas and changes only with them.
    The row lock the upsert takes queues this behind any reservation in progress.
    """
    async with session.begin():
        row = await stock.put(session, sku, body.available, body.unit_price_minor, body.currency)
        return _view(row)


@router.get("/{sku}", responses=NOT_FOUND)
async def get_stock(sku: SkuPath, session: SessionDep) -> Stock:
    """The SKU's stock."""
    async with session.begin():
        row = await stock.get(session, sku)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"SKU {sku} not found")
        return _view(row)
