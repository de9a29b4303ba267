"""Queries on carts. Each function runs inside the caller's transaction.

Changing a cart's lines locks the cart row first (``SELECT … FOR UPDATE``), so concurrent
requests on one cart apply one after the other and the line limit cannot be overrun by a race.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_cart.storage.tables import CartLineRow, CartRow


class CartFullError(Exception):
    """The cart already holds the most lines allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a cart holds at most {limit} lines")
        self.limit = limit


@dataclass(frozen=True)
class CartView:
    """A cart with its lines, as read in one transaction."""

    cart: CartRow
    lines: list[CartLineRow]


async def create(session: AsyncSession, customer_id: str, currency: str) -> uuid.UUID:
    """Insert an empty cart; return its id."""
    cart_id = uuid.uuid4()
    session.add(CartRow(id=cart_id, customer_id=customer_id, currency=currency))
    await session.flush()
    return cart_id


async def load(session: AsyncSession, cart_id: uuid.UUID) -> CartView | None:
    """The cart and its lines (by SKU), or None if there is no such cart."""
    cart = await session.get(CartRow, cart_id, populate_existing=True)
    if cart is None:
        return None
    lines = await session.scalars(select(CartLineRow).where(CartLineRow.cart_id == cart_id).order_by(CartLineRow.sku))
    return CartView(cart=cart, lines=list(lines))


async def _lock(session: AsyncSession, cart_id: uuid.UUID) -> bool:
    locked = await session.scalar(select(CartRow.id).where(CartRow.id == cart_id).with_for_update())
    return locked is not None


async def _touch(session: AsyncSession, cart_id: uuid.UUID) -> None:
    await session.execute(update(CartRow).where(CartRow.id == cart_id).values(updated_at=func.now()))


async def set_line(session: AsyncSession, cart_id: uuid.UUID, sku: str, quantity: int, max_lines: int) -> bool:
    """Set a line's quantity (0 removes it); False if there is no such cart.

    Raises :class:`CartFullError` when adding a new SKU to a cart already at ``max_lines``.
    """
    if not await _lock(session, cart_id):
        return False
    if quantity == 0:
        await session.execute(delete(CartLineRow).where(CartLineRow.cart_id == cart_id, CartLineRow.sku == sku))
    else:
        others = await session.scalar(
            select(func.count()).where(CartLineRow.cart_id == cart_id, CartLineRow.sku != sku)
        )
        exists = await session.scalar(
            select(func.count()).where(CartLineRow.cart_id == cart_id, CartLineRow.sku == sku)
        )
        if not exists and (others or 0) >= max_lines:
            raise CartFullError(max_lines)
        statement = insert(CartLineRow).values(cart_id=cart_id, sku=sku, quantity=quantity)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[CartLineRow.cart_id, CartLineRow.sku],
                set_={"quantity": statement.excluded.quantity, "updated_at": func.now()},
            )
        )
    await _touch(session, cart_id)
    return True


async def delete_cart(session: AsyncSession, cart_id: uuid.UUID) -> bool:
    """Delete a cart and its lines; False if there was no such cart."""
    result = await session.execute(delete(CartRow).where(CartRow.id == cart_id).returning(CartRow.id))
    return result.first() is not None
