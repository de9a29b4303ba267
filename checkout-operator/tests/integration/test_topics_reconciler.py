"""The topics reconciler against the real local Kafka: create, converge, refuse, repair drift, delete."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from checkout_operator.outcome import Outcome
from checkout_operator.reconcilers.topics import delete_topics, reconcile_topics
from checkout_operator.settings import KafkaClientSettings
from checkout_operator.spec import TOPICS, KafkaSpec

pytestmark = pytest.mark.integration

CLIENT = KafkaClientSettings(timeout_s=10)
T = TypeVar("T")


@dataclass(frozen=True)
class Described:
    partitions: int
    replication_factor: int
    dynamic_configs: dict[str, str]


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[Any]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def describe(bootstrap: str, topic: str) -> Described:
    """The topic as Kafka has it, read with the test's own client."""
    async with admin_client(bootstrap) as client:
        [metadata] = [t for t in await client.describe_topics() if t["topic"] == topic]
        [response] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [resource] = response.to_object()["resources"]
    return Described(
        partitions=len(metadata["partitions"]),
        replication_factor=len(metadata["partitions"][0]["replicas"]),
        dynamic_configs={
            e["config_names"]: e["config_value"] for e in resource["config_entries"] if e["config_source"] == 1
        },
    )


async def existing_topics(bootstrap: str, prefix: str) -> set[str]:
    async with admin_client(bootstrap) as client:
        return {name for name in await client.list_topics() if name.startswith(f"{prefix}.")}


async def eventually(attempt: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 20) -> T:
    """Retry ``attempt`` until ``done`` holds: Kafka deletes topics asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await attempt()
        if done(result) or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


@pytest.fixture
async def prefix(kafka_bootstrap_servers: str) -> AsyncIterator[str]:
    """A topic prefix of this test alone; its topics are deleted afterwards."""
    name = f"it-topics-{uuid.uuid4().hex[:10]}"
    yield name
    async with admin_client(kafka_bootstrap_servers) as client:
        leftovers = [topic for topic in await client.list_topics() if topic.startswith(f"{name}.")]
        if leftovers:
            await client.delete_topics(leftovers)


def spec(bootstrap: str, prefix: str, **fields: Any) -> KafkaSpec:
    return KafkaSpec.model_validate({"bootstrapServers": [bootstrap], "topicPrefix": prefix, **fields})


def reasons(outcome: Outcome) -> list[str]:
    return [notice.reason for notice in outcome.notices]


async def test_first_pass_creates_the_five_topics_with_partitions_and_configs(
    kafka_bootstrap_servers: str, prefix: str
) -> None:
    kafka = spec(
        kafka_bootstrap_servers,
        prefix,
        defaults={"partitions": 2, "retentionMs": 86_400_000},
        topics={
            "checkout-events": {"partitions": 6},
            "dlq": {"partitions": 1, "config": {"retention.ms": "-1", "cleanup.policy": "compact,delete"}},
        },
    )

    outcome = await reconcile_topics(kafka, CLIENT)

    assert outcome.ready, outcome.message
    assert outcome.reason == "TopicsReady"
    assert reasons(outcome) == ["TopicCreated"] * 5
    assert f"{prefix}.checkout-events" in outcome.notices[0].message
    assert [entry["name"] for entry in outcome.detail] == [f"{prefix}.{key}" for key in TOPICS]
    assert {entry["state"] for entry in outcome.detail} == {"Created"}

    events = await describe(kafka_bootstrap_servers, f"{prefix}.checkout-events")
    assert events.partitions == 6
    assert events.replication_factor == 1
    assert events.dynamic_configs == {"min.insync.replicas": "1", "retention.ms": "86400000"}
    inventory = await describe(kafka_bootstrap_servers, f"{prefix}.inventory-command")
    assert inventory.partitions == 2
    # The per-topic override wins over the defaults.
    dlq = await describe(kafka_bootstrap_servers, f"{prefix}.dlq")
    assert dlq.partitions == 1
    assert dlq.dynamic_configs == {"min.insync.replicas": "1", "retention.ms": "-1", "cleanup.policy": "compact,delete"}


async def test_second_pass_changes_nothing(kafka_bootstrap_servers: str, prefix: str) -> None:
    # "compact, delete" comes back from Kafka as "compact,delete": that must not count as drift.
    kafka = spec(kafka_bootstrap_servers, prefix, topics={"dlq": {"config": {"cleanup.policy": "compact, delete"}}})
    assert (await reconcile_topics(kafka, CLIENT)).ready

    outcome = await reconcile_topics(kafka, CLIENT)

    assert outcome.ready, outcome.message
    assert outcome.reason == "TopicsReady"
    assert outcome.notices == []
    assert {entry["state"] for entry in outcome.detail} == {"Ready"}
    assert [entry["partitions"] for entry in outcome.detail] == [3] * 5


async def test_partitions_grow_when_the_spec_raises_them(kafka_bootstrap_servers: str, prefix: str) -> None:
    assert (await reconcile_topics(spec(kafka_bootstrap_servers, prefix), CLIENT)).ready

    outcome = await reconcile_topics(
        spec(kafka_bootstrap_servers, prefix, topics={"checkout-events": {"partitions": 6}}), CLIENT
    )

    assert outcome.ready, outcome.message
    assert reasons(outcome) == ["TopicPartitionsIncreased"]
    assert "from 3 to 6" in outcome.notices[0].message
    events = outcome.detail[0]
    assert (events["name"], events["partitions"], events["state"]) == (f"{prefix}.checkout-events", 6, "Updated")
    assert (await describe(kafka_bootstrap_servers, f"{prefix}.checkout-events")).partitions == 6


async def test_a_topic_with_more_partitions_than_wanted_is_refused_not_shrunk(
    kafka_bootstrap_servers: str, prefix: str
) -> None:
    kafka = spec(kafka_bootstrap_servers, prefix)
    assert (await reconcile_topics(kafka, CLIENT)).ready
    async with admin_client(kafka_bootstrap_servers) as client:
        await client.create_partitions({f"{prefix}.payment-command": NewPartitions(5)})
    # The broker serves the change a moment after the controller committed it.
    await eventually(
        lambda: describe(kafka_bootstrap_servers, f"{prefix}.payment-command"), lambda d: d.partitions == 5
    )

    outcome = await reconcile_topics(kafka, CLIENT)

    assert not outcome.ready
    assert outcome.reason == "PartitionShrinkRefused"
    assert f"{prefix}.payment-command has 5 partitions but the spec wants 3" in outcome.message
    assert "Kafka cannot reduce partitions" in outcome.message
    assert not outcome.retry
    assert [(n.type, n.reason) for n in outcome.notices] == [("Warning", "PartitionShrinkRefused")]
    payment = outcome.detail[TOPICS.index("payment-command")]
    assert (payment["state"], payment["partitions"]) == ("ShrinkRefused", 5)
    assert (await describe(kafka_bootstrap_servers, f"{prefix}.payment-command")).partitions == 5


async def test_a_replication_factor_change_is_refused(kafka_bootstrap_servers: str, prefix: str) -> None:
    assert (await reconcile_topics(spec(kafka_bootstrap_servers, prefix), CLIENT)).ready

    outcome = await reconcile_topics(
        spec(kafka_bootstrap_servers, prefix, topics={"order-command": {"replicationFactor": 2}}), CLIENT
    )

    assert not outcome.ready
    assert outcome.reason == "ReplicationFactorChangeRefused"
    assert "replication factor 1 but the spec wants 2" in outcome.message
    assert outcome.detail[TOPICS.index("order-command")]["state"] == "ReplicationChangeRefused"


async def test_a_topic_deleted_by_hand_comes_back(kafka_bootstrap_servers: str, prefix: str) -> None:
    kafka = spec(kafka_bootstrap_servers, prefix)
    assert (await reconcile_topics(kafka, CLIENT)).ready
    async with admin_client(kafka_bootstrap_servers) as client:
        await client.delete_topics([f"{prefix}.inventory-command"])
    await eventually(
        lambda: existing_topics(kafka_bootstrap_servers, prefix), lambda names: len(names) == 4, timeout_s=10
    )

    # Right after a deletion Kafka may still refuse the name; the reconciler says so and asks for a retry.
    outcome = await eventually(lambda: reconcile_topics(kafka, CLIENT), lambda outcome: outcome.ready)

    assert outcome.ready, outcome.message
    assert reasons(outcome) == ["TopicCreated"]
    assert f"{prefix}.inventory-command" in outcome.notices[0].message
    assert outcome.detail[TOPICS.index("inventory-command")]["state"] == "Created"
    assert (await describe(kafka_bootstrap_servers, f"{prefix}.inventory-command")).partitions == 3


async def test_a_config_changed_by_hand_is_reverted(kafka_bootstrap_servers: str, prefix: str) -> None:
    kafka = spec(kafka_bootstrap_servers, prefix, topics={"dlq": {"config": {"retention.ms": "-1"}}})
    assert (await reconcile_topics(kafka, CLIENT)).ready
    dlq = f"{prefix}.dlq"
    async with admin_client(kafka_bootstrap_servers) as client:
        await client.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    dlq,
                    {"min.insync.replicas": "1", "retention.ms": "1000", "segment.ms": "60000"},
                )
            ]
        )
    await eventually(lambda: describe(kafka_bootstrap_servers, dlq), lambda d: "segment.ms" in d.dynamic_configs)

    outcome = await reconcile_topics(kafka, CLIENT)

    assert outcome.ready, outcome.message
    [notice] = outcome.notices
    assert (notice.type, notice.reason) == ("Warning", "TopicConfigReverted")
    assert (
        notice.message
        == f"{dlq}: retention.ms 1000 -> -1 (reverted to spec); segment.ms 60000 -> default (not in spec)"
    )
    assert outcome.detail[TOPICS.index("dlq")]["state"] == "Updated"
    described = await describe(kafka_bootstrap_servers, dlq)
    assert described.dynamic_configs == {"min.insync.replicas": "1", "retention.ms": "-1"}
    assert (await reconcile_topics(kafka, CLIENT)).notices == []


async def test_a_config_kafka_rejects_is_reported_with_kafkas_reason(kafka_bootstrap_servers: str, prefix: str) -> None:
    kafka = spec(kafka_bootstrap_servers, prefix, topics={"dlq": {"config": {"retention.ms": "forever"}}})

    outcome = await reconcile_topics(kafka, CLIENT)

    assert not outcome.ready
    assert outcome.reason == "TopicConfigRejected"
    assert not outcome.retry
    assert f"{prefix}.dlq" in outcome.message
    assert "retention.ms" in outcome.message
    assert "forever" in outcome.message  # Kafka's own text: "Invalid value forever for configuration …"
    assert outcome.detail[TOPICS.index("dlq")]["state"] == "Error"
    # The other topics are not held back by one bad config.
    assert reasons(outcome) == ["TopicCreated"] * 4 + ["TopicConfigRejected"]
    assert await existing_topics(kafka_bootstrap_servers, prefix) == {f"{prefix}.{key}" for key in TOPICS[:-1]}


async def test_unreachable_kafka_is_reported_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kafka = KafkaSpec(bootstrap_servers=[f"127.0.0.1:{port}"], topic_prefix="unreachable")

    outcome = await reconcile_topics(kafka, KafkaClientSettings(timeout_s=2))

    assert not outcome.ready
    assert outcome.reason == "KafkaUnreachable"
    assert outcome.retry
    assert outcome.message.startswith(f"cannot reach Kafka at 127.0.0.1:{port} within 2 s: ")
    assert outcome.message.endswith("; retrying")

    deleted = await delete_topics(kafka, KafkaClientSettings(timeout_s=2))

    assert (deleted.ready, deleted.reason, deleted.retry) == (False, "KafkaUnreachable", True)


async def test_delete_topics_removes_the_five_topics(kafka_bootstrap_servers: str, prefix: str) -> None:
    kafka = spec(kafka_bootstrap_servers, prefix)
    assert (await reconcile_topics(kafka, CLIENT)).ready

    outcome = await delete_topics(kafka, CLIENT)

    assert outcome.ready, outcome.message
    assert outcome.reason == "TopicsDeleted"
    remaining = await eventually(lambda: existing_topics(kafka_bootstrap_servers, prefix), lambda names: not names)
    assert remaining == set()
    again = await delete_topics(kafka, CLIENT)
    assert (again.ready, again.reason) == (True, "TopicsDeleted")
