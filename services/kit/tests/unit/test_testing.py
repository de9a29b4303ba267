"""The test support the services' integration tests share: its pure parts."""

from __future__ import annotations

import pytest

from checkout_kit.settings import DatabaseSettings, KafkaSettings, ServiceSettings
from checkout_kit.testing import (
    WaitTimeoutError,
    create_schema,
    service_env,
    settings_factory,
    unique_name,
    wait_until,
)


async def test_a_wait_that_runs_out_fails_naming_what_it_waited_for() -> None:
    polls = 0

    async def never() -> bool:
        nonlocal polls
        polls += 1
        return False

    with pytest.raises(WaitTimeoutError, match="waiting until the moon is blue"):
        await wait_until(never, "the moon is blue", within_s=0.2)
    assert polls > 1
    assert issubclass(WaitTimeoutError, AssertionError), "a test reports it as a failure, not an error"


async def test_a_wait_returns_once_the_predicate_holds() -> None:
    answers = iter([False, False, True])

    async def third_time() -> bool:
        return next(answers)

    await wait_until(third_time, "the third poll")


def test_names_are_unique_under_their_stem() -> None:
    first, second = unique_name("inventory-it"), unique_name("inventory-it")
    assert first != second
    assert first.startswith("inventory-it-")
    assert unique_name("cart_it", separator="_", length=8).startswith("cart_it_")


async def test_only_plain_identifiers_are_accepted_as_schema_names() -> None:
    with pytest.raises(ValueError, match="plain lower-case identifier"):
        await create_schema("postgresql://nobody@127.0.0.1:1/none", 'x"; DROP SCHEMA public; --')


def test_a_child_service_inherits_no_service_settings_from_the_test() -> None:
    inherited = {"PATH": "/bin", "DATABASE__URL": "postgresql://elsewhere", "KAFKA__TOPIC_PREFIX": "dev"}
    env = service_env(inherited, DATABASE__SCHEMA="inventory_it_1")
    assert env == {"PATH": "/bin", "DATABASE__SCHEMA": "inventory_it_1"}


def test_settings_factory_applies_defaults_then_overrides() -> None:
    database = DatabaseSettings(url="postgresql://u@127.0.0.1:5432/db", schema="s1")
    make = settings_factory(
        ServiceSettings, database=database, kafka=KafkaSettings(topic_prefix="t1"), service_name="svc-it"
    )
    assert make().service_name == "svc-it"
    assert make().database.db_schema == "s1"
    assert make(service_name="other", shutdown_grace_s=1.0).service_name == "other"
