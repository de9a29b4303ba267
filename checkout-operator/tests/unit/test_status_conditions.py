"""Status conditions per the Kubernetes API conventions."""

from __future__ import annotations

from checkout_operator import status as st
from checkout_operator.outcome import Outcome


def test_transition_time_is_kept_while_the_status_does_not_change() -> None:
    first = st.merge_conditions([], [st.condition("TopicsReady", "True", "TopicsReady", "ok", 1, "T1")])
    second = st.merge_conditions(first, [st.condition("TopicsReady", "True", "TopicsReady", "still ok", 2, "T2")])
    assert second[0]["lastTransitionTime"] == "T1"
    assert second[0]["message"] == "still ok"
    assert second[0]["observedGeneration"] == 2
    third = st.merge_conditions(second, [st.condition("TopicsReady", "False", "KafkaUnreachable", "down", 2, "T3")])
    assert third[0]["lastTransitionTime"] == "T3"


def test_conditions_are_ordered_and_dropped_types_disappear() -> None:
    merged = st.merge_conditions(
        [st.condition("Paused", "True", "PausedByAnnotation", "", 1, "T")],
        [
            st.condition("WorkloadsReady", "True", "r", "", 1, "T"),
            st.condition("Ready", "True", "r", "", 1, "T"),
            st.condition("TopicsReady", "True", "r", "", 1, "T"),
        ],
        drop=("Paused",),
    )
    assert [c["type"] for c in merged] == ["Ready", "TopicsReady", "WorkloadsReady"]


def test_ready_names_the_first_failing_concern_and_every_cause() -> None:
    concerns = [
        st.from_outcome("TopicsReady", Outcome(False, "KafkaUnreachable", "cannot reach Kafka"), 3, "T"),
        st.from_outcome("DatabaseReady", Outcome(True, "DatabaseReady", "ok"), 3, "T"),
        st.from_outcome("WorkloadsReady", Outcome(False, "WorkloadsProgressing", "waiting"), 3, "T"),
    ]
    ready = st.ready_condition(concerns, 3, "T")
    assert ready["status"] == "False"
    assert ready["reason"] == "KafkaUnreachable"
    assert ready["message"] == "TopicsReady: cannot reach Kafka; WorkloadsReady: waiting"
    all_ok = [{**c, "status": "True"} for c in concerns]
    assert st.ready_condition(all_ok, 3, "T")["status"] == "True"


def test_service_entries_join_database_and_workload_detail() -> None:
    entries = st.service_entries(
        ("inventory", "payment", "cart"),
        ("inventory", "payment"),
        [
            {
                "service": "inventory",
                "schema": "s_inventory",
                "role": "d_s_inventory",
                "state": "Ready",
                "secretName": "x",
            },
            {"service": "payment", "schema": "s_payment", "role": "d_s_payment", "state": "Error", "message": "denied"},
        ],
        [
            {"service": "inventory", "replicas": 2, "readyReplicas": 2, "ready": True},
            {"service": "payment", "replicas": 1, "readyReplicas": 0, "ready": False, "message": "0/1"},
        ],
    )
    assert [e["name"] for e in entries] == ["inventory", "payment"]
    assert entries[0] == {
        "name": "inventory",
        "enabled": True,
        "schema": "s_inventory",
        "role": "d_s_inventory",
        "database": "Ready",
        "databaseSecret": "x",
        "replicas": 2,
        "readyReplicas": 2,
        "ready": True,
    }
    assert entries[1]["ready"] is False
    assert entries[1]["message"] == "denied; 0/1"


def test_topic_entries_mark_refusals_not_ready() -> None:
    entries = st.topic_entries(
        [
            {"name": "p.dlq", "partitions": 1, "replicationFactor": 1, "state": "Ready"},
            {"name": "p.order-command", "partitions": 6, "state": "ShrinkRefused", "message": "6 > 3"},
        ]
    )
    assert entries[0]["ready"] is True
    assert entries[1] == {
        "name": "p.order-command",
        "state": "ShrinkRefused",
        "partitions": 6,
        "message": "6 > 3",
        "ready": False,
    }
