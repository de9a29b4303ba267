"""Every pooled connection is pinned to the service's schema and bounded by the statement timeout."""

from __future__ import annotations

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
