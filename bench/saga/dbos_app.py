"""The checkout saga as a DBOS durable workflow: the peer engine of the saga benchmark (see :mod:`dbos_peer`).

One process: FastAPI under uvicorn (uvloop, as the platform's services run) with DBOS launched in its
lifespan. ``POST /checkout`` starts the workflow with ``DBOS.start_workflow_async`` under the saga id as
workflow id and answers 202 once DBOS has durably recorded the workflow (its ``workflow_status`` row); the
saga then runs on the server's event loop, and a crashed process recovers it from its last checkpoint.

The workflow is the platform's saga, step for step, on the same business tables and statements:

1. ``reserve``: lock the stock rows in SKU order, hold every line or none (``available`` -> ``reserved``),
   record the reservation (HELD, or FAILED with the reason);
2. ``charge``: the simulated provider decides by token (``tok_visa`` approves), record the charge;
3. ``create_order``: the order and its lines.

A refused step compensates the completed ones in reverse (``refund``, then ``release``) and the workflow
raises :class:`CheckoutFailed`, which DBOS records as status ``ERROR``. A completed saga keeps its
reservation HELD, as the platform's does (its units stay in ``reserved``).

Each business step is one PostgreSQL transaction on the app's tables, idempotent by saga id like the
platform's participants (unique ``saga_id`` columns; a step run again answers from the existing row), so
it is run as a plain ``@DBOS.step`` (``--steps step``, the default): DBOS checkpoints it after it commits,
and a step run twice (a crash between commit and checkpoint, or DBOS's retry of a transient error) changes
nothing. ``--steps transaction`` runs each as a DBOS *transaction* instead (DBOS 3 has no
``@DBOS.transaction``; datasources are its way to them): a function of an
:class:`~dbos.AsyncSQLAlchemyDatasource` whose business writes and DBOS's checkpoint
(``dbos.datasource_outputs``) commit in one transaction, exactly once. That is DBOS's documented choice
for database steps, but it costs per step a checkpoint lookup, a checkpoint row, an ownership check on the
system tables while the business transaction (and the hot stock row's lock) stays open, and a cleanup at
the end: on this saga about twice the CPU and a quarter of the sustained rate of plain steps, for no
guarantee the idempotent steps lack. The default is the cheaper of two correct configurations, so the
comparison errs in DBOS's favour. Isolation is READ COMMITTED with row locks, as the platform's
inventory uses, not the datasource's SERIALIZABLE default: every checkout updates the same stock row,
which under SERIALIZABLE would be a stream of serialization failures and retries.

The system tables (schema ``dbos``) live in the application's own database, next to schema ``checkout``:
DBOS 3 has only a system database URL, and one database keeps the benchmark's commit count whole.

    DBOS_PEER_DATABASE_URL=postgresql://... python bench/saga/dbos_app.py --port 8000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa
import uvicorn
from dbos import DBOS, AsyncSQLAlchemyDatasource, DBOSConfig, SetWorkflowID
from fastapi import FastAPI, Header
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

APP_NAME: Final = "checkout-dbos-peer"
ISOLATION: Final = "READ COMMITTED"
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("6f1f3a52-8f0e-4f8e-9a55-2f1d7c0e3b41")
"""Saga id of a request with an ``Idempotency-Key``: uuid5 of the key, so a retried POST is the same workflow."""
APPROVING_TOKENS: Final = frozenset({"tok_visa"})
"""The simulated provider approves these and declines the rest (the platform's ``SimulatedProvider``)."""

DDL: Final = """
CREATE SCHEMA IF NOT EXISTS checkout;
CREATE TABLE IF NOT EXISTS checkout.stock (
    sku text PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0),
    reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    currency text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS checkout.reservations (
    id uuid PRIMARY KEY,
    saga_id uuid NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN ('HELD', 'RELEASED', 'FAILED')),
    total_minor bigint,
    currency text,
    failure_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);
CREATE TABLE IF NOT EXISTS checkout.reservation_lines (
    reservation_id uuid NOT NULL REFERENCES checkout.reservations (id) ON DELETE CASCADE,
    sku text NOT NULL REFERENCES checkout.stock (sku),
    quantity integer NOT NULL CHECK (quantity >= 1),
    unit_price_minor bigint NOT NULL,
    currency text NOT NULL,
    PRIMARY KEY (reservation_id, sku)
);
CREATE TABLE IF NOT EXISTS checkout.charges (
    id uuid PRIMARY KEY,
    saga_id uuid NOT NULL UNIQUE,
    customer_id text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency text NOT NULL,
    token text NOT NULL,
    status text NOT NULL CHECK (status IN ('CHARGED', 'DECLINED', 'REFUNDED')),
    decline_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS checkout.refunds (
    id uuid PRIMARY KEY,
    charge_id uuid NOT NULL UNIQUE REFERENCES checkout.charges (id),
    saga_id uuid NOT NULL UNIQUE,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS checkout.orders (
    id uuid PRIMARY KEY,
    saga_id uuid NOT NULL UNIQUE,
    customer_id text NOT NULL,
    total_minor bigint NOT NULL CHECK (total_minor >= 0),
    currency text NOT NULL,
    payment_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS checkout.order_lines (
    order_id uuid NOT NULL REFERENCES checkout.orders (id) ON DELETE CASCADE,
    line_no integer NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL CHECK (quantity >= 1),
    unit_price_minor bigint,
    PRIMARY KEY (order_id, line_no)
);
"""
"""The business tables: the platform's inventory, payment and order tables without their inbox/outbox."""


class SQL:
    """The statements of the saga's transactions: the platform's participants' queries, on schema ``checkout``."""

    find_reservation: Final = (
        "SELECT id, status, total_minor, currency, failure_message FROM checkout.reservations "
        "WHERE saga_id = :saga FOR UPDATE"
    )
    lines: Final = (
        "SELECT sku, quantity, unit_price_minor FROM checkout.reservation_lines WHERE reservation_id = :id ORDER BY sku"
    )
    lock_stock: Final = (
        "SELECT sku, available, unit_price_minor, currency FROM checkout.stock "
        "WHERE sku = ANY(:skus) ORDER BY sku FOR UPDATE"
    )
    hold: Final = (
        "UPDATE checkout.stock SET available = available - :n, reserved = reserved + :n, updated_at = now() "
        "WHERE sku = :sku"
    )
    give_back: Final = (
        "UPDATE checkout.stock SET available = available + :n, reserved = reserved - :n, updated_at = now() "
        "WHERE sku = :sku"
    )
    insert_held: Final = (
        "INSERT INTO checkout.reservations (id, saga_id, status, total_minor, currency) "
        "VALUES (:id, :saga, 'HELD', :total, :currency)"
    )
    insert_refused: Final = (
        "INSERT INTO checkout.reservations (id, saga_id, status, failure_message) "
        "VALUES (:id, :saga, 'FAILED', :message)"
    )
    insert_reservation_line: Final = (
        "INSERT INTO checkout.reservation_lines (reservation_id, sku, quantity, unit_price_minor, currency) "
        "VALUES (:id, :sku, :n, :price, :currency)"
    )
    mark_released: Final = "UPDATE checkout.reservations SET status = 'RELEASED', released_at = now() WHERE id = :id"
    find_charge: Final = (
        "SELECT id, status, amount_minor, currency, decline_message FROM checkout.charges "
        "WHERE saga_id = :saga FOR UPDATE"
    )
    insert_charge: Final = (
        "INSERT INTO checkout.charges (id, saga_id, customer_id, amount_minor, currency, token, status, "
        "decline_message) VALUES (:id, :saga, :customer, :amount, :currency, :token, :status, :message)"
    )
    insert_refund: Final = (
        "INSERT INTO checkout.refunds (id, charge_id, saga_id, amount_minor, currency) "
        "VALUES (:id, :charge, :saga, :amount, :currency)"
    )
    mark_refunded: Final = "UPDATE checkout.charges SET status = 'REFUNDED', updated_at = now() WHERE id = :id"
    find_order: Final = "SELECT id FROM checkout.orders WHERE saga_id = :saga"
    insert_order: Final = (
        "INSERT INTO checkout.orders (id, saga_id, customer_id, total_minor, currency, payment_id) "
        "VALUES (:id, :saga, :customer, :total, :currency, :payment)"
    )
    insert_order_line: Final = (
        "INSERT INTO checkout.order_lines (order_id, line_no, sku, quantity, unit_price_minor) "
        "VALUES (:id, :no, :sku, :n, :price)"
    )


log = logging.getLogger(APP_NAME)


class CheckoutFailed(Exception):  # noqa: N818 - named for what the saga ended as
    """The saga ended FAILED (after compensating); DBOS records the workflow as ``ERROR``."""


# --- the HTTP contract ------------------------------------------------------------------------------


class LineItem(BaseModel):
    """Units of one SKU."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1_000_000)


class CheckoutRequest(BaseModel):
    """``POST /checkout``: the platform's initiate body."""

    customer_id: str = Field(min_length=1, max_length=64)
    items: list[LineItem] = Field(min_length=1, max_length=50)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_token: str = Field(min_length=1, max_length=255)


class Accepted(BaseModel):
    """The 202 answer: the saga (workflow) id."""

    saga_id: str


# --- the saga ---------------------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


def _lines(items: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """One line per SKU (repeats merged), sorted by SKU: the order stock rows are locked in."""
    totals: dict[str, int] = {}
    for item in items:
        totals[item["sku"]] = totals.get(item["sku"], 0) + int(item["quantity"])
    return sorted(totals.items())


def _refusal(lines: Sequence[tuple[str, int]], stock: dict[str, Any]) -> str | None:
    """Why the lines cannot all be held (the platform's order: unknown SKU, mixed currencies, short), or None."""
    unknown = [sku for sku, _ in lines if sku not in stock]
    if unknown:
        return f"unknown SKU: {', '.join(unknown)}"
    if len({stock[sku].currency for sku, _ in lines}) > 1:
        return "the lines are priced in different currencies; one checkout pays in one currency"
    short = [f"{sku} ({stock[sku].available} available, {n} requested)" for sku, n in lines if stock[sku].available < n]
    return f"out of stock: {', '.join(short)}" if short else None


async def _run(session: AsyncSession, sql: str, params: dict[str, Any] | list[dict[str, Any]]) -> sa.Result[Any]:
    return await session.execute(sa.text(sql), params)


async def reserve(session: AsyncSession, saga_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Hold every line or none; answer from the saga's reservation if it has one."""
    existing = (await _run(session, SQL.find_reservation, {"saga": saga_id})).first()
    if existing is not None:
        prices = {line.sku: line.unit_price_minor for line in await _run(session, SQL.lines, {"id": existing.id})}
        return {
            "status": existing.status,
            "reservation_id": str(existing.id),
            "total_minor": existing.total_minor,
            "currency": existing.currency,
            "message": existing.failure_message,
            "prices": prices,
        }
    lines = _lines(items)
    stock = {row.sku: row for row in await _run(session, SQL.lock_stock, {"skus": [sku for sku, _ in lines]})}
    reservation_id = uuid.uuid4()
    refusal = _refusal(lines, stock)
    if refusal is not None:
        await _run(session, SQL.insert_refused, {"id": reservation_id, "saga": saga_id, "message": refusal})
        return {"status": "FAILED", "reservation_id": str(reservation_id), "message": refusal}
    for sku, quantity in lines:
        await _run(session, SQL.hold, {"n": quantity, "sku": sku})
    currency = stock[lines[0][0]].currency
    total = sum(quantity * stock[sku].unit_price_minor for sku, quantity in lines)
    await _run(session, SQL.insert_held, {"id": reservation_id, "saga": saga_id, "total": total, "currency": currency})
    await _run(
        session,
        SQL.insert_reservation_line,
        [
            {"id": reservation_id, "sku": sku, "n": n, "price": stock[sku].unit_price_minor, "currency": currency}
            for sku, n in lines
        ],
    )
    return {
        "status": "HELD",
        "reservation_id": str(reservation_id),
        "total_minor": total,
        "currency": currency,
        "message": None,
        "prices": {sku: stock[sku].unit_price_minor for sku, _ in lines},
    }


async def release(session: AsyncSession, saga_id: str) -> str:
    """Give back what the saga holds (nothing if it holds nothing)."""
    held = (await _run(session, SQL.find_reservation, {"saga": saga_id})).first()
    if held is None or held.status != "HELD":
        return "nothing held"
    lines = (await _run(session, SQL.lines, {"id": held.id})).all()
    await _run(session, SQL.lock_stock, {"skus": [line.sku for line in lines]})
    for line in lines:
        await _run(session, SQL.give_back, {"n": line.quantity, "sku": line.sku})
    await _run(session, SQL.mark_released, {"id": held.id})
    return "released"


async def charge(
    session: AsyncSession, saga_id: str, customer_id: str, amount_minor: int, currency: str, token: str
) -> dict[str, Any]:
    """Charge once per saga through the simulated provider; answer from the saga's charge if it has one."""
    existing = (await _run(session, SQL.find_charge, {"saga": saga_id})).first()
    if existing is not None:
        return {"status": existing.status, "payment_id": str(existing.id), "message": existing.decline_message}
    approved = token in APPROVING_TOKENS
    status = "CHARGED" if approved else "DECLINED"
    message = None if approved else "Your card was declined."
    payment_id = uuid.uuid4()
    await _run(
        session,
        SQL.insert_charge,
        {
            "id": payment_id,
            "saga": saga_id,
            "customer": customer_id,
            "amount": amount_minor,
            "currency": currency,
            "token": token,
            "status": status,
            "message": message,
        },
    )
    return {"status": status, "payment_id": str(payment_id), "message": message}


async def refund(session: AsyncSession, saga_id: str) -> str:
    """Give back what the saga paid (nothing if no charge moved money)."""
    row = (await _run(session, SQL.find_charge, {"saga": saga_id})).first()
    if row is None or row.status != "CHARGED":
        return "nothing charged"
    await _run(
        session,
        SQL.insert_refund,
        {"id": uuid.uuid4(), "charge": row.id, "saga": saga_id, "amount": row.amount_minor, "currency": row.currency},
    )
    await _run(session, SQL.mark_refunded, {"id": row.id})
    return "refunded"


async def create_order(
    session: AsyncSession,
    saga_id: str,
    customer_id: str,
    lines: list[tuple[str, int]],
    reservation: dict[str, Any],
    payment_id: str,
) -> str:
    """Create the saga's order once (its lines at the reserved prices); answer from it on a retry."""
    existing = (await _run(session, SQL.find_order, {"saga": saga_id})).first()
    if existing is not None:
        return str(existing.id)
    order_id = uuid.uuid4()
    await _run(
        session,
        SQL.insert_order,
        {
            "id": order_id,
            "saga": saga_id,
            "customer": customer_id,
            "total": reservation["total_minor"],
            "currency": reservation["currency"],
            "payment": payment_id,
        },
    )
    prices = reservation["prices"]
    await _run(
        session,
        SQL.insert_order_line,
        [{"id": order_id, "no": no, "sku": sku, "n": n, "price": prices[sku]} for no, (sku, n) in enumerate(lines, 1)],
    )
    return str(order_id)


Body = Callable[Concatenate[AsyncSession, P], Coroutine[Any, Any, R]]
Step = Callable[P, Coroutine[Any, Any, R]]


class Durable(Protocol):
    """Makes a business step a durable step of the workflow: ``wrap(name, body)``."""

    def __call__(self, name: str, body: Body[P, R]) -> Step[P, R]: ...


def as_transactions(ds: AsyncSQLAlchemyDatasource) -> Durable:
    """Each step a DBOS transaction: the body and DBOS's checkpoint of it commit in one transaction."""

    def wrap(name: str, body: Body[P, R]) -> Step[P, R]:
        async def transaction(*args: P.args, **kwargs: P.kwargs) -> R:
            return await body(ds.sql_session(), *args, **kwargs)

        transaction.__qualname__ = name
        return ds.transaction(name=name, isolation_level=ISOLATION)(transaction)

    return wrap


def as_steps(sessions: async_sessionmaker[AsyncSession]) -> Durable:
    """Each step a plain DBOS step running its own transaction, checkpointed after it commits.

    At least once rather than exactly once: a crash between the commit and the checkpoint runs the step
    again, which the steps' idempotency by saga id makes harmless; so are DBOS's retries of a step that
    raised (a transient database error), which a datasource transaction makes on its own.
    """

    def wrap(name: str, body: Body[P, R]) -> Step[P, R]:
        async def step(*args: P.args, **kwargs: P.kwargs) -> R:
            async with sessions() as session, session.begin():
                await session.connection(execution_options={"isolation_level": ISOLATION})
                return await body(session, *args, **kwargs)

        step.__qualname__ = name
        return DBOS.step(name=name, retries_allowed=True, interval_seconds=0.1, max_attempts=5)(step)

    return wrap


@dataclass(frozen=True)
class Saga:
    """The registered workflow."""

    workflow: Callable[[str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


def register(durable: Durable) -> Saga:
    """Make the business steps durable and register the workflow (before ``DBOS.launch()``)."""
    reserve_ = durable("reserve", reserve)
    release_ = durable("release", release)
    charge_ = durable("charge", charge)
    refund_ = durable("refund", refund)
    create_order_ = durable("create_order", create_order)

    @DBOS.workflow(name="checkout")
    async def checkout(saga_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Reserve -> charge -> order; a refusal or error compensates what was done, in reverse, and fails."""
        customer_id = request["customer_id"]
        # Compensations owed, in the order their steps ran; owed before a step runs (one that raised may still
        # have committed) and harmless for what never happened.
        owed: list[Step[[str], str]] = []
        try:
            owed.append(release_)
            reservation = await reserve_(saga_id, request["items"])
            if reservation["status"] != "HELD":
                owed.pop()  # refused: nothing held
                raise CheckoutFailed(f"OUT_OF_STOCK: {reservation['message']}")
            if reservation["currency"] != request["currency"]:
                raise CheckoutFailed(f"INVALID_REQUEST: the stock is priced in {reservation['currency']}")
            owed.append(refund_)
            payment = await charge_(
                saga_id, customer_id, reservation["total_minor"], reservation["currency"], request["payment_token"]
            )
            if payment["status"] != "CHARGED":
                owed.pop()  # declined: nothing charged
                raise CheckoutFailed(f"PAYMENT_DECLINED: {payment['message']}")
            order_id = await create_order_(
                saga_id, customer_id, _lines(request["items"]), reservation, payment["payment_id"]
            )
        except Exception as exc:
            for undo in reversed(owed):
                await undo(saga_id)
            if isinstance(exc, CheckoutFailed):
                raise
            raise CheckoutFailed(f"{type(exc).__name__}: {exc}") from exc
        return {"order_id": order_id, "payment_id": payment["payment_id"], "total_minor": reservation["total_minor"]}

    return Saga(checkout)


# --- the process ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The app's configuration, from its command line and environment (read once, in :func:`main`)."""

    database_url: str
    """PostgreSQL DSN of the app's database: business tables and DBOS's system tables."""
    host: str
    port: int
    pool_size: int
    """Connections of each of the two pools (DBOS's system database pool, the business tables')."""
    steps: str = "step"
    """``step``: each business step a plain ``@DBOS.step`` running its own transaction (the default);
    ``transaction``: a DBOS transaction on a datasource (its checkpoint in the same transaction)."""


def dbos_config(settings: Settings) -> DBOSConfig:
    """DBOS's configuration: its defaults (durability, logging at INFO, no OTLP) but for the URL and pool."""
    return {"name": APP_NAME, "system_database_url": settings.database_url, "sys_db_pool_size": settings.pool_size}


def _psycopg(url: str) -> sa.URL:
    return sa.make_url(url).set(drivername="postgresql+psycopg")


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app; DBOS is launched (and destroyed) by its lifespan."""
    saga: Saga | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal saga
        engine = sa.create_engine(_psycopg(settings.database_url))
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(DDL)
        finally:
            engine.dispose()
        DBOS(config=dbos_config(settings))
        pool = {"pool_size": settings.pool_size, "max_overflow": 0, "pool_timeout": 30}
        if settings.steps == "transaction":
            ds = await AsyncSQLAlchemyDatasource.create(settings.database_url, engine_kwargs=pool)
            business = ds.engine
            saga = register(as_transactions(ds))
        else:
            business = create_async_engine(_psycopg(settings.database_url), **pool)
            saga = register(as_steps(async_sessionmaker(business, expire_on_commit=False)))
        DBOS.launch()
        log.info("DBOS launched (steps as %ss); serving on %s:%d", settings.steps, settings.host, settings.port)
        try:
            yield
        finally:
            DBOS.destroy(workflow_completion_timeout_sec=10)
            await business.dispose()

    app = FastAPI(title="checkout saga on DBOS", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/checkout", status_code=202)
    async def start_checkout(
        body: CheckoutRequest, idempotency_key: Annotated[str | None, Header()] = None
    ) -> Accepted:
        """Start the saga durably and answer with its id, without waiting for it."""
        assert saga is not None, "the lifespan registers the saga before serving"
        saga_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key) if idempotency_key else uuid.uuid4())
        with SetWorkflowID(saga_id):
            await DBOS.start_workflow_async(saga.workflow, saga_id, body.model_dump())
        return Accepted(saga_id=saga_id)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=20, help="connections per pool (DBOS's default: 20)")
    parser.add_argument(
        "--steps",
        choices=("step", "transaction"),
        default="step",
        help="business steps as plain DBOS steps (the default) or DBOS transactions on a datasource",
    )
    args = parser.parse_args(argv)
    database_url = os.environ.get("DBOS_PEER_DATABASE_URL")
    if not database_url:
        raise SystemExit("DBOS_PEER_DATABASE_URL is not set: the PostgreSQL DSN of the app's database")
    settings = Settings(database_url, args.host, args.port, args.pool_size, args.steps)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        lifespan="on",
        log_config=None,
        log_level="info",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    if server.started is False:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
