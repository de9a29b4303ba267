"""Helpers of the order service's integration tests: real Kafka topics, the real app, replies read back.

Each test gets its own topic prefix (topics created with the admin client — the broker does not
auto-create them — and deleted afterwards), its own schema, and its own consumer group (the
service name carries a random suffix), so tests never see each other's messages, rows or
offsets. Every wait is a bounded poll that fails naming what it waited for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from google.protobuf.message import Message

from checkout_kit.messaging.envelope import Envelope
from checkout_kit.settings import KafkaSettings
from checkout_kit.topics import Topics

WAIT_S = 30.0
"""Upper bound of any wait; generous so a slow CI box does not flake, finite so a bug fails."""


async def wait_until(predicate: Callable[[], Awaitable[bool]], what: str, within_s: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``within_s`` seconds."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {within_s:g}s waiting until {what}")
        await asyncio.sleep(0.05)


def command(message: Message, *, reply_to: str | None, source: str = "orchestrator-test") -> Envelope:
    """An envelope for a command whose payload carries its saga id."""
    saga_id = getattr(message, "saga_id", "") or str(uuid.uuid4())
    return Envelope(message=message, saga_id=saga_id, source=source, reply_to=reply_to)


def resent(envelope: Envelope) -> Envelope:
    """The same command sent again by the orchestrator: same payload, a new ``ce_id``."""
    return Envelope(
        message=envelope.message, saga_id=envelope.saga_id, source=envelope.source, reply_to=envelope.reply_to
    )


@dataclass
class Kafka:
    """Topics under a fresh prefix, and a look at what is in them."""

    bootstrap_servers: str
    prefix: str
    admin: AIOKafkaAdminClient
    created: list[str] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    @property
    def replies(self) -> str:
        """The topic tests name in ``reply_to``."""
        return f"{self.prefix}.test-replies"

    def settings(self, **overrides: Any) -> KafkaSettings:
        fields: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "topic_prefix": self.prefix,
            "session_timeout_ms": 6_000,
            "retry_backoff_initial_ms": 20,
            "retry_backoff_max_ms": 200,
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
                (described,) = await self.admin.describe_topics([name])
                return described["error_code"] == 0 and len(described["partitions"]) == partitions

            await wait_until(known, f"topic {name} exists")

    async def read_all(self, topic: str) -> list[Any]:
        """Every record in ``topic`` now (up to the end offsets), in order per partition."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            (described,) = await self.admin.describe_topics([topic])
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

    async def wait_group(self, group_id: str, members: int) -> None:
        """Wait until the consumer group is stable with ``members`` members (every one holding partitions)."""

        async def stable() -> bool:
            (response,) = await self.admin.describe_consumer_groups([group_id])
            _, _, state, _, _, joined = response.groups[0][:6]
            return str(state) == "Stable" and len(joined) == members

        await wait_until(stable, f"group {group_id} is stable with {members} members")

    async def dead_letters(self, *, within_s: float = WAIT_S, count: int) -> list[Any]:
        """Wait until the DLQ holds ``count`` records; return them."""
        found: list[Any] = []

        async def enough() -> bool:
            found[:] = await self.read_all(self.topics.dlq)
            return len(found) >= count

        await wait_until(enough, f"{count} records are in {self.topics.dlq}", within_s)
        return found


class Replies:
    """Reads a reply topic from its beginning and hands out the decoded replies per saga."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int = 1) -> None:
        self.topic = topic
        self.partitions = partitions
        self.received: list[Envelope] = []
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)

    async def start(self) -> None:
        await self._consumer.start()
        assigned = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _poll(self) -> None:
        batch = await self._consumer.getmany(timeout_ms=100)
        for records in batch.values():
            for record in records:
                self.received.append(Envelope.from_record(record.key, record.value, record.headers))

    def of(self, saga_id: str) -> list[Envelope]:
        """Replies received so far for one saga, in order."""
        return [reply for reply in self.received if reply.saga_id == saga_id]

    async def wait_for(self, saga_id: str, count: int = 1, within_s: float = WAIT_S) -> list[Envelope]:
        """Wait until ``count`` replies of the saga arrived; return them all."""
        deadline = asyncio.get_running_loop().time() + within_s
        while len(self.of(saga_id)) < count:
            if asyncio.get_running_loop().time() > deadline:
                got = [reply.type for reply in self.of(saga_id)]
                pytest.fail(f"timed out after {within_s:g}s waiting for {count} replies of saga {saga_id}; got {got}")
            await self._poll()
        return self.of(saga_id)

    async def wait_for_all(self, saga_ids: Sequence[str], within_s: float = WAIT_S) -> dict[str, Envelope]:
        """Wait for one reply of every saga; return the first reply of each."""
        for saga_id in saga_ids:
            await self.wait_for(saga_id, 1, within_s)
        return {saga_id: self.of(saga_id)[0] for saga_id in saga_ids}


@asynccontextmanager
async def serving(app: FastAPI, base_url: str = "http://service") -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (migrations checked, consumer and relay started) around an HTTP client."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=10.0) as client,
    ):
        yield client


@dataclass
class Database:
    """Direct reads of the service's schema, to check what the API does not show."""

    dsn: str
    schema: str

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None
