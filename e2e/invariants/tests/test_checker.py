"""The invariant checker finds each kind of violation in the services' real schemas, and passes a clean run."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

import checkout_inventory.main
import checkout_orchestrator.main
import checkout_order.main
import checkout_payment.main
from checkout_invariants import Schemas, check, snapshot_stock
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.settings import DatabaseSettings

pytestmark = pytest.mark.integration

SCHEMAS = Schemas()
SERVICES: dict[str, Path] = {
    SCHEMAS.orchestrator: checkout_orchestrator.main.MIGRATIONS,
    SCHEMAS.inventory: checkout_inventory.main.MIGRATIONS,
    SCHEMAS.payment: checkout_payment.main.MIGRATIONS,
    SCHEMAS.orders: checkout_order.main.MIGRATIONS,
}
BUDGET = dt.timedelta(minutes=5)


@pytest.fixture
async def world(postgres_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A fresh database with the four services' schemas migrated to head."""
    name = f"invariants_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        for schema, migrations in SERVICES.items():
            await upgrade_to_head(DatabaseSettings(url=dsn, schema=schema), migrations)
        db = await asyncpg.connect(dsn)
        try:
            yield dsn, db
        finally:
            await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def add_saga(db: asyncpg.Connection, state: str, amount: int, *, age: dt.timedelta = dt.timedelta()) -> str:
    saga_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO orchestrator.sagas (saga_id, state, version, customer_id, currency, payment_token, lines,"
        " amount_minor, pending, done, created_at) VALUES ($1, $2, 1, 'cust_1', 'EUR', 'tok_visa', '[]', $3,"
        " '{}', '[]', now() - $4::interval)",
        uuid.UUID(saga_id),
        state,
        amount,
        age,
    )
    return saga_id


async def hold(db: asyncpg.Connection, saga_id: str, sku: str, quantity: int, status: str = "HELD") -> None:
    reservation = uuid.uuid4()
    await db.execute(
        "INSERT INTO inventory.reservations (id, saga_id, status, total_minor, currency, released_at)"
        " VALUES ($1, $2, $3::text, $4, 'EUR', CASE WHEN $3::text = 'RELEASED' THEN now() END)",
        reservation,
        uuid.UUID(saga_id),
        status,
        quantity * 1000,
    )
    await db.execute(
        "INSERT INTO inventory.reservation_lines (reservation_id, sku, quantity, unit_price_minor, currency)"
        " VALUES ($1, $2, $3, 1000, 'EUR')",
        reservation,
        sku,
        quantity,
    )


async def charge(db: asyncpg.Connection, saga_id: str, amount: int, *, refunded: bool = False) -> None:
    charge_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO payment.charges (id, saga_id, customer_id, amount_minor, currency, token, status)"
        " VALUES ($1, $2, 'cust_1', $3, 'EUR', 'tok_visa', $4)",
        charge_id,
        uuid.UUID(saga_id),
        amount,
        "REFUNDED" if refunded else "CHARGED",
    )
    if refunded:
        await db.execute(
            "INSERT INTO payment.refunds (id, charge_id, saga_id, amount_minor, currency)"
            " VALUES ($1, $2, $3, $4, 'EUR')",
            uuid.uuid4(),
            charge_id,
            uuid.UUID(saga_id),
            amount,
        )


async def order(db: asyncpg.Connection, saga_id: str, total: int) -> None:
    await db.execute(
        "INSERT INTO orders.orders (id, saga_id, customer_id, total_minor, currency)"
        " VALUES ($1, $2, 'cust_1', $3, 'EUR')",
        uuid.uuid4(),
        uuid.UUID(saga_id),
        total,
    )


async def consistent_run(db: asyncpg.Connection) -> tuple[str, str]:
    """SKU-A had 10 units; one saga completed with 3 of them, one failed and gave everything back."""
    await db.execute(
        "INSERT INTO inventory.stock (sku, available, reserved, unit_price_minor, currency)"
        " VALUES ('SKU-A', 10, 0, 1000, 'EUR')"
    )
    completed = await add_saga(db, "COMPLETED", 3000)
    await db.execute("UPDATE inventory.stock SET available = 7, reserved = 3 WHERE sku = 'SKU-A'")
    await hold(db, completed, "SKU-A", 3)
    await charge(db, completed, 3000)
    await order(db, completed, 3000)
    failed = await add_saga(db, "FAILED", 2000)
    await hold(db, failed, "SKU-A", 2, status="RELEASED")
    await charge(db, failed, 2000, refunded=True)
    return completed, failed


async def test_a_consistent_run_passes(world: tuple[str, asyncpg.Connection]) -> None:
    dsn, db = world
    await consistent_run(db)
    report = await check(dsn, stock_before={"SKU-A": 10}, deadline_budget=BUDGET)
    assert report.ok, report.summary()
    assert report.sagas == {"COMPLETED": 1, "FAILED": 1}
    assert await snapshot_stock(dsn) == {"SKU-A": 10}


async def test_each_broken_invariant_is_named(world: tuple[str, asyncpg.Connection]) -> None:
    dsn, db = world
    completed, failed = await consistent_run(db)
    stuck = await add_saga(db, "PAYMENT_PENDING", 1000, age=dt.timedelta(hours=1))
    fresh = await add_saga(db, "PAYMENT_PENDING", 1000)
    await db.execute("DELETE FROM payment.refunds WHERE saga_id = $1", uuid.UUID(failed))  # charged, never refunded
    await db.execute("DELETE FROM orders.orders WHERE saga_id = $1", uuid.UUID(completed))  # no order
    await db.execute("UPDATE inventory.stock SET available = available + 1 WHERE sku = 'SKU-A'")  # a unit appeared

    report = await check(dsn, stock_before={"SKU-A": 10}, deadline_budget=BUDGET)
    found = {(v.invariant, v.subject) for v in report.violations}
    assert found == {
        ("stuck-saga", stuck),
        ("failed-net-charge", failed),
        ("completed-without-one-order", completed),
        ("stock-not-conserved", "SKU-A"),
    }, report.summary()
    assert all(v.subject != fresh for v in report.violations)  # within its budget: not stuck yet

    only_completed = await check(dsn, stock_before={}, deadline_budget=BUDGET, saga_ids=[completed])
    assert {v.invariant for v in only_completed.violations} == {"completed-without-one-order"}


async def test_a_failed_saga_still_holding_stock_is_reported(world: tuple[str, asyncpg.Connection]) -> None:
    dsn, db = world
    _, failed = await consistent_run(db)
    await db.execute(
        "UPDATE inventory.reservations SET status = 'HELD', released_at = NULL WHERE saga_id = $1", uuid.UUID(failed)
    )
    await db.execute("UPDATE inventory.stock SET available = 5, reserved = 5 WHERE sku = 'SKU-A'")
    report = await check(dsn, stock_before={"SKU-A": 10}, deadline_budget=BUDGET)
    assert {(v.invariant, v.subject) for v in report.violations} == {("failed-holds-stock", failed)}, report.summary()
