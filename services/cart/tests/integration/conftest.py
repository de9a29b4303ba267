"""Fixtures for the cart against the real PostgreSQL: a fresh schema per purpose, the real app.

Every schema a test session creates is named ``cart_it_<purpose>_<random>`` and dropped at the
end, so sessions never see each other's data and the ``cart`` schema of a running service is
never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from checkout_cart.config import CartDatabaseSettings, CartHttpSettings, CartSettings
from checkout_cart.main import MIGRATIONS, create_app
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.testing import serving as lifespan_client
from checkout_kit.testing import throwaway_schemas

MAX_BODY_BYTES = 2_048
"""A small body limit, so the 413 tests need no megabytes."""

SettingsFor = Callable[..., CartSettings]
Serving = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def new_schema(postgres_dsn: str) -> Iterator[Callable[[str], str]]:
    """Hands out unique schema names; drops them all when the session ends."""
    with throwaway_schemas(postgres_dsn) as names:
        yield lambda purpose: names.new(f"cart_it_{purpose}")


@pytest.fixture(scope="session")
def settings_for(postgres_dsn: str) -> SettingsFor:
    """Cart settings on the real server in the given schema (and a database URL, if given)."""

    def make(schema: str, *, url: str | None = None, **overrides: Any) -> CartSettings:
        return CartSettings(
            database=CartDatabaseSettings(url=SecretStr(url or postgres_dsn), schema=schema),
            http=CartHttpSettings(max_body_bytes=MAX_BODY_BYTES),
            shutdown_grace_s=5.0,
            **overrides,
        )

    return make


@pytest.fixture(scope="session")
def migrated_schema(new_schema: Callable[[str], str], settings_for: SettingsFor) -> str:
    """A schema migrated to head once per session, shared by the API tests."""
    schema = new_schema("api")
    asyncio.run(upgrade_to_head(settings_for(schema).database, MIGRATIONS))
    return schema


@pytest.fixture
def cart_settings(settings_for: SettingsFor, migrated_schema: str) -> CartSettings:
    return settings_for(migrated_schema)


def _serving(app: FastAPI) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return lifespan_client(app, base_url="http://cart")


@pytest.fixture
def serving() -> Serving:
    """``async with serving(app) as client``: the app's lifespan runs around the client."""
    return _serving


@pytest.fixture
async def client(cart_settings: CartSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real cart app (lifespan included) on the migrated schema."""
    async with _serving(create_app(cart_settings)) as client:
        yield client


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`cut` makes the target unreachable."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers.update((client_writer, upstream_writer))
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer),
            self._pipe(upstream_reader, client_writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65_536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)


@pytest.fixture
async def postgres_proxy(postgres_dsn: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the real PostgreSQL, to take it away mid-test."""
    address = postgres_dsn.rsplit("@", 1)[1].split("/", 1)[0]
    host, port = address.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    yield proxy
    await proxy.cut()


def via_proxy(dsn: str, proxy: TcpProxy) -> str:
    """The DSN with its host:port replaced by the proxy's."""
    credentials, rest = dsn.rsplit("@", 1)
    database = rest.split("/", 1)[1]
    return f"{credentials}@127.0.0.1:{proxy.port}/{database}"


@pytest.fixture
def dsn_via() -> Callable[[str, TcpProxy], str]:
    return via_proxy
