"""DBOS as a benchmark target: the same checkout saga as a DBOS durable workflow on the same PostgreSQL.

The app (:mod:`dbos_app`) is one process: FastAPI under uvicorn, DBOS launched in its lifespan, the saga
(reserve -> charge -> order, compensating in reverse) as a workflow of three DBOS steps, each one
idempotent PostgreSQL transaction on the business tables. A checkout starts with ``POST /checkout``, which
starts the workflow durably and answers 202 with the saga (workflow) id, as the platform's gateway does;
latency comes from DBOS's own ``workflow_status.created_at`` / ``completed_at``.

What each side runs: the platform is five processes on the saga's path (gateway, orchestrator, inventory,
payment, order) talking over Kafka, with an outbox and an inbox per service; DBOS is this one process (as
the platform's orchestrator is one) talking only to PostgreSQL, so its Python work gets one core at most
(the GIL) where the platform's spreads over both. The app's database ``bench_dbos_<id>`` on the shared
server holds both the business tables (schema ``checkout``) and DBOS's system tables (schema ``dbos``), so
the commits counted for :attr:`DbosTarget.database` are every commit the engine makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import asyncpg
import httpx

from checkout_stack.settings import REPO_ROOT
from checkout_stack.stack import Stack

if TYPE_CHECKING:  # mypy sees bench/saga as the package it is; run.py puts bench/saga itself on sys.path
    from bench.saga.target import Outcome
else:
    from target import Outcome

SKU: Final = "BENCH-SAGA"
STOCK: Final = (1_000_000, 100)
"""Units and unit price (minor units) of the bench SKU, as the platform's target seeds it."""
APP: Final = Path(__file__).with_name("dbos_app.py")
READY_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 20.0
STATES: Final = {"SUCCESS": "COMPLETED", "ERROR": "FAILED"}
"""DBOS workflow status -> the benchmark's saga state (others, e.g. PENDING, are passed through)."""


class DbosTarget:
    """The DBOS app under load, entered over HTTP."""

    name = "dbos"
    entry = "POST /checkout to a DBOS app"
    topic_prefix: str | None = None

    def __init__(self, dsn: str, url: str, process: subprocess.Popen[bytes], stock_before: dict[str, int]) -> None:
        self.dsn = dsn
        self.database = dsn.rsplit("/", 1)[1]
        self.url = url
        self.process = process
        self.stock_before = stock_before
        self.http: httpx.AsyncClient | None = None

    def pgids(self) -> dict[str, int]:
        return {"dbos-app": self.process.pid} if self.process.poll() is None else {}

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=2.0)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    async def start(self, index: int) -> str:
        assert self.http is not None, "open() first"
        body = {
            "customer_id": f"cust_bench_{index}",
            "items": [{"sku": SKU, "quantity": 1}],
            "currency": "EUR",
            "payment_token": "tok_visa",
        }
        response = await self.http.post("/checkout", json=body, headers={"Idempotency-Key": f"bench-{uuid.uuid4()}"})
        if response.status_code != 202:
            raise RuntimeError(f"{response.status_code} {response.text[:200]}")
        return str(response.json()["saga_id"])

    async def outcomes(self, saga_ids: list[str]) -> list[Outcome]:
        connection = await asyncpg.connect(self.dsn)
        try:
            rows = await connection.fetch(
                "SELECT workflow_uuid, status, created_at, coalesce(completed_at, updated_at) AS finished_at "
                "FROM dbos.workflow_status WHERE workflow_uuid = ANY($1::text[])",
                saga_ids,
            )
        finally:
            await connection.close()
        outcomes = []
        for row in rows:
            state = STATES.get(row["status"], row["status"])
            finished = _from_ms(row["finished_at"]) if state in STATES.values() else None
            outcomes.append(Outcome(row["workflow_uuid"], state, _from_ms(row["created_at"]), finished))
        return outcomes

    async def verdict(self, saga_ids: list[str]) -> str:
        connection = await asyncpg.connect(self.dsn)
        try:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                return await _verdict(connection, saga_ids, self.stock_before)
        finally:
            await connection.close()


def _from_ms(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)


async def _verdict(db: asyncpg.Connection, saga_ids: list[str], stock_before: dict[str, int]) -> str:
    """Stock conserved, and every saga's rows match its end: one line, ``all invariants hold (...)`` or the faults."""
    faults: list[str] = []
    statuses = {
        r["workflow_uuid"]: r["status"]
        for r in await db.fetch(
            "SELECT workflow_uuid, status FROM dbos.workflow_status WHERE workflow_uuid = ANY($1::text[])", saga_ids
        )
    }
    counts: dict[str, int] = {}
    for status in statuses.values():
        state = STATES.get(status, status)
        counts[state] = counts.get(state, 0) + 1
    missing = len(set(saga_ids) - statuses.keys())
    if missing:
        faults.append(f"{missing} accepted saga(s) have no workflow")
    not_terminal = sum(n for state, n in counts.items() if state not in STATES.values())
    if not_terminal:
        faults.append(f"{not_terminal} saga(s) not terminal")

    # Stock: nothing appears or vanishes, and reserved is exactly what HELD reservations hold.
    stock = {r["sku"]: r for r in await db.fetch("SELECT sku, available, reserved FROM checkout.stock")}
    held = {
        r["sku"]: int(r["units"])
        for r in await db.fetch(
            "SELECT l.sku, sum(l.quantity) AS units FROM checkout.reservation_lines l "
            "JOIN checkout.reservations r ON r.id = l.reservation_id WHERE r.status = 'HELD' GROUP BY l.sku"
        )
    }
    for sku, before in stock_before.items():
        row = stock.get(sku)
        if row is None or row["available"] + row["reserved"] != before:
            found = "gone" if row is None else f"available {row['available']} + reserved {row['reserved']}"
            faults.append(f"stock of {sku} not conserved: {found} != {before}")
    for sku, row in stock.items():
        if row["reserved"] != held.get(sku, 0):
            faults.append(f"{sku}: reserved {row['reserved']} but HELD reservations hold {held.get(sku, 0)}")

    # Per saga: what it holds, what it paid net, how many orders it has.
    rows = await db.fetch(
        """
        SELECT s.id,
               (SELECT count(*) FROM checkout.reservations r WHERE r.saga_id = s.id AND r.status = 'HELD') AS held,
               (SELECT count(*) FROM checkout.charges c WHERE c.saga_id = s.id AND c.status IN ('CHARGED', 'REFUNDED'))
                   AS charges,
               (SELECT coalesce(sum(c.amount_minor), 0) FROM checkout.charges c
                 WHERE c.saga_id = s.id AND c.status IN ('CHARGED', 'REFUNDED'))
               - (SELECT coalesce(sum(f.amount_minor), 0) FROM checkout.refunds f WHERE f.saga_id = s.id) AS net,
               (SELECT count(*) FROM checkout.orders o WHERE o.saga_id = s.id) AS orders
        FROM unnest($1::uuid[]) AS s(id)
        """,
        [uuid.UUID(i) for i in statuses],
    )
    wrong: dict[str, list[str]] = {}
    for row in rows:
        saga_id = str(row["id"])
        state = STATES.get(statuses[saga_id])
        if state == "COMPLETED":
            ok = row["held"] == 1 and row["charges"] == 1 and row["net"] > 0 and row["orders"] == 1
        elif state == "FAILED":
            ok = row["held"] == 0 and row["charges"] <= 1 and row["net"] == 0 and row["orders"] == 0
        else:
            continue
        if not ok:
            detail = f"held {row['held']}, charges {row['charges']}, net {row['net']}, orders {row['orders']}"
            wrong.setdefault(state, []).append(f"{saga_id} ({detail})")
    for state, sagas in wrong.items():
        faults.append(f"{len(sagas)} {state} saga(s) with wrong rows, e.g. {sagas[0]}")

    summary = ", ".join(f"{state}={n}" for state, n in sorted(counts.items())) or "no sagas"
    return (
        f"all invariants hold ({summary})"
        if not faults
        else f"{len(faults)} violation(s) ({summary}): " + "; ".join(faults)
    )


# --- the instance's lifecycle --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(superuser_dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(superuser_dsn, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _seed(dsn: str) -> dict[str, int]:
    """Put the bench SKU in stock; return units per SKU (available + reserved) before the run."""
    units, price = STOCK
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO checkout.stock (sku, available, reserved, unit_price_minor, currency) "
            "VALUES ($1, $2, 0, $3, 'EUR') ON CONFLICT (sku) DO UPDATE SET available = excluded.available, "
            "unit_price_minor = excluded.unit_price_minor",
            SKU,
            units,
            price,
        )
        rows = await connection.fetch("SELECT sku, available + reserved AS units FROM checkout.stock")
    finally:
        await connection.close()
    return {row["sku"]: int(row["units"]) for row in rows}


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the DBOS app exited with {process.returncode} while starting; {log}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the DBOS app did not answer {url}/healthz in {READY_TIMEOUT_S:.0f} s; see {log}")
            time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the app's process group (uvicorn drains, DBOS is destroyed), then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _prune_runs(keep: int = 3) -> None:
    """Remove the run directories (logs) of earlier DBOS targets but the newest ``keep``."""
    runs = sorted((REPO_ROOT / ".run").glob("bench-dbos-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for run_dir in runs[keep:]:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def launch(shared: Stack, *, steps: str = "step") -> Iterator[DbosTarget]:
    """A database of its own and the DBOS app on it, a million units of the bench SKU; all removed on exit.

    ``steps``: ``step`` (plain DBOS steps, each running its own idempotent transaction: the default) or
    ``transaction`` (DBOS transactions on a datasource), see :mod:`dbos_app`.
    """
    _prune_runs()
    superuser = shared.env()["DATABASE_URL"]
    suffix = uuid.uuid4().hex[:8]
    database = f"bench_dbos_{suffix}"
    dsn = f"{superuser.rsplit('/', 1)[0]}/{database}"
    run_dir = REPO_ROOT / ".run" / f"bench-dbos-{suffix}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "app.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    asyncio.run(_admin(superuser, f'CREATE DATABASE "{database}"'))
    process: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(APP), "--port", str(port), "--steps", steps],
                env={**os.environ, "DBOS_PEER_DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_ready(url, process, log)
        stock_before = asyncio.run(_seed(dsn))
        yield DbosTarget(dsn, url, process, stock_before)
    finally:
        try:
            if process is not None:
                _stop(process)
        finally:
            asyncio.run(_admin(superuser, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
