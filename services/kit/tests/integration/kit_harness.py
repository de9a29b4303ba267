"""Helpers of the kit's integration tests: a test message, a crash point, and a schema handlers write to.

Topics, schemas and waits come from :mod:`checkout_kit.testing`, which every service's tests share.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from checkout.v1 import commands_pb2, types_pb2
from checkout_kit.db import create_engine, session_factory
from checkout_kit.failpoints import Failpoint, FailpointCrash
from checkout_kit.inbox import inbox_table
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.outbox import outbox_table
from checkout_kit.settings import DatabaseSettings
from checkout_kit.testing import temporary_schema


def saga_envelope(saga_id: str | None = None, *, quantity: int = 1, source: str = "kit-test") -> Envelope:
    """A ReserveInventory command for a (new) saga."""
    saga = saga_id or str(uuid.uuid4())
    return Envelope(
        message=commands_pb2.ReserveInventory(saga_id=saga, items=[types_pb2.LineItem(sku="SKU-1", quantity=quantity)]),
        saga_id=saga,
        source=source,
    )


def crash_at(point: str) -> Failpoint:
    """A failpoint that crashes the component the first time it reaches ``point``."""

    async def failpoint(name: str) -> None:
        if name == point:
            raise FailpointCrash(name)

    return failpoint


@dataclass
class Database:
    """A throwaway schema with the outbox, the inbox and an ``effects`` table handlers write to."""

    settings: DatabaseSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metadata: MetaData
    effects: Table

    async def effect_count(self, message_id: str | None = None) -> int:
        """Rows handlers wrote (for one message, or in all)."""
        query = select(func.count()).select_from(self.effects)
        if message_id is not None:
            query = query.where(self.effects.c.message_id == message_id)
        async with self.sessions() as session:
            return int((await session.execute(query)).scalar_one())

    async def record_effect(self, session: AsyncSession, envelope: Envelope) -> None:
        """What a test handler does: one row per application of a message."""
        await session.execute(insert(self.effects).values(message_id=envelope.id, saga_id=envelope.saga_id))

    async def scalar(self, sql: str) -> Any:
        """One value from a query in the schema."""
        async with self.sessions() as session:
            return (await session.execute(text(sql))).scalar()


@asynccontextmanager
async def effects_database(dsn: str) -> AsyncIterator[Database]:
    """A fresh schema (dropped at exit) holding the outbox, the inbox and the ``effects`` table."""
    async with temporary_schema(dsn, "kit_test") as schema:
        settings = DatabaseSettings(url=dsn, schema=schema, pool_size=5, max_overflow=5)
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
        try:
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
            yield Database(settings, engine, session_factory(engine), metadata, effects)
        finally:
            await engine.dispose()
