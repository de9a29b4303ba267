"""The spec model: defaults as the CRD has them, and the names every reconciler derives from the spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from checkout_operator.spec import SERVICES, TOPICS, PlatformSpec, desired_topics, service_database, workload_name

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "checkoutplatform.yaml"


def minimal(**overrides: object) -> PlatformSpec:
    spec = {
        "kafka": {"bootstrapServers": ["k:9092"]},
        "postgres": {"host": "db", "database": "shop", "adminSecretRef": {"name": "admin"}},
        **overrides,
    }
    return PlatformSpec.parse(spec)


def test_the_annotated_example_parses() -> None:
    spec = PlatformSpec.parse(yaml.safe_load(EXAMPLE.read_text())["spec"])
    assert spec.enabled_services() == ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order")
    assert spec.service("gateway-bff").replicas == 2
    assert spec.tracing.sampling_ratio == 0.5
    assert spec.postgres.admin_secret_ref.password_key == "password"


def test_defaults_match_the_crd() -> None:
    spec = minimal()
    assert spec.kafka.topic_prefix == "checkout"
    assert spec.kafka.defaults.partitions == 3
    assert spec.postgres.port == 5432
    assert spec.deletion_policy == "Retain"
    assert spec.enabled_services() == SERVICES
    assert spec.service("cart").replicas == 1


def test_unknown_service_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="unknown service"):
        minimal().service("shipping")


def test_desired_topics_resolve_defaults_and_overrides() -> None:
    spec = minimal(
        kafka={
            "bootstrapServers": ["k:9092"],
            "topicPrefix": "shop",
            "defaults": {"partitions": 4, "minInsyncReplicas": 1, "retentionMs": 1000},
            "topics": {"dlq": {"partitions": 1, "config": {"retention.ms": "-1", "cleanup.policy": "delete"}}},
        }
    )
    topics = {t.key: t for t in desired_topics(spec.kafka)}
    assert tuple(topics) == TOPICS
    assert topics["checkout-events"].name == "shop.checkout-events"
    assert topics["checkout-events"].partitions == 4
    assert topics["checkout-events"].configs == {"min.insync.replicas": "1", "retention.ms": "1000"}
    assert topics["dlq"].partitions == 1
    assert topics["dlq"].configs == {"min.insync.replicas": "1", "retention.ms": "-1", "cleanup.policy": "delete"}


def test_retention_is_left_to_the_broker_when_unset() -> None:
    assert all("retention.ms" not in t.configs for t in desired_topics(minimal().kafka))


def test_service_database_names_are_identifiers_scoped_by_prefix_and_database() -> None:
    spec = minimal(kafka={"bootstrapServers": ["k:9092"], "topicPrefix": "Team-A.shop"})
    db = service_database("web", spec, "order")
    assert db.schema == "team_a_shop_orders"
    assert db.role == "shop_team_a_shop_orders"
    assert db.secret_name == "web-order-database"
    assert workload_name("web", "checkout-orchestrator") == "web-checkout-orchestrator"


def test_long_names_are_clipped_to_63_bytes_and_stay_distinct() -> None:
    long_prefix = "p" * 150
    a = service_database("x", minimal(kafka={"bootstrapServers": ["k:9092"], "topicPrefix": long_prefix + "a"}), "cart")
    b = service_database("x", minimal(kafka={"bootstrapServers": ["k:9092"], "topicPrefix": long_prefix + "b"}), "cart")
    assert len(a.schema) == len(a.role) == 63
    assert a.schema != b.schema
    assert a.role != b.role


def test_a_prefix_starting_with_a_digit_still_gives_an_identifier() -> None:
    db = service_database("x", minimal(kafka={"bootstrapServers": ["k:9092"], "topicPrefix": "1shop"}), "cart")
    assert db.schema == "p1shop_cart"
