"""Queries on stock. Each function runs inside the caller's transaction.

Whoever changes stock locks the rows first with ``SELECT … FOR UPDATE`` **in SKU order**: two
transactions wanting overlapping SKUs then queue on the first SKU they share instead of each
holding one the other needs (no deadlock), and the second one decides on the numbers the
first one committed (no oversell).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_inventory.allocation import PricedLine, StockLevel
from checkout_inventory.storage.tables import StockRow


async def lock(session: AsyncSession, skus: Iterable[str]) -> dict[str, StockLevel]:
    """Lock the stock rows of ``skus`` in SKU order; return those that exist, by SKU."""
    rows = await session.scalars(
        select(StockRow).where(StockRow.sku.in_(sorted(set(skus)))).order_by(StockRow.sku).with_for_update()
    )
    return {row.sku: StockLevel(row.sku, row.available, row.unit_price_minor, row.currency) for row in rows}


async def hold(session: AsyncSession, lines: Sequence[PricedLine]) -> None:
    """Move the lines' units from available to reserved (rows locked by :func:`lock`)."""
    for line in lines:
        await session.execute(
            update(StockRow)
            .where(StockRow.sku == line.sku)
            .values(
                available=StockRow.available - line.quantity,
                reserved=StockRow.reserved + line.quantity,
                updated_at=func.now(),
            )
        )


async def give_back(session: AsyncSession, quantities: Sequence[tuple[str, int]]) -> None:
    """Move units from reserved back to available; locks the rows in SKU order first."""
    await lock(session, (sku for sku, _ in quantities))
    for sku, quantity in sorted(quantities):
        await session.execute(
            update(StockRow)
            .where(StockRow.sku == sku)
            .values(
                available=StockRow.available + quantity,
                reserved=StockRow.reserved - quantity,
                updated_at=func.now(),
            )
        )


async def put(session: AsyncSession, sku: str, available: int, unit_price_minor: int, currency: str) -> StockRow:
    """Set a SKU's available units and price (creating it if new); units held stay held."""
    statement = insert(StockRow).values(
        sku=sku, available=available, reserved=0, unit_price_minor=unit_price_minor, currency=currency
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[StockRow.sku],
        set_={
            "available": statement.excluded.available,
            "unit_price_minor": statement.excluded.unit_price_minor,
            "currency": statement.excluded.currency,
            "updated_at": func.now(),
        },
    ).returning(StockRow)
    row: StockRow = (await session.scalars(upsert, execution_options={"populate_existing": True})).one()
    return row


async def get(session: AsyncSession, sku: str) -> StockRow | None:
    """The SKU's stock, or None if the inventory does not know it."""
    return await session.get(StockRow, sku, populate_existing=True)
