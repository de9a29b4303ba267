"""Fixtures for the inventory against the real Kafka and PostgreSQL: fresh topics, schema and group per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from inventory_harness import Database, Kafka, Replies, serving
from pydantic import SecretStr

from checkout_inventory.config import InventoryDatabaseSettings, InventorySettings
from checkout_inventory.main import MIGRATIONS, create_app
from checkout_kit.messaging.producer import Publisher, start_producer, stop_producer
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.settings import OutboxSettings

SettingsFor = Callable[..., InventorySettings]
Serve = Callable[[InventorySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def _drop_schemas(dsn: str, schemas: list[str]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def new_schema(postgres_dsn: str) -> Iterator[Callable[[], str]]:
    """Hands out unique schema names; drops them all when the session ends."""
    created: list[str] = []

    def new() -> str:
        name = f"inventory_it_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return name

    yield new
    asyncio.run(_drop_schemas(postgres_dsn, created))


@pytest.fixture
async def kafka(kafka_bootstrap_servers: str) -> AsyncIterator[Kafka]:
    """A fresh topic prefix with the inventory's topics and a reply topic; all deleted afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    state = Kafka(kafka_bootstrap_servers, f"inventory-it-{uuid.uuid4().hex[:10]}", admin)
    try:
        await state.create(state.topics.checkout_events, state.topics.dlq, state.replies)
        yield state
    finally:
        if state.created:
            await admin.delete_topics(state.created)
        await admin.close()


@pytest.fixture
async def command_topic(kafka: Kafka) -> str:
    """The inventory's command topic with one partition: the order of commands is the order applied."""
    await kafka.create(kafka.topics.inventory_command)
    return kafka.topics.inventory_command


@pytest.fixture
async def publisher(kafka: Kafka) -> AsyncIterator[Publisher]:
    producer = await start_producer(kafka.settings(), "inventory-tests")
    try:
        yield Publisher(producer)
    finally:
        await stop_producer(producer)


@pytest.fixture
async def replies(kafka: Kafka) -> AsyncIterator[Replies]:
    reader = Replies(kafka.bootstrap_servers, kafka.replies)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


@pytest.fixture
async def schema(postgres_dsn: str, new_schema: Callable[[], str]) -> str:
    """A schema migrated to head for this test."""
    name = new_schema()
    await upgrade_to_head(InventoryDatabaseSettings(url=SecretStr(postgres_dsn), schema=name), MIGRATIONS)
    return name


@pytest.fixture
def database(postgres_dsn: str, schema: str) -> Database:
    return Database(postgres_dsn, schema)


@pytest.fixture
def settings_for(postgres_dsn: str, kafka: Kafka, schema: str) -> SettingsFor:
    """Inventory settings on the test's schema and topics, with a consumer group of the test's own."""
    group = f"inventory-it-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> InventorySettings:
        fields: dict[str, Any] = {
            "service_name": group,
            "database": InventoryDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema, pool_size=20),
            "kafka": kafka.settings(),
            "outbox": OutboxSettings(poll_interval_s=0.2),
            "shutdown_grace_s": 5.0,
        }
        fields.update(overrides)
        return InventorySettings(**fields)

    return make


@pytest.fixture
def serve() -> Serve:
    """``async with serve(settings) as client``: a running inventory (consumer and relay included)."""

    def run(settings: InventorySettings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serving(create_app(settings), base_url="http://inventory")

    return run


@pytest.fixture
async def client(command_topic: str, settings_for: SettingsFor, serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    """A running inventory on the test's topics and schema, and an HTTP client of it."""
    async with serve(settings_for()) as http:
        yield http
