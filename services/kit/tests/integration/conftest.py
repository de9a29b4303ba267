"""Fixtures for the kit's integration tests: a fresh schema and fresh topics per test, real servers.

Every test gets its own PostgreSQL schema (dropped afterwards) and its own topic prefix, whose
topics it creates with :meth:`~checkout_kit.testing.Kafka.create` — the broker does not
auto-create topics — and which are deleted afterwards. Waits are bounded polls; nothing sleeps
to assert speed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kit_harness import Database, effects_database

from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, fresh_topics, publishing


@pytest.fixture
async def database(postgres_dsn: str) -> AsyncIterator[Database]:
    async with effects_database(postgres_dsn) as database:
        yield database


@pytest.fixture
async def kafka(kafka_bootstrap_servers: str) -> AsyncIterator[Kafka]:
    async with fresh_topics(kafka_bootstrap_servers, "kit-test") as kafka:
        yield kafka


@pytest.fixture
async def publisher(kafka: Kafka) -> AsyncIterator[Publisher]:
    async with publishing(kafka.settings(), "kit-test") as publisher:
        yield publisher
