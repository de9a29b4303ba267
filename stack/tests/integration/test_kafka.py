"""The Kafka broker is real: topics, keyed ordering, committed offsets and no auto-creation.

The clients are configured the way the services must configure theirs (aiokafka's defaults are
weaker than the Java client's): ``acks="all"``, idempotent producers, manual commits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

pytestmark = pytest.mark.integration

TOPIC_READY_TIMEOUT_S = 30


def _unique(prefix: str) -> str:
    return f"stack-test-{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def admin(kafka_bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers, request_timeout_ms=10_000)
    await client.start()
    yield client
    await client.close()


async def _described_when_ready(admin: AIOKafkaAdminClient, topic: str) -> dict[str, Any]:
    """Wait until the broker's metadata shows ``topic`` with a leader for every partition.

    CreateTopics returns once the controller has committed the topic; the broker learns of it by
    replaying the metadata log, a moment later (noticeably so right after the broker started).
    """
    async with asyncio.timeout(TOPIC_READY_TIMEOUT_S):
        while True:
            description: dict[str, Any]
            [description] = await admin.describe_topics([topic])
            leaders = [p["leader"] for p in description["partitions"]]
            if description["error_code"] == 0 and leaders and min(leaders) >= 0:
                return description
            await asyncio.sleep(0.1)


async def _create_topic(admin: AIOKafkaAdminClient, partitions: int) -> str:
    topic = _unique("topic")
    response = await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    errors = [(name, code, message) for name, code, message in response.topic_errors if code]
    assert not errors, f"CreateTopics failed: {errors}"
    await _described_when_ready(admin, topic)
    return topic


async def test_created_topic_is_listed_with_its_partitions(admin: AIOKafkaAdminClient) -> None:
    topic = await _create_topic(admin, partitions=3)
    try:
        assert topic in await admin.list_topics()
        described = await _described_when_ready(admin, topic)
        partitions = sorted(described["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in partitions] == [0, 1, 2]
        assert all(p["leader"] == 1 and p["replicas"] == [1] for p in partitions)
    finally:
        await admin.delete_topics([topic])


async def test_keyed_messages_come_back_in_order_and_commits_stick(
    admin: AIOKafkaAdminClient, kafka_bootstrap_servers: str
) -> None:
    topic = await _create_topic(admin, partitions=3)
    group = _unique("group")
    keys = [f"order-{i}" for i in range(6)]
    count = 60
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, acks="all", enable_idempotence=True)
        await producer.start()
        sent: dict[str, list[str]] = defaultdict(list)
        end_offsets: dict[int, int] = defaultdict(int)
        try:
            for i in range(count):
                key = keys[i % len(keys)]
                value = f"{key}:{i}"
                metadata = await producer.send_and_wait(topic, value.encode(), key=key.encode())
                sent[key].append(value)
                partition = metadata.partition
                end_offsets[partition] = max(end_offsets[partition], metadata.offset + 1)
        finally:
            await producer.stop()
        assert sum(end_offsets.values()) == count, "every acknowledged send got its own offset"

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        received: dict[str, list[str]] = defaultdict(list)
        consumed = 0
        try:
            async with asyncio.timeout(60):
                while consumed < count:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batches.items():
                        for record in records:
                            assert record.key is not None
                            assert record.value is not None
                            received[record.key.decode()].append(record.value.decode())
                        consumed += len(records)
                        await consumer.commit({tp: records[-1].offset + 1})
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()

        assert consumed == count
        assert received == sent, "each key's messages arrive in the order they were produced"
        assert committed == dict(end_offsets)
        stored = await admin.list_consumer_group_offsets(group)
        kept = {tp.partition: meta.offset for tp, meta in stored.items() if tp.topic == topic}
        assert kept == dict(end_offsets), "committed offsets outlive the consumer"
    finally:
        await admin.delete_topics([topic])


async def test_producing_to_a_missing_topic_fails_and_creates_nothing(
    admin: AIOKafkaAdminClient, kafka_bootstrap_servers: str
) -> None:
    topic = _unique("missing")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=3_000,
    )
    await producer.start()
    try:
        with pytest.raises((UnknownTopicOrPartitionError, KafkaTimeoutError)):
            await producer.send_and_wait(topic, b"nobody listens")
    finally:
        await producer.stop()
    assert topic not in await admin.list_topics(), "auto.create.topics.enable must be false"
