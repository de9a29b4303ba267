"""Fixtures for the orchestrator against the real Kafka and PostgreSQL, the tests playing the participants.

- Topics: one prefix per test session (``orch-it-<random>``); its five topics are created with
  the admin client (the broker does not auto-create) and deleted at the end. Tests share them
  and tell their messages apart by saga id. The consumer group is unique to the session too,
  so a dev stack or another test run on the same broker never joins our rebalances.
- Database: a fresh schema per test, migrated to head, dropped afterwards.
- The app runs in-process through its lifespan (consumer, relay, deadline scanner included);
  requests go through an ASGI client.
- :class:`Participants` reads the three command topics and answers like inventory, payment and
  order would, by the data (``sku`` ``OUT-OF-STOCK``, token ``tok_chargeDeclined`` /
  ``tok_timeout``, customer ``cust_order_fail``), publishing replies as Envelopes to the
  command's ``reply_to``.

Every wait is a bounded poll that fails with what it waited for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import Message
from pydantic import SecretStr

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher, start_producer, stop_producer
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.settings import KafkaSettings, OutboxSettings
from checkout_kit.testing import (
    WAIT_S,
    admin_client,
    create_topics,
    serving,
    temporary_schema,
    unique_name,
    wait_until,
)
from checkout_kit.topics import Topics
from checkout_orchestrator.config import (
    DeadlineScannerSettings,
    OrchestratorDatabaseSettings,
    OrchestratorSettings,
    SagaPolicySettings,
)
from checkout_orchestrator.main import MIGRATIONS, create_app

PARTITIONS = 3
"""Partitions of every topic of the session (several, so per-saga ordering rests on the key)."""
UNIT_PRICE_MINOR = 1_250
OUT_OF_STOCK_SKU = "OUT-OF-STOCK"
DECLINED = "tok_chargeDeclined"
HANGS = "tok_timeout"
ORDER_FAILS = "cust_order_fail"


# the session's topics and group


@dataclass(frozen=True)
class KafkaSession:
    bootstrap_servers: str
    topics: Topics
    group: str


async def _create_topics(bootstrap: str, names: tuple[str, ...]) -> None:
    async with admin_client(bootstrap) as admin:
        await create_topics(admin, names, partitions=PARTITIONS)


async def _delete_topics(bootstrap: str, names: tuple[str, ...]) -> None:
    async with admin_client(bootstrap) as admin:
        await admin.delete_topics(list(names))


@pytest.fixture(scope="session")
def kafka_session(kafka_bootstrap_servers: str) -> Iterator[KafkaSession]:
    """A topic prefix and consumer group of this test session; the topics exist, and are deleted at the end."""
    topics = Topics(unique_name("orch-it"))
    asyncio.run(_create_topics(kafka_bootstrap_servers, topics.all()))
    try:
        yield KafkaSession(kafka_bootstrap_servers, topics, f"{topics.prefix}.checkout-orchestrator")
    finally:
        asyncio.run(_delete_topics(kafka_bootstrap_servers, topics.all()))


# a schema per test


@pytest.fixture
async def schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A schema name of this test's own (created by migrating it), dropped afterwards."""
    async with temporary_schema(postgres_dsn, "orch_it", create=False) as name:
        yield name


# the participants


Answer = Callable[[Message], Message | None]


def _priced(items: Any) -> list[types_pb2.LineItem]:
    return [
        types_pb2.LineItem(
            sku=item.sku,
            quantity=item.quantity,
            unit_price=types_pb2.Money(amount_minor=UNIT_PRICE_MINOR, currency="EUR"),
        )
        for item in items
    ]


def answer_like_the_participants(command: Message) -> Message | None:
    """What inventory, payment and order reply, decided by the command's data (None: no reply)."""
    saga_id = getattr(command, "saga_id", "")
    if isinstance(command, commands_pb2.ReserveInventory):
        if any(item.sku == OUT_OF_STOCK_SKU for item in command.items):
            return events_pb2.InventoryReservationFailed(
                saga_id=saga_id,
                reason=types_pb2.FAILURE_CODE_OUT_OF_STOCK,
                message=f"{OUT_OF_STOCK_SKU}: 0 left",
                skus=[OUT_OF_STOCK_SKU],
            )
        items = _priced(command.items)
        total = sum(item.quantity for item in items) * UNIT_PRICE_MINOR
        return events_pb2.InventoryReserved(
            saga_id=saga_id,
            reservation_id=f"res-{saga_id[:8]}",
            items=items,
            total=types_pb2.Money(amount_minor=total, currency="EUR"),
        )
    if isinstance(command, commands_pb2.ReleaseInventory):
        return events_pb2.InventoryReleased(saga_id=saga_id, reservation_id=command.reservation_id)
    if isinstance(command, commands_pb2.ProcessPayment):
        if command.payment_token == HANGS:
            return None
        if command.payment_token == DECLINED:
            return events_pb2.PaymentFailed(
                saga_id=saga_id, reason=types_pb2.FAILURE_CODE_PAYMENT_DECLINED, message="card declined"
            )
        return events_pb2.PaymentProcessed(saga_id=saga_id, payment_id=f"pay-{saga_id[:8]}", amount=command.amount)
    if isinstance(command, commands_pb2.RefundPayment):
        return events_pb2.PaymentRefunded(saga_id=saga_id, payment_id=command.payment_id, amount=command.amount)
    if isinstance(command, commands_pb2.CreateOrder):
        if command.customer_id == ORDER_FAILS:
            return events_pb2.OrderCreationFailed(
                saga_id=saga_id, reason=types_pb2.FAILURE_CODE_ORDER_REJECTED, message="customer may not order"
            )
        return events_pb2.OrderCreated(saga_id=saga_id, order_id=f"ord-{saga_id[:8]}")
    return None


@dataclass(frozen=True)
class Received:
    """A command as a participant received it."""

    topic: str
    envelope: Envelope

    @property
    def name(self) -> str:
        return type(self.envelope.message).__name__


@dataclass
class Participants:
    """Inventory, payment and order, played by the test: every command is recorded, most answered."""

    kafka: KafkaSession
    publisher: Publisher
    answer: Answer = answer_like_the_participants
    received: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    replies: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    _consumer: Any = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reading the command topics from their current ends (earlier tests' commands are not ours)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers, enable_auto_commit=False, isolation_level="read_committed"
        )
        await consumer.start()
        topics = self.kafka.topics
        partitions = [
            TopicPartition(topic, partition)
            for topic in (topics.inventory_command, topics.payment_command, topics.order_command)
            for partition in range(PARTITIONS)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the positions now, before any command of this test exists
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    envelope = Envelope.from_record(record.key, record.value, record.headers)
                    self.received[envelope.saga_id].append(Received(record.topic, envelope))
                    reply = self.answer(envelope.message)
                    if reply is not None:
                        await self.reply(envelope, reply)

    async def reply(self, command: Envelope, event: Message) -> Envelope:
        """Publish ``event`` as the participant's reply to ``command`` (to its ``reply_to``)."""
        assert command.reply_to, f"{command.type} carries no reply_to"
        envelope = Envelope(
            message=event, saga_id=command.saga_id, source="test-participant", trace_headers=command.trace_headers
        )
        await self.publisher.publish(command.reply_to, envelope)
        self.replies[command.saga_id].append(envelope)
        return envelope

    def names(self, saga_id: str) -> list[str]:
        """The commands received for a saga, by name, in arrival order."""
        return [received.name for received in self.received[saga_id]]

    async def wait_for(self, saga_id: str, name: str, count: int = 1) -> Received:
        """The ``count``-th ``name`` command of the saga, once it arrived."""

        async def arrived() -> bool:
            return self.names(saga_id).count(name) >= count

        await wait_until(arrived, f"{count} x {name} for saga {saga_id} (so far: {self.names(saga_id)})")
        return [received for received in self.received[saga_id] if received.name == name][count - 1]


# the harness


@dataclass
class Harness:
    """Everything a test needs: settings, the app, publishing events, watching sagas and the DLQ."""

    kafka: KafkaSession
    postgres_dsn: str
    schema: str
    publisher: Publisher
    participants: Participants

    def settings(self, **saga: Any) -> OrchestratorSettings:
        """The app's settings on the test's schema and the session's topics; ``saga`` overrides the policy."""
        policy = {"step_timeout_s": 30.0, "compensation_timeout_s": 30.0, **saga}
        return OrchestratorSettings(
            database=OrchestratorDatabaseSettings(
                url=SecretStr(self.postgres_dsn), schema=self.schema, pool_size=5, max_overflow=5
            ),
            kafka=KafkaSettings(
                bootstrap_servers=self.kafka.bootstrap_servers,
                topic_prefix=self.kafka.topics.prefix,
                session_timeout_ms=6_000,
                retry_backoff_initial_ms=10,
                retry_backoff_max_ms=200,
            ),
            outbox=OutboxSettings(poll_interval_s=0.2),
            consumer_group=self.kafka.group,
            saga=SagaPolicySettings(**policy),
            deadlines=DeadlineScannerSettings(scan_interval_s=0.05),
            shutdown_grace_s=10.0,
        )

    @asynccontextmanager
    async def app(self, settings: OrchestratorSettings | None = None) -> AsyncIterator[httpx.AsyncClient]:
        """The orchestrator running in-process (lifespan: migrations checked, components started) and a client."""
        settings = settings or self.settings()
        await upgrade_to_head(settings.database, MIGRATIONS)
        async with serving(create_app(settings), base_url="http://orchestrator") as client:
            yield client

    async def initiate(
        self,
        *,
        saga_id: str | None = None,
        sku: str = "SKU-1",
        quantity: int = 2,
        payment: str = "tok_visa",
        customer_id: str = "cust_1",
    ) -> Envelope:
        """Publish a CheckoutInitiated, as the gateway does; return its envelope."""
        saga = saga_id or str(uuid.uuid4())
        envelope = Envelope(
            message=events_pb2.CheckoutInitiated(
                saga_id=saga,
                customer_id=customer_id,
                items=[types_pb2.LineItem(sku=sku, quantity=quantity)],
                currency="EUR",
                payment_token=payment,
            ),
            saga_id=saga,
            source="test-gateway",
            trace_headers={"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"},
        )
        await self.publish(envelope)
        return envelope

    async def publish(self, envelope: Envelope) -> tuple[int, int]:
        """Publish to the events topic; return the record's (partition, offset)."""
        metadata = await self.publisher.publish(self.kafka.topics.checkout_events, envelope)
        return metadata.partition, metadata.offset

    async def saga(self, client: httpx.AsyncClient, saga_id: str) -> dict[str, Any]:
        response = await client.get(f"/sagas/{saga_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_status(self, client: httpx.AsyncClient, saga_id: str, status: str) -> dict[str, Any]:
        """The saga once it has ``status``; fails if it ends otherwise or not in time."""
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            response = await client.get(f"/sagas/{saga_id}")
            if response.status_code == 404:
                return False
            seen.update(response.json())
            if seen["status"] not in ("PENDING", status):
                pytest.fail(f"saga {saga_id} ended {seen['status']} ({seen['state']}), not {status}: {seen}")
            return bool(seen["status"] == status)

        await wait_until(reached, f"saga {saga_id} is {status} (last seen: {seen.get('state')})")
        return seen

    async def wait_state(self, client: httpx.AsyncClient, saga_id: str, state: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            response = await client.get(f"/sagas/{saga_id}")
            if response.status_code == 200:
                seen.update(response.json())
            return seen.get("state") == state

        await wait_until(reached, f"saga {saga_id} is in {state} (last seen: {seen.get('state')})")
        return seen

    async def wait_consumed(self, partition: int, offset: int) -> None:
        """Wait until the orchestrator's group committed past ``offset`` of the events topic's ``partition``."""
        async with admin_client(self.kafka.bootstrap_servers) as admin:
            tp = TopicPartition(self.kafka.topics.checkout_events, partition)

            async def committed() -> bool:
                offsets = await admin.list_consumer_group_offsets(self.kafka.group)
                meta = offsets.get(tp)
                return meta is not None and meta.offset > offset

            await wait_until(committed, f"{self.kafka.group} committed past {tp}@{offset}")

    async def dead_letters(self, saga_id: str) -> list[dict[str, str]]:
        """Headers of every DLQ record of the saga (read to the topic's current end)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            topic = self.kafka.topics.dlq
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[dict[str, str]] = []
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if asyncio.get_running_loop().time() > deadline:
                    pytest.fail(f"could not read {topic} to its end within {WAIT_S:g}s")
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        headers = {name: value.decode() for name, value in record.headers}
                        if headers.get("saga_id") == saga_id:
                            found.append(headers)
            return found
        finally:
            await consumer.stop()

    async def wait_dead_letter(self, saga_id: str) -> dict[str, str]:
        found: list[dict[str, str]] = []

        async def arrived() -> bool:
            found[:] = await self.dead_letters(saga_id)
            return bool(found)

        await wait_until(arrived, f"a dead letter for saga {saga_id}")
        return found[0]


@pytest.fixture
async def harness(kafka_session: KafkaSession, postgres_dsn: str, schema: str) -> AsyncIterator[Harness]:
    producer = await start_producer(
        KafkaSettings(bootstrap_servers=kafka_session.bootstrap_servers, topic_prefix=kafka_session.topics.prefix),
        "orchestrator-tests",
    )
    publisher = Publisher(producer)
    participants = Participants(kafka_session, publisher)
    await participants.start()
    try:
        yield Harness(kafka_session, postgres_dsn, schema, publisher, participants)
    finally:
        await participants.stop()
        await stop_producer(producer)
