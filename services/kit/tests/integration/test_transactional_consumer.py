"""The transactional consumer against real Kafka and PostgreSQL.

Offsets are committed only after the database commit; redeliveries are no-ops thanks to the
inbox; poison goes to the DLQ without blocking its partition; failures are retried in place;
stopping finishes the record in flight.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Sequence

import pytest
from kit_harness import Database, crash_at, saga_envelope
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import events_pb2
from checkout_kit.failpoints import CONSUMER_AFTER_DB_COMMIT, Failpoint
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.consumer import HANDLER_FAILED, Handler, TransactionalConsumer
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.outbox import OutboxRelay, enqueue
from checkout_kit.settings import OutboxSettings
from checkout_kit.testing import WAIT_S, Kafka, wait_until

pytestmark = pytest.mark.integration

GROUP = "inventory"


def consumer_of(
    kafka: Kafka,
    database: Database,
    publisher: Publisher,
    handler: Handler,
    *,
    topics: Sequence[str] | None = None,
    failpoint: Failpoint | None = None,
    max_attempts: int = 5,
) -> TransactionalConsumer:
    return TransactionalConsumer(
        topics or [kafka.topics.inventory_command],
        GROUP,
        handler,
        database.sessions,
        publisher,
        kafka.settings(handler_max_attempts=max_attempts),
        "inventory",
        failpoint=failpoint,
    )


def counting_handler(database: Database, calls: Counter[str]) -> Handler:
    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.id] += 1
        await database.record_effect(session, envelope)

    return handler


async def test_the_offset_is_committed_only_after_the_database_commit(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq)
    message = saga_envelope()
    await publisher.publish(topic, message)
    calls: Counter[str] = Counter()

    crashing = consumer_of(
        kafka, database, publisher, counting_handler(database, calls), failpoint=crash_at(CONSUMER_AFTER_DB_COMMIT)
    )
    await crashing.start()
    await asyncio.wait_for(crashing.wait(), WAIT_S)
    await crashing.stop()
    assert crashing.crash is not None
    assert await database.effect_count(message.id) == 1  # the effects committed ...
    assert await kafka.committed(GROUP, topic) == -1  # ... the offset did not

    restarted = consumer_of(kafka, database, publisher, counting_handler(database, calls))
    await restarted.start()
    try:
        await kafka.wait_committed(GROUP, topic, 1)  # it read the record again and moved past it
    finally:
        await restarted.stop()
    assert calls == {message.id: 1}  # the redelivery did not reach the handler
    assert await database.effect_count() == 1
    assert await database.scalar("SELECT count(*) FROM inbox WHERE consumer = 'inventory'") == 1


async def test_poison_goes_to_the_dlq_with_its_reason_and_the_partition_moves_on(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic, dlq = kafka.topics.inventory_command, kafka.topics.dlq
    await kafka.create(topic, dlq)
    valid = saga_envelope()
    headers = valid.headers()

    def with_header(name: str, value: bytes) -> list[tuple[str, bytes]]:
        return [(n, value if n == name else v) for n, v in headers]

    poison = [
        ("missing-headers", b"some-key", b"not even protobuf", [("content-type", b"application/protobuf")]),
        ("unknown-type", valid.key(), valid.value(), with_header("ce_type", b"checkout.v1.Teleport")),
        ("undecodable", valid.key(), b"\xff\xff\xff\xff\xff", headers),
        ("undecodable", valid.key(), b"{broken json", with_header("content-type", b"application/json")),
        ("unsupported-content-type", valid.key(), valid.value(), with_header("content-type", b"application/xml")),
        ("oversized", valid.key(), b"\x0a" * (300 * 1024), headers),  # above max_message_bytes (256 KiB)
    ]
    invalid = saga_envelope(quantity=0)  # well-formed, but the handler refuses it
    good = saga_envelope()
    for _, key, value, record_headers in poison:
        await publisher.publish_record(topic, key=key, value=value, headers=record_headers)
    await publisher.publish(topic, invalid)
    await publisher.publish(topic, good)

    calls: Counter[str] = Counter()

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.id] += 1
        await database.record_effect(session, envelope)  # rolled back with the refusal below
        if any(item.quantity < 1 for item in envelope.message.items):  # type: ignore[attr-defined]
            raise InvalidMessageError("invalid-payload", "every line needs a quantity of at least 1")

    consumer = consumer_of(kafka, database, publisher, handler)
    await consumer.start()
    try:
        await kafka.wait_committed(GROUP, topic, len(poison) + 2)
    finally:
        await consumer.stop()

    assert await database.effect_count() == 1
    assert await database.effect_count(good.id) == 1
    assert calls == {invalid.id: 1, good.id: 1}  # refused at once, not retried
    assert await database.scalar("SELECT count(*) FROM inbox") == 1  # the refusal left no inbox row

    letters = await kafka.read_all(dlq)
    expected = [*poison, ("invalid-payload", invalid.key(), invalid.value(), invalid.headers())]
    assert [dict(letter.headers)["dlq_reason"].decode() for letter in letters] == [e[0] for e in expected]
    for offset, (letter, (_, key, value, original_headers)) in enumerate(zip(letters, expected, strict=True)):
        assert letter.key == key
        assert letter.value == value
        assert list(letter.headers)[: len(original_headers)] == list(original_headers)
        failure = dict(letter.headers)
        assert failure["dlq_detail"]
        assert failure["dlq_topic"] == topic.encode()
        assert failure["dlq_partition"] == b"0"
        assert failure["dlq_offset"] == str(offset).encode()
        assert failure["dlq_consumer_group"] == GROUP.encode()
        assert failure["dlq_failed_at"].endswith(b"Z")


async def test_a_transient_handler_failure_is_retried_in_place_until_it_succeeds(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq)
    first, second = saga_envelope(), saga_envelope()
    await publisher.publish(topic, first)
    await publisher.publish(topic, second)
    calls: list[str] = []

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls.append(envelope.id)
        await database.record_effect(session, envelope)
        if calls.count(envelope.id) < 3:
            raise RuntimeError("the warehouse API is having a moment")

    consumer = consumer_of(kafka, database, publisher, handler, max_attempts=5)
    await consumer.start()
    try:
        await kafka.wait_committed(GROUP, topic, 2)
    finally:
        await consumer.stop()
    assert calls == [first.id] * 3 + [second.id] * 3  # never skipped ahead of the failing record
    assert await database.effect_count(first.id) == 1  # failed attempts rolled back
    assert await database.effect_count(second.id) == 1
    assert await kafka.read_all(kafka.topics.dlq) == []


async def test_a_handler_failing_past_the_bound_is_dead_lettered_and_the_next_record_processed(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq)
    doomed, fine = saga_envelope(), saga_envelope()
    await publisher.publish(topic, doomed)
    await publisher.publish(topic, fine)
    calls: Counter[str] = Counter()

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.id] += 1
        await database.record_effect(session, envelope)
        if envelope.id == doomed.id:
            raise KeyError("a bug that no retry fixes")

    consumer = consumer_of(kafka, database, publisher, handler, max_attempts=3)
    await consumer.start()
    try:
        await kafka.wait_committed(GROUP, topic, 2)
    finally:
        await consumer.stop()
    assert calls == {doomed.id: 3, fine.id: 1}
    assert await database.effect_count(doomed.id) == 0
    assert await database.effect_count(fine.id) == 1
    (letter,) = await kafka.read_all(kafka.topics.dlq)
    failure = dict(letter.headers)
    assert failure["dlq_reason"] == HANDLER_FAILED.encode()
    assert b"KeyError" in failure["dlq_detail"]
    assert dict(letter.headers)["ce_id"] == doomed.id.encode()


async def test_stop_finishes_the_record_in_flight_commits_it_and_leaves_the_rest(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq)
    messages = [saga_envelope() for _ in range(5)]
    for message in messages:
        await publisher.publish(topic, message)
    in_flight, release = asyncio.Event(), asyncio.Event()
    calls: Counter[str] = Counter()

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.id] += 1
        await database.record_effect(session, envelope)
        if envelope.id == messages[2].id:
            in_flight.set()
            await release.wait()

    consumer = consumer_of(kafka, database, publisher, handler)
    await consumer.start()
    await asyncio.wait_for(in_flight.wait(), WAIT_S)
    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(0)  # let stop() begin while the third record is in flight
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, WAIT_S)

    assert await kafka.committed(GROUP, topic) == 3  # the one in flight finished and was committed
    assert await database.effect_count() == 3
    assert not consumer.running

    successor = consumer_of(kafka, database, publisher, counting_handler(database, calls))
    await successor.start()
    try:
        await kafka.wait_committed(GROUP, topic, 5)
    finally:
        await successor.stop()
    assert calls == Counter({message.id: 1 for message in messages})
    assert await database.effect_count() == 5


async def test_stopping_an_idle_consumer_returns_promptly(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    await kafka.create(kafka.topics.inventory_command, kafka.topics.dlq)
    consumer = consumer_of(kafka, database, publisher, counting_handler(database, Counter()))
    await consumer.start()
    await consumer.check_ready()
    await asyncio.wait_for(consumer.stop(), WAIT_S)
    assert not consumer.running
    with pytest.raises(RuntimeError, match="not running"):
        await consumer.check_ready()


async def test_a_rebalance_waits_for_the_record_in_flight_so_nothing_is_delivered_twice(
    database: Database, kafka: Kafka, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="checkout_kit.messaging.consumer")
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq, partitions=2)
    messages = [saga_envelope() for _ in range(40)]
    for message in messages[:20]:
        await publisher.publish(topic, message)
    calls: Counter[str] = Counter()
    in_flight = asyncio.Event()
    settings = kafka.settings()
    heartbeat_s = settings.consumer_params("inventory", GROUP)["heartbeat_interval_ms"] / 1000

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.id] += 1
        await database.record_effect(session, envelope)
        if not in_flight.is_set():
            in_flight.set()

            async def rebalancing() -> bool:
                return await kafka.group_state(GROUP) == "PreparingRebalance"

            await wait_until(rebalancing, "the second member's arrival starts a rebalance")
            # Stay in flight past a heartbeat: the member learns of the rebalance while this runs.
            await asyncio.sleep(heartbeat_s * 1.5)

    first = consumer_of(kafka, database, publisher, handler)
    second = consumer_of(kafka, database, publisher, handler)
    await first.start()
    try:
        await asyncio.wait_for(in_flight.wait(), WAIT_S)
        await second.start()  # joins once the first member has handed over at a committed offset
        for message in messages[20:]:
            await publisher.publish(topic, message)

        async def all_applied() -> bool:
            return await database.effect_count() >= len(messages)

        await wait_until(all_applied, "every record is applied")
        await first.stop()  # leaves: the second member takes both partitions
        ends = {0: 0, 1: 0}
        for record in await kafka.read_all(topic):
            ends[record.partition] = record.offset + 1
        for partition, end in ends.items():
            await kafka.wait_committed(GROUP, topic, end, partition)
    finally:
        await first.stop()
        await second.stop()
    assert set(calls) == {message.id for message in messages}
    assert max(calls.values()) == 1
    assert await database.effect_count() == len(messages)
    # Every hand-over happened at a committed offset: no record reached a consumer twice.
    assert not [r for r in caplog.records if "skipping the redelivery" in r.getMessage()]


async def test_partitions_are_applied_concurrently_each_in_order(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    """The first record's handler waits until a record of the other partition was applied: a consumer
    working through its partitions one after the other would never get there."""
    topic = kafka.topics.inventory_command
    await kafka.create(topic, kafka.topics.dlq, partitions=2)
    messages = [saga_envelope() for _ in range(30)]
    for message in messages:
        await publisher.publish(topic, message)
    records = await kafka.read_all(topic)
    partition_of = {dict(r.headers)["ce_id"].decode(): r.partition for r in records}
    assert set(partition_of.values()) == {0, 1}, "the keys spread over both partitions"
    order: dict[int, list[str]] = {0: [], 1: []}
    other_partition_applied = asyncio.Event()
    blocking: list[int] = []

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        partition = partition_of[envelope.id]
        if not blocking:
            blocking.append(partition)
            await asyncio.wait_for(other_partition_applied.wait(), WAIT_S)
        elif partition != blocking[0]:
            other_partition_applied.set()
        order[partition].append(envelope.id)
        await database.record_effect(session, envelope)

    consumer = consumer_of(kafka, database, publisher, handler)
    await consumer.start()
    try:
        for partition in (0, 1):
            end = 1 + max(r.offset for r in records if r.partition == partition)
            await kafka.wait_committed(GROUP, topic, end, partition)
    finally:
        await consumer.stop()
    assert consumer.crash is None
    for partition in (0, 1):  # within a partition, the log's order
        published = [dict(r.headers)["ce_id"].decode() for r in records if r.partition == partition]
        assert order[partition] == published
    assert await database.effect_count() == len(messages)


async def test_a_handler_reply_leaves_through_the_outbox_with_the_effect(
    database: Database, kafka: Kafka, publisher: Publisher
) -> None:
    commands, events = kafka.topics.inventory_command, kafka.topics.checkout_events
    await kafka.create(commands, events, kafka.topics.dlq)
    command = saga_envelope()
    await publisher.publish(commands, command)

    async def handler(envelope: Envelope, session: AsyncSession) -> None:
        await database.record_effect(session, envelope)
        reply = events_pb2.InventoryReserved(saga_id=envelope.saga_id, reservation_id=str(uuid.uuid4()))
        await enqueue(session, events, Envelope(message=reply, saga_id=envelope.saga_id, source="inventory"))

    consumer = consumer_of(kafka, database, publisher, handler, topics=[commands])
    relay = OutboxRelay(database.sessions, publisher, database.settings, OutboxSettings(poll_interval_s=0.1))
    await relay.start()
    await consumer.start()
    try:
        await kafka.wait_committed(GROUP, commands, 1)

        async def replied() -> bool:
            return len(await kafka.read_all(events)) == 1

        await wait_until(replied, "the reply is on the events topic")
    finally:
        await consumer.stop()
        await relay.stop()
    (record,) = await kafka.read_all(events)
    reply = Envelope.from_record(record.key, record.value, record.headers)
    assert reply.saga_id == command.saga_id
    assert reply.type == "checkout.v1.InventoryReserved"
