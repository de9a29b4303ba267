"""The outbox relay against real PostgreSQL and Kafka: committed rows leave, rolled-back rows never do."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from kit_harness import Database, crash_at, saga_envelope
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_kit.failpoints import OUTBOX_AFTER_PUBLISH
from checkout_kit.messaging.consumer import TransactionalConsumer
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher, start_producer, stop_producer
from checkout_kit.outbox import OutboxRelay, enqueue
from checkout_kit.settings import OutboxSettings
from checkout_kit.testing import WAIT_S, Kafka, wait_until

pytestmark = pytest.mark.integration


async def drained(relay: OutboxRelay) -> None:
    async def empty() -> bool:
        return (await relay.backlog()).count == 0

    await wait_until(empty, "the outbox backlog is empty")


def ids(records: list[object]) -> list[str]:
    return [dict(r.headers)["ce_id"].decode() for r in records]  # type: ignore[attr-defined]


async def test_only_committed_rows_are_published_in_order_with_their_headers(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic)
    first, rolled_back, last = saga_envelope(), saga_envelope(), saga_envelope()
    async with database.sessions() as session, session.begin():
        await enqueue(session, topic, first)

    async def failing_handler() -> None:
        async with database.sessions() as session, session.begin():
            await enqueue(session, topic, rolled_back)
            raise RuntimeError("handler failed after enqueueing")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_handler()
    async with database.sessions() as session, session.begin():
        await enqueue(session, topic, last)

    relay = OutboxRelay(database.sessions, publisher, database.settings, OutboxSettings(poll_interval_s=0.1))
    assert (await relay.backlog()).count == 2
    await relay.start()
    try:
        await drained(relay)
    finally:
        await relay.stop()

    records = await kafka.read_all(topic)
    assert ids(records) == [first.id, last.id]
    for record, sent in zip(records, (first, last), strict=True):
        assert record.key == sent.key()
        assert record.value == sent.value()
        assert list(record.headers) == sent.headers()
        assert Envelope.from_record(record.key, record.value, record.headers) == sent
    assert await database.scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL AND attempts = 1") == 2


async def test_a_commit_wakes_the_relay_without_waiting_for_the_poll(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.order_command
    await kafka.create(topic)
    # An hour between polls: within WAIT_S only the NOTIFY at commit can wake the relay.
    relay = OutboxRelay(database.sessions, publisher, database.settings, OutboxSettings(poll_interval_s=3_600))
    await relay.start()
    try:
        for _ in range(2):  # the second one certainly arrives while the relay sleeps
            async with database.sessions() as session, session.begin():
                await enqueue(session, topic, saga_envelope())
            await drained(relay)
    finally:
        await relay.stop()
    assert len(await kafka.read_all(topic)) == 2


async def test_a_crash_after_publish_republishes_and_the_inbox_applies_it_once(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.payment_command
    await kafka.create(topic, kafka.topics.dlq)
    message = saga_envelope()
    async with database.sessions() as session, session.begin():
        await enqueue(session, topic, message)

    crashing = OutboxRelay(
        database.sessions,
        publisher,
        database.settings,
        OutboxSettings(poll_interval_s=0.1),
        failpoint=crash_at(OUTBOX_AFTER_PUBLISH),
    )
    await crashing.start()
    await asyncio.wait_for(crashing.wait(), WAIT_S)
    await crashing.stop()
    assert crashing.crash is not None
    assert ids(await kafka.read_all(topic)) == [message.id]  # on Kafka ...
    assert (await crashing.backlog()).count == 1  # ... but not marked: the crash rolled the marking back

    restarted = OutboxRelay(database.sessions, publisher, database.settings, OutboxSettings(poll_interval_s=0.1))
    await restarted.start()
    try:
        await drained(restarted)
    finally:
        await restarted.stop()
    assert ids(await kafka.read_all(topic)) == [message.id, message.id]  # at least once: here twice

    calls: Counter[str] = Counter()

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.id] += 1
        await database.record_effect(session, envelope)

    consumer = TransactionalConsumer(
        [topic], "payment", handler, database.sessions, publisher, kafka.settings(), "payment"
    )
    await consumer.start()
    try:
        await kafka.wait_committed("payment", topic, 2)
    finally:
        await consumer.stop()
    assert calls == {message.id: 1}
    assert await database.effect_count(message.id) == 1
    assert await database.scalar("SELECT count(*) FROM inbox") == 1


async def test_rows_that_cannot_be_sent_stay_and_do_not_block_other_topics(database: Database, kafka: Kafka) -> None:
    good = kafka.topics.order_command
    missing = kafka.topics.payment_command  # never created: the broker does not auto-create topics
    await kafka.create(good)
    # A short request timeout: the missing topic's metadata wait gives up after a second.
    producer = await start_producer(kafka.settings(request_timeout_ms=1_000), "kit-test")
    publisher = Publisher(producer)
    stuck, fine = saga_envelope(), saga_envelope()
    async with database.sessions() as session, session.begin():
        await enqueue(session, missing, stuck)
        await enqueue(session, good, fine)

    relay = OutboxRelay(database.sessions, publisher, database.settings, OutboxSettings(poll_interval_s=0.1))
    try:
        published = await relay.publish_batch()
    finally:
        await stop_producer(producer)
    assert (published.published, published.failed) == (1, 1)
    assert ids(await kafka.read_all(good)) == [fine.id]
    assert (await relay.backlog()).count == 1
    assert await database.scalar("SELECT attempts FROM outbox WHERE published_at IS NULL") == 1
    assert await database.scalar("SELECT last_error FROM outbox WHERE published_at IS NULL")  # says why


async def test_published_rows_are_deleted_after_the_retention_unpublished_never(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic)
    relay = OutboxRelay(database.sessions, publisher, database.settings, OutboxSettings(poll_interval_s=0.1))
    async with database.sessions() as session, session.begin():
        for _ in range(3):
            await enqueue(session, topic, saga_envelope())
    assert (await relay.publish_batch()).published == 3
    async with database.sessions() as session, session.begin():
        await enqueue(session, topic, saga_envelope())

    assert await relay.delete_published(3_600) == 0  # younger than an hour: kept
    assert await relay.delete_published(0) == 3
    backlog = await relay.backlog()
    assert backlog.count == 1
    assert backlog.oldest_age_s >= 0
    assert await database.scalar("SELECT count(*) FROM outbox") == 1
