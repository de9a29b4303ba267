"""The fixtures every saga participant's (inventory, payment, order) integration tests share.

A participant's ``conftest.py`` says which service is under test — its ``participant`` fixture
returns a :class:`Participant` — and imports these. Each is thin, calling into
:mod:`checkout_kit.testing` (which ships with the kit and so imports no pytest).

Each test gets its own topic prefix (topics created with the admin client — the broker does not
auto-create them — and deleted afterwards), its own schema, and its own consumer group (the
service name carries a random suffix), so tests never see each other's messages, rows or
offsets. Every wait is a bounded poll that fails naming what it waited for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import MetaData

from checkout_kit.messaging.producer import Publisher
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.settings import DatabaseSettings, OutboxSettings, ServiceSettings
from checkout_kit.testing import (
    Kafka,
    Replies,
    SchemaReader,
    fresh_topics,
    publishing,
    reading_replies,
    serving,
    settings_factory,
    throwaway_schemas,
    unique_name,
)
from checkout_kit.topics import Topics

__all__ = [
    "client",
    "command_topic",
    "database",
    "kafka",
    "new_schema",
    "publisher",
    "replies",
    "schema",
    "serve",
    "settings_for",
]

SettingsFor = Callable[..., Any]
Serve = Callable[[Any], AbstractAsyncContextManager[httpx.AsyncClient]]


@dataclass(frozen=True)
class Participant:
    """The participant service under test: what the shared fixtures need to know of it."""

    name: str
    """``inventory``, ``payment``, ``order``: names its package, schemas, topics, group and HTTP host."""
    settings: type[ServiceSettings]
    """Its settings class."""
    database: type[DatabaseSettings]
    """Its database settings class (its schema default)."""
    migrations: Path
    """Its Alembic directory."""
    metadata: MetaData
    """Its tables, as the code declares them."""
    create_app: Callable[[Any], FastAPI]
    """Its app factory."""
    command_topic: Callable[[Topics], str]
    """Which of the platform's topics it consumes."""

    @property
    def package(self) -> str:
        """Its Python package (``python -m`` runs it)."""
        return f"checkout_{self.name}"

    def database_settings(self, dsn: str, schema: str, **fields: Any) -> DatabaseSettings:
        """Its database settings on ``schema`` of the test server."""
        return self.database(url=SecretStr(dsn), schema=schema, **fields)


@pytest.fixture(scope="session")
def new_schema(participant: Participant, postgres_dsn: str) -> Iterator[Callable[[], str]]:
    """Hands out unique schema names; drops them all when the session ends."""
    with throwaway_schemas(postgres_dsn) as names:
        yield lambda: names.new(f"{participant.name}_it")


@pytest.fixture
async def kafka(participant: Participant, kafka_bootstrap_servers: str) -> AsyncIterator[Kafka]:
    """A fresh topic prefix with checkout-events, the DLQ and a reply topic; all deleted afterwards."""
    async with fresh_topics(kafka_bootstrap_servers, f"{participant.name}-it") as kafka:
        await kafka.create(kafka.topics.checkout_events, kafka.topics.dlq, kafka.replies)
        yield kafka


@pytest.fixture
async def command_topic(participant: Participant, kafka: Kafka) -> str:
    """The service's command topic with one partition: the order of commands is the order applied."""
    topic = participant.command_topic(kafka.topics)
    await kafka.create(topic)
    return topic


@pytest.fixture
async def publisher(participant: Participant, kafka: Kafka) -> AsyncIterator[Publisher]:
    async with publishing(kafka.settings(), f"{participant.name}-tests") as publisher:
        yield publisher


@pytest.fixture
async def replies(kafka: Kafka) -> AsyncIterator[Replies]:
    """The replies arriving on the topic tests name in ``reply_to``."""
    async with reading_replies(kafka.bootstrap_servers, kafka.replies) as reader:
        yield reader


@pytest.fixture
async def schema(participant: Participant, postgres_dsn: str, new_schema: Callable[[], str]) -> str:
    """A schema migrated to head for this test."""
    name = new_schema()
    await upgrade_to_head(participant.database_settings(postgres_dsn, name), participant.migrations)
    return name


@pytest.fixture
def database(postgres_dsn: str, schema: str) -> SchemaReader:
    """Direct reads of the test's schema."""
    return SchemaReader(postgres_dsn, schema)


@pytest.fixture
def settings_for(participant: Participant, postgres_dsn: str, kafka: Kafka, schema: str) -> SettingsFor:
    """``settings_for(**overrides)``: the service's settings on the test's schema and topics, its own group."""
    return settings_factory(
        participant.settings,
        database=participant.database_settings(postgres_dsn, schema, pool_size=20),
        kafka=kafka.settings(),
        service_name=unique_name(f"{participant.name}-it", length=8),
        outbox=OutboxSettings(poll_interval_s=0.2),
        shutdown_grace_s=5.0,
    )


@pytest.fixture
def serve(participant: Participant) -> Serve:
    """``async with serve(settings) as client``: the service running in-process (consumer and relay included)."""

    def run(settings: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serving(participant.create_app(settings), base_url=f"http://{participant.name}")

    return run


@pytest.fixture
async def client(command_topic: str, settings_for: SettingsFor, serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    """The service running on the test's topics and schema, and an HTTP client of it."""
    async with serve(settings_for()) as http:
        yield http
