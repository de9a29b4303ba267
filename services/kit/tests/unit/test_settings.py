"""Settings come from the environment, nested with ``__``; secrets never show in reprs or dumps."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from checkout_kit.settings import ServiceSettings

SECRET = "s3cret-pa55word"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting of the surrounding shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().split("__", 1)[0] in {"DATABASE", "KAFKA", "HTTP", "OUTBOX"} or name.upper() in {
            "SERVICE_NAME",
            "SHUTDOWN_GRACE_S",
            "LOG_LEVEL",
        }:
            monkeypatch.delenv(name)
    return monkeypatch


def test_nested_blocks_are_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SERVICE_NAME", "inventory")
    clean_env.setenv("DATABASE__URL", f"postgresql://inventory:{SECRET}@db.internal:5432/checkout")
    clean_env.setenv("DATABASE__SCHEMA", "inventory")
    clean_env.setenv("KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    clean_env.setenv("KAFKA__TOPIC_PREFIX", "prod")
    clean_env.setenv("HTTP__PORT", "9001")
    clean_env.setenv("HTTP__MAX_BODY_BYTES", "2048")
    clean_env.setenv("SHUTDOWN_GRACE_S", "7.5")
    clean_env.setenv("LOG_LEVEL", "DEBUG")

    settings = ServiceSettings()

    assert settings.service_name == "inventory"
    assert settings.database.db_schema == "inventory"
    assert settings.database.sqlalchemy_url() == f"postgresql+asyncpg://inventory:{SECRET}@db.internal:5432/checkout"
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.topic_prefix == "prod"
    assert (settings.http.port, settings.http.max_body_bytes) == (9001, 2048)
    assert settings.shutdown_grace_s == 7.5
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(("given", "level"), [("info", "INFO"), (" Warning ", "WARNING"), ("DEBUG", "DEBUG")])
def test_log_level_is_read_in_any_case(clean_env: pytest.MonkeyPatch, given: str, level: str) -> None:
    # The example CheckoutPlatform sets LOG_LEVEL=info on the gateway; it must start, not crash-loop.
    clean_env.setenv("LOG_LEVEL", given)
    assert ServiceSettings().log_level == level


def test_the_consumer_group_defaults_to_prefix_and_service(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SERVICE_NAME", "inventory")
    clean_env.setenv("KAFKA__TOPIC_PREFIX", "shop")
    assert ServiceSettings().group_id() == "shop.inventory"
    clean_env.setenv("CONSUMER_GROUP", "custom-group")
    assert ServiceSettings().group_id() == "custom-group"


def test_an_unknown_log_level_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="log_level"):
        ServiceSettings()


def test_the_database_password_never_leaks(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE__URL", f"postgresql://svc:{SECRET}@db:5432/checkout")
    settings = ServiceSettings()

    for rendering in (repr(settings), str(settings), repr(settings.database), settings.model_dump_json()):
        assert SECRET not in rendering
    assert "**********" in repr(settings.database)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP__PORT", "0"),
        ("HTTP__MAX_BODY_BYTES", "10"),
        ("DATABASE__URL", "mysql://root@db/checkout"),
        ("DATABASE__SCHEMA", "Robert'); DROP TABLE"),
        ("LOG_LEVEL", "CHATTY"),
        ("KAFKA__TOPIC_PREFIX", "has space"),
    ],
)
def test_invalid_environment_is_refused_naming_the_field(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        ServiceSettings()
    field = name.lower().split("__")[-1]
    assert field in str(caught.value).lower()


def test_consumers_wait_at_most_100_ms_at_the_broker_unless_configured(clean_env: pytest.MonkeyPatch) -> None:
    """A long broker wait holds back every other partition's next fetch (aiokafka's default is 500 ms)."""
    assert ServiceSettings().kafka.consumer_params("inventory", "g")["fetch_max_wait_ms"] == 100
    clean_env.setenv("KAFKA__FETCH_MAX_WAIT_MS", "200")
    assert ServiceSettings().kafka.consumer_params("inventory", "g")["fetch_max_wait_ms"] == 200


def test_producers_do_not_linger_unless_configured(clean_env: pytest.MonkeyPatch) -> None:
    """The relay batches by itself; a linger would only delay each saga hop."""
    assert ServiceSettings().kafka.producer_params("inventory")["linger_ms"] == 0
    clean_env.setenv("KAFKA__LINGER_MS", "5")
    assert ServiceSettings().kafka.producer_params("inventory")["linger_ms"] == 5


def test_consumers_refuse_records_above_256_kib_unless_configured(clean_env: pytest.MonkeyPatch) -> None:
    """Saga messages are a few KiB; the limit sits well below the broker's 1 MiB default."""
    assert ServiceSettings().kafka.max_message_bytes == 256 * 1024
    clean_env.setenv("KAFKA__MAX_MESSAGE_BYTES", "65536")
    assert ServiceSettings().kafka.max_message_bytes == 65_536
    clean_env.setenv("KAFKA__MAX_MESSAGE_BYTES", "10")
    with pytest.raises(ValidationError, match="max_message_bytes"):
        ServiceSettings()
