"""Every pooled connection is pinned to the service's schema and bounded by the statement timeout."""

from __future__ import annotations

import asyncio

import pytest
from kit_harness import Database
from sqlalchemy import text

from checkout_kit.db import create_engine, ping
from checkout_kit.settings import DatabaseSettings

pytestmark = pytest.mark.integration


async def test_connections_use_the_service_schema_and_statement_timeout(database: Database) -> None:
    engine = create_engine(database.settings.model_copy(update={"statement_timeout_ms": 1_500}), "kit-db-test")
    try:
        await ping(engine)
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT current_schema(), current_setting('statement_timeout'),"
                        " current_setting('application_name')"
                    )
                )
            ).one()
        assert tuple(row) == (database.settings.db_schema, "1500ms", "kit-db-test")
    finally:
        await engine.dispose()


async def test_a_statement_over_the_timeout_is_cancelled(database: Database) -> None:
    engine = create_engine(database.settings.model_copy(update={"statement_timeout_ms": 200}))
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception, match="statement timeout"):
                await connection.execute(text("SELECT pg_sleep(5)"))
    finally:
        await engine.dispose()


async def test_ping_raises_when_postgres_cannot_be_reached() -> None:
    engine = create_engine(DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/none"))  # type: ignore[arg-type]
    try:
        with pytest.raises(OSError, match=r"Connect call failed|refused"):
            await ping(engine)
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_closed_is_replaced_before_use(database: Database) -> None:
    """The pool hands out a fresh connection when the server ended the pooled one (a restart, a failover)."""
    engine = create_engine(database.settings, "kit-db-replaced")
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert await database.scalar(f"SELECT pg_terminate_backend({int(first)})")  # from another pool
        await asyncio.sleep(0.2)  # the event loop sees the server's goodbye
        async with engine.connect() as connection:  # would raise "connection is closed" with the dead one
            second = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await engine.dispose()


async def test_a_session_costs_no_round_trip_beyond_its_own_statements(database: Database) -> None:
    """Checking a connection out of the pool sends nothing to the server (no ping of BEGIN, ``;``, ROLLBACK).

    asyncpg's query logger sees the simple-protocol statements (transaction control), not prepared ones."""
    engine = create_engine(database.settings, "kit-db-roundtrips")
    sent: list[str] = []
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            raw.add_query_logger(lambda record: sent.append(record.query))
        async with engine.connect() as connection:  # the same pooled connection again
            await connection.execute(text("SELECT 2"))
        assert sent == ["ROLLBACK;", "BEGIN;", "ROLLBACK;"]  # the first's release; the second's own transaction
    finally:
        await engine.dispose()
