"""Helpers of the kit's integration tests: a fresh schema and fresh topics per test, real servers.

Every test gets its own PostgreSQL schema (dropped afterwards) and its own topic prefix, whose
topics are created here with the admin client — the broker does not auto-create topics — and
deleted afterwards. Waits are bounded polls; nothing sleeps to assert speed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import MetaData, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from checkout.v1 import commands_pb2, types_pb2
from checkout_kit.failpoints import Failpoint, FailpointCrash
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.settings import DatabaseSettings, KafkaSettings
from checkout_kit.topics import Topics

WAIT_S = 30.0
"""Upper bound of any wait for something to happen; generous so a slow CI box does not flake."""


async def wait_until(predicate: Callable[[], Awaitable[bool]], what: str, within_s: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``within_s`` seconds."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {within_s:g}s waiting until {what}")
        await asyncio.sleep(0.05)


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


# PostgreSQL


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


# Kafka


@dataclass
class Kafka:
    """Unique topics under a fresh prefix, and helpers to look at what is in them."""

    bootstrap_servers: str
    prefix: str
    admin: AIOKafkaAdminClient
    created: list[str]

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def settings(self, **overrides: Any) -> KafkaSettings:
        fields: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "topic_prefix": self.prefix,
            "session_timeout_ms": 6_000,
            "retry_backoff_initial_ms": 10,
            "retry_backoff_max_ms": 100,
        }
        fields.update(overrides)
        return KafkaSettings(**fields)

    async def create(self, *names: str, partitions: int = 1) -> None:
        """Create topics and wait until the broker serves their metadata."""
        await self.admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        self.created.extend(names)
        for name in names:

            async def known(name: str = name) -> bool:
                described = await self.admin.describe_topics([name])
                return (
                    bool(described)
                    and described[0]["error_code"] == 0
                    and len(described[0]["partitions"]) == partitions
                )

            await wait_until(known, f"topic {name} exists")

    async def read_all(self, topic: str) -> list[Any]:
        """Every record in ``topic`` now, in order per partition (reads up to the end offsets)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            (described,) = await self.admin.describe_topics([topic])
            assert described["error_code"] == 0, f"topic {topic} cannot be described: {described}"
            partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            records: list[Any] = []
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if asyncio.get_running_loop().time() > deadline:
                    pytest.fail(f"could not read {topic} to its end offsets {ends} within {WAIT_S:g}s")
                batch = await consumer.getmany(timeout_ms=200)
                for tp in partitions:
                    records.extend(batch.get(tp, []))
            return records
        finally:
            await consumer.stop()

    async def committed(self, group_id: str, topic: str, partition: int = 0) -> int:
        """The group's committed offset of a partition (-1 when none)."""
        offsets = await self.admin.list_consumer_group_offsets(group_id)
        meta = offsets.get(TopicPartition(topic, partition))
        return -1 if meta is None else int(meta.offset)

    async def group_state(self, group_id: str) -> str:
        """The broker's view of the group: ``Stable``, ``PreparingRebalance``, ``Empty`` ..."""
        (response,) = await self.admin.describe_consumer_groups([group_id])
        return str(response.groups[0][2])

    async def wait_committed(self, group_id: str, topic: str, offset: int, partition: int = 0) -> None:
        async def reached() -> bool:
            return await self.committed(group_id, topic, partition) >= offset

        await wait_until(reached, f"group {group_id} committed offset {offset} of {topic}[{partition}]")
