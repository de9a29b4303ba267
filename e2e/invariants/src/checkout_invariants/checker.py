"""Read the orchestrator's, inventory's, payment's and order's tables and report every violation.

The invariants (issue "The checkout saga", item 5):

* every saga is terminal (COMPLETED or FAILED) once its deadline budget has passed;
* stock is conserved: for every SKU, available + reserved equals what it was before the run
  (``snapshot_stock``), and ``reserved`` equals the units held by HELD reservations;
* no saga is charged twice (at most one charge that moved money, at most one refund);
* every COMPLETED saga has exactly one order and a net charge equal to its amount (> 0);
* every FAILED saga has a net charge of zero, holds no reservation, and has no order.

It reads with the superuser (or any role that can read all four schemas) and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import asyncpg

TERMINAL = ("COMPLETED", "FAILED")
MONEY_MOVED = ("CHARGED", "REFUNDED")
"""Charge statuses for which money was taken (a refund, if any, is a separate row)."""


@dataclass(frozen=True)
class Schemas:
    """Where each service's tables live."""

    orchestrator: str = "orchestrator"
    inventory: str = "inventory"
    payment: str = "payment"
    orders: str = "orders"

    def __post_init__(self) -> None:
        for name in (self.orchestrator, self.inventory, self.payment, self.orders):
            if not name.replace("_", "").isalnum():
                raise ValueError(f"schema name {name!r} is not a plain identifier")


@dataclass(frozen=True)
class Violation:
    """One broken invariant."""

    invariant: str
    """Short name: ``stuck-saga``, ``stock-not-conserved``, ``double-charge``, …"""
    subject: str
    """The saga id or SKU concerned."""
    detail: str


@dataclass
class Report:
    """What the checker found."""

    sagas: dict[str, int] = field(default_factory=dict)
    """Count of sagas per state."""
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every invariant holds."""
        return not self.violations

    def summary(self) -> str:
        """One line per violation (or a one-line all-clear), for test failures and bench output."""
        counts = ", ".join(f"{state}={n}" for state, n in sorted(self.sagas.items())) or "no sagas"
        if self.ok:
            return f"all invariants hold ({counts})"
        lines = [f"{len(self.violations)} violation(s) ({counts}):"]
        lines += [f"  {v.invariant} {v.subject}: {v.detail}" for v in self.violations]
        return "\n".join(lines)


async def snapshot_stock(dsn: str, schemas: Schemas = Schemas()) -> dict[str, int]:
    """Units per SKU (available + reserved) — take it before a run, pass it to :func:`check`."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(f"SELECT sku, available + reserved AS units FROM {schemas.inventory}.stock")
    finally:
        await connection.close()
    return {row["sku"]: int(row["units"]) for row in rows}


async def check(
    dsn: str,
    *,
    stock_before: Mapping[str, int],
    deadline_budget: dt.timedelta,
    schemas: Schemas = Schemas(),
    saga_ids: Iterable[str] | None = None,
) -> Report:
    """Check every invariant; ``saga_ids`` limits the per-saga checks to one run's sagas."""
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            return await _check(connection, stock_before, deadline_budget, schemas, saga_ids)
    finally:
        await connection.close()


async def _check(
    db: asyncpg.Connection,
    stock_before: Mapping[str, int],
    budget: dt.timedelta,
    s: Schemas,
    saga_ids: Iterable[str] | None,
) -> Report:
    report = Report()
    only = [str(i) for i in saga_ids] if saga_ids is not None else None
    scope = "AND saga_id::text = ANY($1::text[])" if only is not None else ""
    args: list[object] = [only] if only is not None else []

    def violate(invariant: str, subject: object, detail: str) -> None:
        report.violations.append(Violation(invariant, str(subject), detail))

    sagas = await db.fetch(
        f"SELECT saga_id::text AS id, state, amount_minor, created_at FROM {s.orchestrator}.sagas WHERE true {scope}",
        *args,
    )
    for row in sagas:
        report.sagas[row["state"]] = report.sagas.get(row["state"], 0) + 1
    now = await db.fetchval("SELECT now()")
    for row in sagas:
        if row["state"] not in TERMINAL and row["created_at"] + budget < now:
            violate("stuck-saga", row["id"], f"{row['state']} {now - row['created_at']} after start (budget {budget})")

    # Stock: conservation against the snapshot, and reserved == what HELD reservations hold.
    stock = {r["sku"]: r for r in await db.fetch(f"SELECT sku, available, reserved FROM {s.inventory}.stock")}
    held = {
        r["sku"]: int(r["units"])
        for r in await db.fetch(
            f"SELECT l.sku, sum(l.quantity) AS units FROM {s.inventory}.reservation_lines l "
            f"JOIN {s.inventory}.reservations r ON r.id = l.reservation_id WHERE r.status = 'HELD' GROUP BY l.sku"
        )
    }
    for sku, before in stock_before.items():
        row = stock.get(sku)
        if row is None:
            violate("stock-not-conserved", sku, "the SKU disappeared")
            continue
        if row["available"] + row["reserved"] != before:
            violate(
                "stock-not-conserved",
                sku,
                f"available {row['available']} + reserved {row['reserved']} != {before} before the run",
            )
    for sku, row in stock.items():
        if row["reserved"] != held.get(sku, 0):
            violate(
                "reserved-mismatch", sku, f"reserved {row['reserved']} but HELD reservations hold {held.get(sku, 0)}"
            )

    # Money: per saga, charges that moved money, refunds, net.
    charges = {
        r["saga_id"]: r
        for r in await db.fetch(
            f"SELECT saga_id::text AS saga_id, count(*) FILTER (WHERE status = ANY($1::text[])) AS moved, "
            f"coalesce(sum(amount_minor) FILTER (WHERE status = ANY($1::text[])), 0) AS charged "
            f"FROM {s.payment}.charges GROUP BY saga_id",
            list(MONEY_MOVED),
        )
    }
    refunds = {
        r["saga_id"]: r
        for r in await db.fetch(
            f"SELECT saga_id::text AS saga_id, count(*) AS n, sum(amount_minor) AS refunded "
            f"FROM {s.payment}.refunds GROUP BY saga_id"
        )
    }
    orders = {
        r["saga_id"]: int(r["n"])
        for r in await db.fetch(
            f"SELECT saga_id::text AS saga_id, count(*) AS n FROM {s.orders}.orders GROUP BY saga_id"
        )
    }
    holding = {
        r["saga_id"]
        for r in await db.fetch(
            f"SELECT saga_id::text AS saga_id FROM {s.inventory}.reservations WHERE status = 'HELD'"
        )
    }
    for saga_id, row in charges.items():
        if row["moved"] > 1:
            violate("double-charge", saga_id, f"{row['moved']} charges moved money")
    for saga_id, row in refunds.items():
        if row["n"] > 1:
            violate("double-refund", saga_id, f"{row['n']} refunds")

    for row in sagas:
        saga_id = row["id"]
        charged = int(charges[saga_id]["charged"]) if saga_id in charges else 0
        refunded = int(refunds[saga_id]["refunded"]) if saga_id in refunds else 0
        net = charged - refunded
        if row["state"] == "COMPLETED":
            if orders.get(saga_id, 0) != 1:
                violate("completed-without-one-order", saga_id, f"{orders.get(saga_id, 0)} orders")
            if net != row["amount_minor"] or net <= 0:
                violate("completed-net-charge", saga_id, f"net charge {net}, saga amount {row['amount_minor']}")
            if saga_id not in holding:
                violate("completed-without-reservation", saga_id, "no HELD reservation for a completed saga")
        elif row["state"] == "FAILED":
            if net != 0:
                violate("failed-net-charge", saga_id, f"net charge {net} (charged {charged}, refunded {refunded})")
            if saga_id in holding:
                violate("failed-holds-stock", saga_id, "a HELD reservation remains")
            if orders.get(saga_id, 0):
                violate("failed-with-order", saga_id, f"{orders[saga_id]} orders")
    return report
