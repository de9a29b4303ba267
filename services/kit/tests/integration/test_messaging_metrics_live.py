"""The messaging metrics move with real traffic through real Kafka and PostgreSQL.

Each test builds the components with the instruments of a registry of its own and reads the
samples back from it: what ``/metrics`` of a service would show. Waits are bounded polls on the
samples (the gauges are refreshed in the background); nothing asserts how fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from kit_harness import Database, crash_at, saga_envelope
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_kit.failpoints import OUTBOX_AFTER_PUBLISH
from checkout_kit.messaging.consumer import Handler, TransactionalConsumer
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.metrics import MessagingMetrics
from checkout_kit.outbox import OutboxRelay, enqueue
from checkout_kit.settings import OutboxSettings
from checkout_kit.testing import WAIT_S, Kafka, wait_until

pytestmark = pytest.mark.integration

GROUP = "inventory"
REFRESH_S = 0.1
"""Gauge refresh period in these tests (production: 10 s)."""


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def wait_for_sample(
    registry: CollectorRegistry, name: str, expected: Callable[[float | None], bool], what: str, **labels: str
) -> None:
    async def holds() -> bool:
        return expected(registry.get_sample_value(name, labels))

    await wait_until(holds, f"{name}{labels} {what} (last: {registry.get_sample_value(name, labels)})")


def consumer_of(
    kafka: Kafka, database: Database, publisher: Publisher, handler: Handler, registry: CollectorRegistry
) -> TransactionalConsumer:
    return TransactionalConsumer(
        [kafka.topics.inventory_command],
        GROUP,
        handler,
        database.sessions,
        publisher,
        kafka.settings(handler_max_attempts=5, lag_refresh_interval_s=REFRESH_S),
        "inventory",
        metrics=MessagingMetrics.of(registry),
    )


def recording(database: Database) -> Handler:
    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        await database.record_effect(session, envelope)

    return handler


async def test_records_are_counted_by_outcome_once_their_transaction_committed(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq)
    first, second = saga_envelope(), saga_envelope()
    flaky = saga_envelope()
    for message in (first, second, first, flaky):  # ``first`` again: a redelivery, as the relay may send it
        await publisher.publish(topic, message)
    valid = saga_envelope()
    await publisher.publish_record(topic, key=valid.key(), value=b"\xff\xff\xff", headers=valid.headers())
    failures = {flaky.id: 2}

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        await database.record_effect(session, envelope)
        if failures.get(envelope.id, 0) > 0:
            failures[envelope.id] -= 1
            raise RuntimeError("a bug that goes away")

    registry = CollectorRegistry()
    consumer = consumer_of(kafka, database, publisher, handler, registry)
    await consumer.start()
    try:
        await kafka.wait_committed(GROUP, topic, 5)
    finally:
        await consumer.stop()

    def consumed(outcome: str) -> float:
        return sample(registry, "checkout_messages_consumed_total", topic=topic, outcome=outcome)

    assert consumed("processed") == 3  # first, second, flaky (on its third try)
    assert consumed("duplicate") == 1
    assert consumed("failed") == 2
    assert consumed("dead_lettered") == 1
    assert sample(registry, "checkout_dead_letters_total", topic=topic, reason="undecodable") == 1
    # handling time of every record that committed, the rolled-back attempts aside
    assert sample(registry, "checkout_message_processing_duration_seconds_count", topic=topic) == 4
    assert await database.effect_count() == 3


async def test_lag_counts_what_is_not_committed_and_drains_to_zero(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq)
    lag = "checkout_consumer_lag"
    partition = {"topic": topic, "partition": "0"}

    registry = CollectorRegistry()
    running = consumer_of(kafka, database, publisher, recording(database), registry)
    await running.start()
    try:
        await publisher.publish(topic, saga_envelope())
        await kafka.wait_committed(GROUP, topic, 1)
        await wait_for_sample(registry, lag, lambda value: value == 0, "is 0 once all is committed", **partition)
    finally:
        await running.stop()
    assert registry.get_sample_value(lag, partition) is None  # a stopped consumer owns no partition

    for _ in range(3):  # published while nobody consumes
        await publisher.publish(topic, saga_envelope())
    release = asyncio.Event()
    entered = asyncio.Event()

    async def stalled(envelope: Envelope, session: AsyncSession) -> None:
        entered.set()
        await release.wait()
        await database.record_effect(session, envelope)

    registry = CollectorRegistry()
    restarted = consumer_of(kafka, database, publisher, stalled, registry)
    await restarted.start()
    try:
        await asyncio.wait_for(entered.wait(), WAIT_S)
        # Fetched and being handled, but not committed: still lag (3, measured from the group's offset) ...
        await wait_for_sample(registry, lag, lambda value: value == 3, "is 3 while stalled", **partition)
        await publisher.publish(topic, saga_envelope())
        await wait_for_sample(registry, lag, lambda value: value == 4, "grows to 4", **partition)
        release.set()
        # ... and none once the consumer caught up.
        await kafka.wait_committed(GROUP, topic, 5)
        await wait_for_sample(registry, lag, lambda value: value == 0, "drains to 0", **partition)
    finally:
        release.set()
        await restarted.stop()


async def test_the_backlog_shows_rows_a_stopped_relay_left_and_the_next_relay_publishes(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic)
    async with database.sessions() as session, session.begin():
        for _ in range(3):
            await enqueue(session, topic, saga_envelope())
    settings = OutboxSettings(poll_interval_s=0.1, backlog_refresh_interval_s=REFRESH_S)
    registry = CollectorRegistry()
    metrics = MessagingMetrics.of(registry)

    # The relay sends the rows but dies before marking them: its loop is over, its backlog gauge still refreshes.
    crashed = OutboxRelay(
        database.sessions,
        publisher,
        database.settings,
        settings,
        failpoint=crash_at(OUTBOX_AFTER_PUBLISH),
        metrics=metrics,
    )
    await crashed.start()
    try:
        await asyncio.wait_for(crashed.wait(), WAIT_S)
        assert crashed.crash is not None
        await wait_for_sample(registry, "checkout_outbox_backlog", lambda value: value == 3, "is 3")
        await wait_for_sample(registry, "checkout_outbox_oldest_age_seconds", lambda value: bool(value), "is above 0")
    finally:
        await crashed.stop()
    assert sample(registry, "checkout_outbox_published_total", topic=topic) == 0  # sent, but never committed as such

    relay = OutboxRelay(database.sessions, publisher, database.settings, settings, metrics=metrics)
    await relay.start()
    try:
        await wait_for_sample(registry, "checkout_outbox_backlog", lambda value: value == 0, "drains to 0")
        await wait_for_sample(registry, "checkout_outbox_oldest_age_seconds", lambda value: value == 0, "is 0")
    finally:
        await relay.stop()
    assert sample(registry, "checkout_outbox_published_total", topic=topic) == 3
    assert sample(registry, "checkout_outbox_relay_latency_seconds_count", topic=topic) == 3
    assert sample(registry, "checkout_outbox_relay_latency_seconds_sum", topic=topic) > 0


async def test_the_backlog_query_reads_the_partial_index_of_unpublished_rows(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # what the planner picks on a big table
        plan = "\n".join(
            row[0]
            for row in await connection.exec_driver_sql(
                "EXPLAIN SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM outbox "
                "WHERE published_at IS NULL"
            )
        )
    assert "ix_outbox_unpublished" in plan, plan
