"""Routes of ``/carts``. Each request is one transaction; the response is sent after its commit."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_cart.api.models import SKU_PATTERN, Cart, CartLine, LineQuantity, NewCart
from checkout_cart.config import CartSettings
from checkout_cart.storage import carts
from checkout_cart.storage.carts import CartFullError
from checkout_kit.deps import SessionDep, settings_of

router = APIRouter(prefix="/carts", tags=["carts"])

CartSettingsDep = Annotated[CartSettings, Depends(settings_of(CartSettings))]
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, description="The line's SKU")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "No such cart"}}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_400_BAD_REQUEST: {"description": "The body cannot be read as UTF-8 JSON"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The body is larger than the service accepts"},
}
"""What a route taking a JSON body may answer besides its own codes (FastAPI's 400, the kit's body limit)."""


def _not_found(cart_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"cart {cart_id} not found")


async def _read(session: AsyncSession, cart_id: uuid.UUID) -> Cart:
    view = await carts.load(session, cart_id)
    if view is None:
        raise _not_found(cart_id)
    return Cart(
        id=view.cart.id,
        customer_id=view.cart.customer_id,
        currency=view.cart.currency,
        items=[CartLine(sku=line.sku, quantity=line.quantity) for line in view.lines],
        created_at=view.cart.created_at,
        updated_at=view.cart.updated_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=BODY_ERRORS)
async def create_cart(body: NewCart, session: SessionDep, response: Response) -> Cart:
    """Open an empty cart for a customer."""
    async with session.begin():
        cart_id = await carts.create(session, body.customer_id, body.currency)
        cart = await _read(session, cart_id)
    response.headers["Location"] = f"{router.prefix}/{cart_id}"
    return cart


@router.get("/{cart_id}", responses=NOT_FOUND)
async def get_cart(cart_id: uuid.UUID, session: SessionDep) -> Cart:
    """The cart with its lines."""
    async with session.begin():
        return await _read(session, cart_id)


@router.put(
    "/{cart_id}/items/{sku}",
    responses={
        **NOT_FOUND,
        **BODY_ERRORS,
        status.HTTP_409_CONFLICT: {"description": "The cart holds the most lines allowed"},
    },
)
async def set_item(
    cart_id: uuid.UUID, sku: SkuPath, body: LineQuantity, session: SessionDep, settings: CartSettingsDep
) -> Cart:
    """Set how many units of ``sku`` the cart holds; 0 removes the line."""
    try:
        async with session.begin():
            if not await carts.set_line(session, cart_id, sku, body.quantity, settings.max_lines_per_cart):
                raise _not_found(cart_id)
            return await _read(session, cart_id)
    except CartFullError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error


@router.delete("/{cart_id}/items/{sku}", responses=NOT_FOUND)
async def delete_item(cart_id: uuid.UUID, sku: SkuPath, session: SessionDep, settings: CartSettingsDep) -> Cart:
    """Remove ``sku`` from the cart (nothing happens if it holds none)."""
    async with session.begin():
        if not await carts.set_line(session, cart_id, sku, 0, settings.max_lines_per_cart):
            raise _not_found(cart_id)
        return await _read(session, cart_id)


@router.delete("/{cart_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_cart(cart_id: uuid.UUID, session: SessionDep) -> None:
    """Delete the cart and its lines."""
    async with session.begin():
        if not await carts.delete_cart(session, cart_id):
            raise _not_found(cart_id)
