"""Support for tests against the real stack: fresh topics and schemas, the app in-process, bounded waits.

Every service's integration tests use the same pieces, so they live here once:

- Kafka: a unique topic prefix per test (or session) whose topics are created with the admin
  client — the broker does not auto-create topics — and deleted afterwards (:func:`fresh_topics`,
  :class:`Kafka`); command envelopes as the orchestrator sends them (:func:`command`,
  :func:`resent`, :func:`publish_command`); replies and dead letters read back (:class:`Replies`,
  :meth:`Kafka.dead_letters`).
- PostgreSQL: unique schema names, created and dropped (:func:`temporary_schema`,
  :func:`throwaway_schemas`), direct reads of what the API does not show (:class:`SchemaReader`),
  the migrations compared with the models (:func:`model_drift_of`).
- The service: its app run in-process through its lifespan around an HTTP client
  (:func:`serving`), its settings on the test's schema and topics (:func:`settings_factory`), its
  command line run in a child process (:func:`run_module`).

Every wait is a bounded poll that fails with :class:`WaitTimeoutError` (an ``AssertionError``, so a
test reports it as a failure) naming what it waited for; nothing sleeps to assert speed.

This module ships with the kit but imports no test framework: pytest is a development
dependency only. Fixtures stay in each service's ``conftest.py``, thin, calling into this module.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from google.protobuf.message import Message
from sqlalchemy import MetaData

from checkout_kit.db import create_engine
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher, start_producer, stop_producer
from checkout_kit.migrations import SchemaRevision, current_and_head, model_drift
from checkout_kit.settings import DatabaseSettings, KafkaSettings, ServiceSettings
from checkout_kit.topics import Topics

WAIT_S: Final = 30.0
"""Upper bound of any wait: generous so a slow CI box does not flake, finite so a hang still fails."""
POLL_S: Final = 0.05
"""Pause between two looks while waiting."""
SERVICE_ENV_PREFIXES: Final = ("DATABASE__", "HTTP__", "KAFKA__", "UPSTREAMS__", "OUTBOX__")
"""Nested settings a child service process must not inherit from the test's own environment."""

_IDENTIFIER: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class WaitTimeoutError(AssertionError):
    """A bounded wait ran out; the message names what was awaited."""


async def wait_until(predicate: Callable[[], Awaitable[bool]], what: str, within_s: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; raise :class:`WaitTimeoutError` naming ``what`` after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await predicate():
        if loop.time() > deadline:
            raise WaitTimeoutError(f"timed out after {within_s:g}s waiting until {what}")
        await asyncio.sleep(POLL_S)


def unique_name(stem: str, *, separator: str = "-", length: int = 10) -> str:
    """``<stem><separator><random hex>``: a topic prefix, group or schema no other run uses."""
    return f"{stem}{separator}{uuid.uuid4().hex[:length]}"


# PostgreSQL


def _quoted_schema(schema: str) -> str:
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a plain lower-case identifier; test schemas must be")
    return f'"{schema}"'


async def create_schema(dsn: str, schema: str) -> None:
    """Create ``schema`` on the server (it must not exist yet)."""
    quoted = _quoted_schema(schema)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE SCHEMA {quoted}")
    finally:
        await connection.close()


async def drop_schemas(dsn: str, schemas: Iterable[str]) -> None:
    """Drop every schema named (and everything in it); a missing one is fine."""
    quoted = [_quoted_schema(schema) for schema in schemas]
    connection = await asyncpg.connect(dsn)
    try:
        for name in quoted:
            await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await connection.close()


@asynccontextmanager
async def temporary_schema(dsn: str, stem: str, *, create: bool = True) -> AsyncIterator[str]:
    """A unique schema name (``<stem>_<random>``), created unless ``create`` is off, dropped at exit."""
    schema = unique_name(stem, separator="_")
    try:
        if create:
            await create_schema(dsn, schema)
        yield schema
    finally:
        await drop_schemas(dsn, [schema])


@dataclass
class SchemaNames:
    """Hands out unique schema names and remembers them, to drop them all at the end."""

    handed_out: list[str] = field(default_factory=list)

    def new(self, stem: str) -> str:
        """A fresh name ``<stem>_<random>`` (the schema itself is created by whoever migrates it)."""
        name = unique_name(stem, separator="_", length=8)
        self.handed_out.append(name)
        return name


@contextmanager
def throwaway_schemas(dsn: str) -> Iterator[SchemaNames]:
    """Unique schema names for a session; all dropped when it ends (outside any event loop)."""
    names = SchemaNames()
    try:
        yield names
    finally:
        asyncio.run(drop_schemas(dsn, names.handed_out))


@dataclass
class SchemaReader:
    """Direct reads of a service's schema, to check what its API does not show."""

    dsn: str
    schema: str

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Every row of a query run with the schema on the search path."""
        connection = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first value of the first row (None without rows)."""
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None


async def model_drift_of(database: DatabaseSettings, metadata: MetaData) -> list[Any]:
    """What differs between ``metadata`` and the migrated schema of ``database`` (empty when in step)."""
    engine = create_engine(database)
    try:
        return await model_drift(engine, metadata, database.db_schema)
    finally:
        await engine.dispose()


async def schema_revision(database: DatabaseSettings, migrations_dir: Path) -> SchemaRevision:
    """Where the schema of ``database`` is, and where the migrations end."""
    engine = create_engine(database)
    try:
        return await current_and_head(engine, migrations_dir, database.db_schema)
    finally:
        await engine.dispose()


# Kafka


@asynccontextmanager
async def admin_client(bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started Kafka admin client, closed at exit."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topics(admin: AIOKafkaAdminClient, names: Sequence[str], *, partitions: int = 1) -> None:
    """Create topics and wait until the broker serves them (every partition with a leader)."""
    await admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in names])
    for name in names:

        async def served(name: str = name) -> bool:
            described = await admin.describe_topics([name])
            if not described or described[0]["error_code"] != 0:
                return False
            found = described[0]["partitions"]
            return len(found) == partitions and all(p["leader"] >= 0 for p in found)

        await wait_until(served, f"topic {name} exists with {partitions} partition(s)")


@dataclass
class Kafka:
    """Topics under a prefix of the test's own, and looks at what is in them."""

    bootstrap_servers: str
    prefix: str
    admin: AIOKafkaAdminClient
    created: list[str] = field(default_factory=list)
    """Topics :meth:`create` made; :func:`fresh_topics` deletes them at exit."""

    @property
    def topics(self) -> Topics:
        """The platform's topic names under this prefix."""
        return Topics(self.prefix)

    @property
    def replies(self) -> str:
        """A topic tests name in ``reply_to`` (created only when a test asks for it)."""
        return f"{self.prefix}.test-replies"

    def settings(self, **overrides: Any) -> KafkaSettings:
        """Kafka settings on this prefix, with short timeouts and backoff; ``overrides`` win."""
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
        """Create topics (deleted at exit) and wait until the broker serves them."""
        await create_topics(self.admin, names, partitions=partitions)
        self.created.extend(names)

    async def read_all(self, topic: str) -> list[Any]:
        """Every record in ``topic`` now (up to the end offsets), in order per partition."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            (described,) = await self.admin.describe_topics([topic])
            if described["error_code"] != 0:
                raise AssertionError(f"topic {topic} cannot be described: {described}")
            partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            records: list[Any] = []
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if asyncio.get_running_loop().time() > deadline:
                    raise WaitTimeoutError(f"could not read {topic} to its end offsets {ends} within {WAIT_S:g}s")
                batch = await consumer.getmany(timeout_ms=200)
                for tp in partitions:
                    records.extend(batch.get(tp, []))
            return records
        finally:
            await consumer.stop()

    async def dead_letters(self, *, count: int, within_s: float = WAIT_S) -> list[Any]:
        """Wait until the DLQ holds ``count`` records; return them all."""
        found: list[Any] = []

        async def enough() -> bool:
            found[:] = await self.read_all(self.topics.dlq)
            return len(found) >= count

        await wait_until(enough, f"{count} records are in {self.topics.dlq}", within_s)
        return found

    async def committed(self, group_id: str, topic: str, partition: int = 0) -> int:
        """The group's committed offset of a partition (-1 when none)."""
        offsets = await self.admin.list_consumer_group_offsets(group_id)
        meta = offsets.get(TopicPartition(topic, partition))
        return -1 if meta is None else int(meta.offset)

    async def wait_committed(self, group_id: str, topic: str, offset: int, partition: int = 0) -> None:
        """Wait until the group committed at least ``offset`` of the partition."""

        async def reached() -> bool:
            return await self.committed(group_id, topic, partition) >= offset

        await wait_until(reached, f"group {group_id} committed offset {offset} of {topic}[{partition}]")

    async def group_state(self, group_id: str) -> str:
        """The broker's view of the group: ``Stable``, ``PreparingRebalance``, ``Empty`` ..."""
        (response,) = await self.admin.describe_consumer_groups([group_id])
        return str(response.groups[0][2])

    async def wait_group(self, group_id: str, members: int) -> None:
        """Wait until the group is stable with ``members`` members (every one holding partitions)."""

        async def stable() -> bool:
            (response,) = await self.admin.describe_consumer_groups([group_id])
            _, _, state, _, _, joined = response.groups[0][:6]
            return str(state) == "Stable" and len(joined) == members

        await wait_until(stable, f"group {group_id} is stable with {members} members")


@asynccontextmanager
async def fresh_topics(bootstrap_servers: str, stem: str) -> AsyncIterator[Kafka]:
    """A unique prefix ``<stem>-<random>``; the topics a test creates under it are deleted at exit."""
    async with admin_client(bootstrap_servers) as admin:
        kafka = Kafka(bootstrap_servers, unique_name(stem), admin)
        try:
            yield kafka
        finally:
            if kafka.created:
                await admin.delete_topics(kafka.created)


@asynccontextmanager
async def publishing(settings: KafkaSettings, service_name: str) -> AsyncIterator[Publisher]:
    """A publisher on a started producer, flushed and closed at exit."""
    producer = await start_producer(settings, service_name)
    try:
        yield Publisher(producer)
    finally:
        await stop_producer(producer)


async def publish_command(publisher: Publisher, topic: str, envelope: Envelope) -> Envelope:
    """Publish ``envelope`` to ``topic`` and wait for the broker's acknowledgement; return it (to await its reply)."""
    await publisher.publish(topic, envelope)
    return envelope


def command(message: Message, *, reply_to: str | None, source: str = "orchestrator-test") -> Envelope:
    """A command envelope as the orchestrator sends it; the saga id is the payload's (or a new one)."""
    saga_id = getattr(message, "saga_id", "") or str(uuid.uuid4())
    return Envelope(message=message, saga_id=saga_id, source=source, reply_to=reply_to)


def resent(envelope: Envelope) -> Envelope:
    """The same command sent again by the orchestrator: same payload, a new ``ce_id``."""
    return Envelope(
        message=envelope.message, saga_id=envelope.saga_id, source=envelope.source, reply_to=envelope.reply_to
    )


class Replies:
    """Reads a reply topic from its beginning and hands out the decoded replies per saga."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int = 1) -> None:
        self.topic = topic
        self.partitions = partitions
        self.received: list[Envelope] = []
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)

    async def start(self) -> None:
        """Connect and seek every partition to its beginning."""
        await self._consumer.start()
        assigned = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)

    async def stop(self) -> None:
        """Disconnect."""
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
                raise WaitTimeoutError(
                    f"timed out after {within_s:g}s waiting for {count} replies of saga {saga_id}; got {got}"
                )
            await self._poll()
        return self.of(saga_id)

    async def wait_for_all(self, saga_ids: Sequence[str], within_s: float = WAIT_S) -> dict[str, Envelope]:
        """Wait for one reply of every saga; return the first reply of each."""
        for saga_id in saga_ids:
            await self.wait_for(saga_id, 1, within_s)
        return {saga_id: self.of(saga_id)[0] for saga_id in saga_ids}


@asynccontextmanager
async def reading_replies(bootstrap_servers: str, topic: str, partitions: int = 1) -> AsyncIterator[Replies]:
    """A started :class:`Replies` reader of ``topic``, stopped at exit."""
    reader = Replies(bootstrap_servers, topic, partitions)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


# the service


def settings_factory(
    settings_type: type[SettingsT], *, database: DatabaseSettings, kafka: KafkaSettings, **defaults: Any
) -> Callable[..., SettingsT]:
    """``make(**overrides)``: the service's settings on the test's schema and topics.

    ``defaults`` (e.g. ``service_name``, ``outbox``, ``shutdown_grace_s``) apply to every call;
    a keyword given to ``make`` replaces any field.
    """

    def make(**overrides: Any) -> SettingsT:
        return settings_type(**{"database": database, "kafka": kafka, **defaults, **overrides})

    return make


@asynccontextmanager
async def serving(
    app: FastAPI, base_url: str = "http://service", *, timeout_s: float = 10.0
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (schema checked, producer and components started) around an HTTP client."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=timeout_s) as client,
    ):
        yield client


def service_env(inherited: Mapping[str, str], **settings: str) -> dict[str, str]:
    """The environment of a child service process: ``inherited`` without nested settings, plus ``settings``.

    ``inherited`` is usually the test's ``os.environ``; variables that would configure the service
    (``DATABASE__*``, ``KAFKA__*`` …) are left out so only what the test sets applies.
    """
    env = {name: value for name, value in inherited.items() if not name.startswith(SERVICE_ENV_PREFIXES)}
    env.update(settings)
    return env


@dataclass(frozen=True)
class Finished:
    """How a child process ended."""

    returncode: int
    stdout: str
    stderr: str


async def run_module(module: str, *args: str, env: Mapping[str, str], timeout_s: float = 120.0) -> Finished:
    """Run ``python -m <module> <args>`` with this interpreter; wait at most ``timeout_s`` for it to end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise WaitTimeoutError(f"python -m {module} {' '.join(args)} did not finish within {timeout_s:g}s") from None
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())
