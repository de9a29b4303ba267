"""A request that finds no usable database gets 503 + Retry-After, not a 500 with a traceback.

Against the real server: a pool pointed at a port nothing listens on (refused), and a pooled
connection whose backend the server terminated (gone mid-session). A wrong statement is still a 500.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from kit_harness import Database
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from checkout_kit.app import answer_503_when_database_unreachable
from checkout_kit.db import create_engine

pytestmark = pytest.mark.integration


def _app(engine: AsyncEngine) -> FastAPI:
    app = FastAPI()
    answer_503_when_database_unreachable(app)

    @app.get("/pid")
    async def pid() -> int:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    @app.get("/broken")
    async def broken() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT * FROM no_such_table"))

    return app


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        yield client


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_a_503_with_retry_after(database: Database) -> None:
    url = database.settings.url.get_secret_value()
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    nowhere = url.replace(host_port, f"127.0.0.1:{_closed_port()}")
    engine = create_engine(database.settings.model_copy(update={"url": SecretStr(nowhere)}))
    try:
        async for client in _client(_app(engine)):
            response = await client.get("/pid")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        assert "database is unreachable" in response.json()["detail"]
    finally:
        await engine.dispose()


async def test_a_terminated_backend_is_a_503_and_the_next_request_reconnects(
    database: Database, postgres_dsn: str
) -> None:
    engine = create_engine(database.settings.model_copy(update={"pool_size": 1, "max_overflow": 0}))
    try:
        async for client in _client(_app(engine)):
            first = await client.get("/pid")
            assert first.status_code == 200, first.text
            admin = await asyncpg.connect(postgres_dsn)
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", first.json())
            finally:
                await admin.close()
            answers = [await client.get("/pid") for _ in range(2)]
            statuses = [a.status_code for a in answers]
            # asyncpg may notice the goodbye before the pool hands the connection out (then the pool
            # replaces it: 200) or only when the statement fails (503); never a 500.
            assert statuses in ([503, 200], [200, 200]), [a.text for a in answers]
            assert answers[-1].json() != first.json()
            wrong = await client.get("/broken")
            assert wrong.status_code == 500, "a wrong statement is a bug, not an outage"
    finally:
        await engine.dispose()
