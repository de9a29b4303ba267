"""The orchestrator's settings: its own defaults, the saga policy from the environment, bounds."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from pydantic import ValidationError

from checkout_kit.migrations import script_heads
from checkout_orchestrator.config import OrchestratorSettings
from checkout_orchestrator.domain.rules import Policy
from checkout_orchestrator.main import MIGRATIONS, SPEC


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        prefix = name.upper().split("__", 1)[0]
        if prefix in {"DATABASE", "KAFKA", "HTTP", "SAGA", "DEADLINES", "OUTBOX"} or name.upper() == "CONSUMER_GROUP":
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults() -> None:
    settings = OrchestratorSettings()
    assert settings.service_name == "checkout-orchestrator"
    assert settings.database.db_schema == "orchestrator"
    assert settings.http.port == 8101
    assert settings.group_id() == "checkout.checkout-orchestrator"
    assert settings.saga.policy() == Policy(
        step_timeout=dt.timedelta(seconds=10),
        max_attempts=3,
        compensation_timeout=dt.timedelta(seconds=10),
        max_compensation_attempts=30,
    )
    assert settings.deadlines.scan_interval_s == 0.25
    assert settings.deadlines.batch_size == 100


def test_a_database_url_from_the_environment_keeps_the_orchestrator_schema(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE__URL", "postgresql://orch:pw@db:5432/checkout")
    clean_env.setenv("HTTP__HOST", "0.0.0.0")  # noqa: S104 - a container's listener
    settings = OrchestratorSettings()
    assert settings.database.db_schema == "orchestrator"
    assert settings.http.port == 8101


def test_the_saga_policy_and_the_scanner_come_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SAGA__STEP_TIMEOUT_S", "2.5")
    clean_env.setenv("SAGA__MAX_ATTEMPTS", "5")
    clean_env.setenv("SAGA__COMPENSATION_TIMEOUT_S", "4")
    clean_env.setenv("SAGA__MAX_COMPENSATION_ATTEMPTS", "7")
    clean_env.setenv("DEADLINES__SCAN_INTERVAL_S", "1")
    clean_env.setenv("DEADLINES__BATCH_SIZE", "10")
    clean_env.setenv("CONSUMER_GROUP", "blue.checkout-orchestrator")
    settings = OrchestratorSettings()
    assert settings.saga.policy() == Policy(
        step_timeout=dt.timedelta(seconds=2.5),
        max_attempts=5,
        compensation_timeout=dt.timedelta(seconds=4),
        max_compensation_attempts=7,
    )
    assert (settings.deadlines.scan_interval_s, settings.deadlines.batch_size) == (1.0, 10)
    assert settings.group_id() == "blue.checkout-orchestrator"


def test_the_consumer_group_is_scoped_by_the_topic_prefix(clean_env: pytest.MonkeyPatch) -> None:
    # Two platforms on one Kafka cluster (prefixes shop and outlet) must not share a group.
    clean_env.setenv("KAFKA__TOPIC_PREFIX", "outlet")
    assert OrchestratorSettings().group_id() == "outlet.checkout-orchestrator"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGA__STEP_TIMEOUT_S", "0"),
        ("SAGA__MAX_ATTEMPTS", "0"),
        ("SAGA__MAX_COMPENSATION_ATTEMPTS", "0"),
        ("DEADLINES__SCAN_INTERVAL_S", "-1"),
        ("CONSUMER_GROUP", "no spaces"),
    ],
)
def test_nonsense_is_refused(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        OrchestratorSettings()


def test_the_service_runs_its_components_relay_first() -> None:
    assert SPEC.kafka
    assert list(SPEC.components) == ["outbox relay", "saga consumer", "deadline scanner", "saga gauges"]


def test_migrations_have_one_head() -> None:
    assert len(script_heads(MIGRATIONS)) == 1
