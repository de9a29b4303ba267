"""Fixtures for the gateway against the real PostgreSQL and Kafka, with real upstream HTTP servers.

- One gateway schema and one cart schema per session, migrated once, named ``*_it_<random>`` and
  dropped at the end (a running service's ``gateway`` or ``cart`` schema is never touched).
- A fresh topic prefix per test, its ``checkout-events`` topic created with the admin client
  (the broker does not auto-create topics) and deleted afterwards.
- The real cart app and an orchestrator stand-in, each served by uvicorn on an ephemeral port.
- The gateway app in-process, through its lifespan (engine, producer, outbox relay, clients).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from gateway_harness import FakeOrchestrator, serve_in_thread
from pydantic import SecretStr

from checkout_cart.config import CartDatabaseSettings, CartSettings
from checkout_cart.main import MIGRATIONS as CART_MIGRATIONS
from checkout_cart.main import create_app as create_cart_app
from checkout_gateway.config import GatewayDatabaseSettings, GatewayHttpSettings, GatewaySettings, UpstreamSettings
from checkout_gateway.main import MIGRATIONS, create_app
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.settings import OutboxSettings
from checkout_kit.testing import Kafka, fresh_topics, throwaway_schemas
from checkout_kit.testing import serving as lifespan_client

MAX_BODY_BYTES = 16 * 1024
"""Room for a 100-line checkout, small enough that the 413 test needs no megabytes."""

SettingsFor = Callable[..., GatewaySettings]
Serving = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def new_schema(postgres_dsn: str) -> Iterator[Callable[[str], str]]:
    """Hands out unique schema names; drops them all when the session ends."""
    with throwaway_schemas(postgres_dsn) as names:
        yield lambda purpose: names.new(f"{purpose}_it")


@pytest.fixture(scope="session")
def gateway_schema(new_schema: Callable[[str], str], postgres_dsn: str) -> str:
    """The gateway's schema, migrated once per session."""
    schema = new_schema("gateway")
    asyncio.run(upgrade_to_head(GatewayDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema), MIGRATIONS))
    return schema


@pytest.fixture(scope="session")
def cart_url(new_schema: Callable[[str], str], postgres_dsn: str) -> Iterator[str]:
    """Base URL of the real cart service (its own migrated schema), served for the session."""
    database = CartDatabaseSettings(url=SecretStr(postgres_dsn), schema=new_schema("cart"))
    asyncio.run(upgrade_to_head(database, CART_MIGRATIONS))
    with serve_in_thread(create_cart_app(CartSettings(database=database, shutdown_grace_s=2.0))) as url:
        yield url


@pytest.fixture(scope="session")
def orchestrator() -> FakeOrchestrator:
    return FakeOrchestrator()


@pytest.fixture(scope="session")
def orchestrator_url(orchestrator: FakeOrchestrator) -> Iterator[str]:
    """Base URL of the orchestrator stand-in, served for the session."""
    with serve_in_thread(orchestrator.app) as url:
        yield url


@pytest.fixture
async def kafka(kafka_bootstrap_servers: str) -> AsyncIterator[Kafka]:
    """A fresh topic prefix with its ``checkout-events`` topic (3 partitions, as in production)."""
    async with fresh_topics(kafka_bootstrap_servers, "gateway-test") as kafka:
        await kafka.create(kafka.topics.checkout_events, partitions=3)
        yield kafka


@pytest.fixture
def settings_for(
    postgres_dsn: str, gateway_schema: str, kafka: Kafka, orchestrator_url: str, cart_url: str
) -> SettingsFor:
    """Gateway settings on the real servers and upstreams; keyword arguments override upstream fields."""

    def make(**upstreams: Any) -> GatewaySettings:
        return GatewaySettings(
            database=GatewayDatabaseSettings(url=SecretStr(postgres_dsn), schema=gateway_schema),
            kafka=kafka.settings(),
            http=GatewayHttpSettings(max_body_bytes=MAX_BODY_BYTES),
            outbox=OutboxSettings(poll_interval_s=0.2),
            upstreams=UpstreamSettings(
                **{"orchestrator_url": orchestrator_url, "cart_url": cart_url, "timeout_s": 1.0, **upstreams}
            ),
            shutdown_grace_s=5.0,
        )

    return make


def _serving(app: FastAPI) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return lifespan_client(app, base_url="http://gateway", timeout_s=15.0)


@pytest.fixture
def serving() -> Serving:
    """``async with serving(app) as client``: the app's lifespan runs around the client."""
    return _serving


@pytest.fixture
async def client(settings_for: SettingsFor) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real gateway app (lifespan included) with every upstream up."""
    async with _serving(create_app(settings_for())) as client:
        yield client


@pytest.fixture
async def gateway_db(postgres_dsn: str, gateway_schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the gateway's schema, to look at what it stored."""
    connection = await asyncpg.connect(postgres_dsn, server_settings={"search_path": gateway_schema})
    try:
        yield connection
    finally:
        await connection.close()
