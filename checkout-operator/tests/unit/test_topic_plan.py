"""Planning of the topics reconciler: observed vs desired → actions, status entries, Events, condition."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from checkout_operator.outcome import Notice
from checkout_operator.reconcilers.topics import (
    ConfigChange,
    ObservedTopic,
    Problem,
    TopicPlan,
    canonical_config_value,
    config_drift,
    dynamic_configs,
    plan_topic,
    settle_topic,
    summarise,
)
from checkout_operator.spec import DesiredTopic, KafkaSpec, desired_topics

DLQ = DesiredTopic(
    key="dlq",
    name="checkout.dlq",
    partitions=3,
    replication_factor=1,
    configs={"min.insync.replicas": "1", "retention.ms": "-1"},
)
DLQ_AS_WANTED = ObservedTopic(
    name="checkout.dlq",
    partitions=3,
    replication_factor=1,
    dynamic_configs={"min.insync.replicas": "1", "retention.ms": "-1"},
)


def desired(**changes: Any) -> DesiredTopic:
    return replace(DLQ, **changes)


def observed(**changes: Any) -> ObservedTopic:
    return replace(DLQ_AS_WANTED, **changes)


def reasons(notices: tuple[Notice, ...] | list[Notice]) -> list[str]:
    return [notice.reason for notice in notices]


# --- plan_topic -------------------------------------------------------------------------------------


def test_missing_topic_is_created_with_its_configs_and_nothing_else() -> None:
    plan = plan_topic(desired(), None)

    assert plan == TopicPlan(desired=desired(), observed=None, create=True)
    assert plan.has_actions


def test_topic_as_wanted_needs_nothing() -> None:
    plan = plan_topic(desired(), observed())

    assert not plan.has_actions
    assert plan.refusals == ()
    report = settle_topic(plan, frozenset())
    assert report.detail == {
        "name": "checkout.dlq",
        "partitions": 3,
        "replicationFactor": 1,
        "state": "Ready",
        "ready": True,
    }
    assert report.notices == ()
    assert report.problems == ()


def test_fewer_partitions_than_wanted_grow() -> None:
    plan = plan_topic(desired(partitions=6), observed(partitions=3))

    assert plan.grow_to == 6
    assert not plan.create
    assert plan.refusals == ()


def test_more_partitions_than_wanted_are_left_alone_and_refused() -> None:
    plan = plan_topic(desired(partitions=3), observed(partitions=6))

    assert plan.grow_to is None
    assert not plan.has_actions
    [refusal] = plan.refusals
    assert refusal.reason == "PartitionShrinkRefused"
    assert "checkout.dlq has 6 partitions but the spec wants 3" in refusal.message
    assert "Kafka cannot reduce partitions" in refusal.message
    assert "recreate the topic by hand" in refusal.message
    assert not refusal.retry


def test_replication_factor_change_is_refused() -> None:
    plan = plan_topic(desired(replication_factor=3), observed(replication_factor=1))

    assert not plan.has_actions
    [refusal] = plan.refusals
    assert refusal.reason == "ReplicationFactorChangeRefused"
    assert "replication factor 1 but the spec wants 3" in refusal.message
    assert "reassign" in refusal.message


def test_refusals_do_not_stop_config_repair() -> None:
    plan = plan_topic(
        desired(partitions=3, replication_factor=3),
        observed(partitions=6, dynamic_configs={"min.insync.replicas": "1", "retention.ms": "1000"}),
    )

    assert [refusal.reason for refusal in plan.refusals] == [
        "PartitionShrinkRefused",
        "ReplicationFactorChangeRefused",
    ]
    assert plan.config_changes == (ConfigChange("retention.ms", "1000", "-1"),)


# --- config drift -----------------------------------------------------------------------------------


def test_changed_value_is_drift() -> None:
    changes = config_drift({"retention.ms": "-1"}, {"retention.ms": "1000"})

    assert changes == (ConfigChange("retention.ms", "1000", "-1"),)
    assert changes[0].describe() == "retention.ms 1000 -> -1 (reverted to spec)"


def test_missing_desired_key_is_drift() -> None:
    changes = config_drift({"retention.ms": "-1", "min.insync.replicas": "1"}, {"min.insync.replicas": "1"})

    assert changes == (ConfigChange("retention.ms", None, "-1"),)
    assert changes[0].describe() == "retention.ms default -> -1 (set from spec)"


def test_key_set_by_hand_that_the_spec_does_not_own_is_drift() -> None:
    changes = config_drift({"retention.ms": "-1"}, {"retention.ms": "-1", "segment.ms": "60000"})

    assert changes == (ConfigChange("segment.ms", "60000", None),)
    assert changes[0].describe() == "segment.ms 60000 -> default (not in spec)"


def test_drift_lists_spec_keys_then_foreign_keys_each_sorted() -> None:
    changes = config_drift(
        {"retention.ms": "-1", "cleanup.policy": "compact"},
        {"retention.ms": "5", "segment.ms": "1", "flush.ms": "2"},
    )

    assert [change.key for change in changes] == ["cleanup.policy", "retention.ms", "flush.ms", "segment.ms"]


@pytest.mark.parametrize(
    ("spec_value", "kafka_value"),
    [
        ("compact, delete", "compact,delete"),
        ("True", "true"),
        ("01", "1"),
        ("+100", "100"),
        ("0.50", "0.5"),
        (" -1 ", "-1"),
    ],
)
def test_values_kafka_normalises_are_not_drift(spec_value: str, kafka_value: str) -> None:
    assert canonical_config_value(spec_value) == canonical_config_value(kafka_value)
    assert config_drift({"k": spec_value}, {"k": kafka_value}) == ()


def test_plan_with_only_drift_changes_configs() -> None:
    plan = plan_topic(desired(), observed(dynamic_configs={"min.insync.replicas": "1", "retention.ms": "1000"}))

    assert plan.has_actions
    assert plan.grow_to is None
    assert plan.config_changes == (ConfigChange("retention.ms", "1000", "-1"),)


# --- reading DescribeConfigs ------------------------------------------------------------------------


def test_dynamic_configs_keeps_only_configs_set_on_the_topic() -> None:
    resource = {
        "config_entries": [
            {"config_names": "retention.ms", "config_value": "-1", "config_source": 1},
            {"config_names": "min.insync.replicas", "config_value": "1", "config_source": 3},
            {"config_names": "segment.ms", "config_value": "604800000", "config_source": 5},
            {"config_names": "cleanup.policy", "config_value": "delete", "config_source": 4},
        ]
    }

    assert dynamic_configs(resource) == {"retention.ms": "-1"}


def test_dynamic_configs_of_a_v0_response_uses_is_default() -> None:
    resource = {
        "config_entries": [
            {"config_names": "retention.ms", "config_value": "-1", "is_default": False},
            {"config_names": "segment.ms", "config_value": "604800000", "is_default": True},
        ]
    }

    assert dynamic_configs(resource) == {"retention.ms": "-1"}


# --- settle_topic -----------------------------------------------------------------------------------


def test_created_topic_reports_created_and_one_normal_event() -> None:
    report = settle_topic(plan_topic(desired(partitions=6), None), frozenset({"create"}))

    assert report.detail["state"] == "Created"
    assert report.detail["partitions"] == 6
    assert report.detail["replicationFactor"] == 1
    assert report.detail["ready"] is True
    [notice] = report.notices
    assert notice.type == "Normal"
    assert notice.reason == "TopicCreated"
    assert "checkout.dlq" in notice.message
    assert "6 partitions" in notice.message
    assert "replication factor 1" in notice.message


def test_grown_topic_reports_updated_with_the_new_count() -> None:
    report = settle_topic(plan_topic(desired(partitions=6), observed(partitions=3)), frozenset({"grow"}))

    assert report.detail["state"] == "Updated"
    assert report.detail["partitions"] == 6
    [notice] = report.notices
    assert (notice.type, notice.reason) == ("Normal", "TopicPartitionsIncreased")
    assert "from 3 to 6" in notice.message


def test_reverted_configs_report_each_key_old_and_new() -> None:
    plan = plan_topic(desired(), observed(dynamic_configs={"retention.ms": "1000", "segment.ms": "60000"}))
    report = settle_topic(plan, frozenset({"configs"}))

    assert report.detail["state"] == "Updated"
    [notice] = report.notices
    assert (notice.type, notice.reason) == ("Warning", "TopicConfigReverted")
    assert notice.message == (
        "checkout.dlq: min.insync.replicas default -> 1 (set from spec); "
        "retention.ms 1000 -> -1 (reverted to spec); segment.ms 60000 -> default (not in spec)"
    )


def test_shrink_refused_topic_reports_observed_partitions_and_a_warning() -> None:
    report = settle_topic(plan_topic(desired(partitions=3), observed(partitions=6)), frozenset())

    assert report.detail["state"] == "ShrinkRefused"
    assert report.detail["partitions"] == 6
    assert report.detail["ready"] is False
    assert "Kafka cannot reduce partitions" in report.detail["message"]
    assert [(n.type, n.reason) for n in report.notices] == [("Warning", "PartitionShrinkRefused")]
    assert [p.reason for p in report.problems] == ["PartitionShrinkRefused"]


def test_replication_change_refused_topic_reports_its_state() -> None:
    report = settle_topic(plan_topic(desired(replication_factor=3), observed()), frozenset())

    assert report.detail["state"] == "ReplicationChangeRefused"
    assert report.detail["replicationFactor"] == 1
    assert reasons(report.notices) == ["ReplicationFactorChangeRefused"]


def test_failed_step_reports_error_but_keeps_the_steps_that_succeeded() -> None:
    plan = plan_topic(desired(partitions=6), observed(partitions=3, dynamic_configs={"retention.ms": "1"}))
    failure = Problem("TopicConfigRejected", "Kafka rejected the config of checkout.dlq (retention.ms): …", False)
    report = settle_topic(plan, frozenset({"grow"}), failure)

    assert report.detail["state"] == "Error"
    assert report.detail["partitions"] == 6
    assert report.detail["message"] == failure.message
    assert reasons(report.notices) == ["TopicPartitionsIncreased", "TopicConfigRejected"]
    assert report.problems == (failure,)


def test_failed_creation_reports_no_partitions() -> None:
    failure = Problem("KafkaError", "creating checkout.dlq failed: …; retrying", True)
    report = settle_topic(plan_topic(desired(), None), frozenset(), failure)

    assert report.detail["partitions"] == 0
    assert report.detail["replicationFactor"] == 0
    assert report.detail["state"] == "Error"
    assert report.notices == ()


# --- summarise --------------------------------------------------------------------------------------


def test_all_topics_as_wanted_are_ready_with_a_short_message() -> None:
    kafka = KafkaSpec(bootstrap_servers=["127.0.0.1:19092"])
    reports = [
        settle_topic(plan_topic(topic, observed(name=topic.name, dynamic_configs=topic.configs)), frozenset())
        for topic in desired_topics(kafka)
    ]
    outcome = summarise(reports)

    assert outcome.ready
    assert outcome.reason == "TopicsReady"
    assert outcome.message.startswith("5 topics ready (partitions: checkout.checkout-events 3, ")
    assert outcome.notices == []
    assert not outcome.retry
    assert [entry["name"] for entry in outcome.detail] == [topic.name for topic in desired_topics(kafka)]
    json.dumps(outcome.detail)


def test_the_most_fundamental_problem_names_the_condition() -> None:
    shrink = settle_topic(plan_topic(desired(partitions=3), observed(partitions=6)), frozenset())
    rejected = settle_topic(
        plan_topic(desired(name="checkout.order-command"), None),
        frozenset(),
        Problem("TopicConfigRejected", "Kafka rejected the config of checkout.order-command", False),
    )
    outcome = summarise([shrink, rejected])

    assert not outcome.ready
    assert outcome.reason == "TopicConfigRejected"
    assert outcome.message.startswith("Kafka rejected the config of checkout.order-command")
    assert "1 more problem" in outcome.message
    assert not outcome.retry
    assert reasons(outcome.notices) == ["PartitionShrinkRefused", "TopicConfigRejected"]


def test_a_transient_problem_asks_for_a_retry() -> None:
    unreachable = Problem("KafkaUnreachable", "cannot reach Kafka at 127.0.0.1:1 within 1 s: …; retrying", True)
    reports = [
        settle_topic(plan_topic(desired(partitions=3), observed(partitions=6)), frozenset()),
        settle_topic(plan_topic(desired(name="checkout.a"), None), frozenset(), unreachable),
        settle_topic(plan_topic(desired(name="checkout.b"), None), frozenset(), unreachable),
    ]
    outcome = summarise(reports)

    assert outcome.reason == "KafkaUnreachable"
    assert outcome.retry
    # The shared connection problem counts once; the shrink refusal is the other one.
    assert outcome.message.endswith("(and 1 more problem(s), see the topics in the status)")
