"""The PostgreSQL server is real: databases, tables and roles behave as PostgreSQL's do."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

pytestmark = pytest.mark.integration


def _with_database(dsn: str, database: str) -> str:
    return dsn.rsplit("/", 1)[0] + f"/{database}"


async def test_create_database_and_table_and_read_back(postgres_dsn: str) -> None:
    database = f"stack_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        connection = await asyncpg.connect(_with_database(postgres_dsn, database))
        try:
            await connection.execute("CREATE TABLE sagas (id uuid PRIMARY KEY, state text NOT NULL)")
            saga_id = uuid.uuid4()
            await connection.execute("INSERT INTO sagas VALUES ($1, 'STARTED')", saga_id)
            rows = await connection.fetch("SELECT id, state FROM sagas")
        finally:
            await connection.close()
        assert [(r["id"], r["state"]) for r in rows] == [(saga_id, "STARTED")]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def test_superuser_dsn_requires_the_generated_password(postgres_dsn: str) -> None:
    wrong = postgres_dsn.replace("://postgres:", "://postgres:not-the-password-", 1)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_server_listens_on_loopback_only(postgres_dsn: str) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        assert await connection.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await connection.close()
