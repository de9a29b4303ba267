"""Fixtures for the kit's integration tests: a fresh schema and fresh topics per test, real servers.

Every test gets its own PostgreSQL schema (dropped afterwards) and its own topic prefix, whose
topics are created here with the admin client — the broker does not auto-create topics — and
deleted afterwards. Waits are bounded polls; nothing sleeps to assert speed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kit_harness import Database, Kafka
from sqlalchemy import Column, Integer, MetaData, String, Table

from checkout_kit.db import create_engine, session_factory
from checkout_kit.inbox import inbox_table
from checkout_kit.messaging.producer import Publisher, start_producer, stop_producer
from checkout_kit.outbox import outbox_table
from checkout_kit.settings import DatabaseSettings


@pytest.fixture
async def database(postgres_dsn: str) -> AsyncIterator[Database]:
    schema = f"kit_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        settings = DatabaseSettings(url=postgres_dsn, schema=schema, pool_size=5, max_overflow=5)
        metadata = MetaData()
        outbox_table(metadata)
        inbox_table(metadata)
        effects = Table(
            "effects",
            metadata,
            Column("n", Integer, primary_key=True, autoincrement=True),
            Column("message_id", String(64), nullable=False),
            Column("saga_id", String(64), nullable=False),
        )
        engine = create_engine(settings, application_name="kit-tests")
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        try:
            yield Database(settings, engine, session_factory(engine), metadata, effects)
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def kafka(kafka_bootstrap_servers: str) -> AsyncIterator[Kafka]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    state = Kafka(kafka_bootstrap_servers, f"kit-test-{uuid.uuid4().hex[:12]}", admin, [])
    try:
        yield state
    finally:
        if state.created:
            await admin.delete_topics(state.created)
        await admin.close()


@pytest.fixture
async def publisher(kafka: Kafka) -> AsyncIterator[Publisher]:
    producer = await start_producer(kafka.settings(), "kit-test")
    try:
        yield Publisher(producer)
    finally:
        await stop_producer(producer)
