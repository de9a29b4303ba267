"""What every participant shares: command checks, where replies go, and its components."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from checkout.v1 import commands_pb2, types_pb2
from checkout_kit.app import Runtime
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.consumer import Handler, TransactionalConsumer
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import (
    Money,
    command_components,
    customer_id_of,
    known_reason,
    money,
    optional_uuid,
    reason_name,
    reason_value,
    reply_topic,
    saga_id_of,
)
from checkout_kit.messaging.producer import Publisher
from checkout_kit.outbox import OutboxRelay
from checkout_kit.settings import ServiceSettings
from checkout_kit.topics import Topics

SAGA = str(uuid.uuid4())


def envelope(reply_to: str | None = None, saga_id: str = SAGA) -> Envelope:
    return Envelope(commands_pb2.ReleaseInventory(saga_id=saga_id), saga_id, "test", reply_to=reply_to)


def reason_of(error: pytest.ExceptionInfo[InvalidMessageError]) -> str:
    return error.value.reason


def test_the_reply_goes_to_reply_to_or_else_to_checkout_events() -> None:
    assert reply_topic(envelope("orchestrator.replies"), "p.checkout-events") == "orchestrator.replies"
    assert reply_topic(envelope(None), "p.checkout-events") == "p.checkout-events"


def test_a_reply_to_that_is_no_topic_name_is_invalid() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        reply_topic(envelope("no such topic!"), "p.checkout-events")
    assert reason_of(caught) == "invalid-reply-to"


def test_the_saga_id_must_be_a_uuid_agreeing_with_the_envelope() -> None:
    assert saga_id_of(SAGA, envelope()) == uuid.UUID(SAGA)
    for payload, why in [("", "no saga_id"), ("nope", "not a UUID"), (str(uuid.uuid4()), "differs")]:
        with pytest.raises(InvalidMessageError, match=why) as caught:
            saga_id_of(payload, envelope())
        assert reason_of(caught) == "invalid-payload"


def test_optional_ids_are_none_when_empty_and_uuids_otherwise() -> None:
    some = uuid.uuid4()
    assert optional_uuid("", "payment_id") is None
    assert optional_uuid(str(some), "payment_id") == some
    with pytest.raises(InvalidMessageError, match="payment_id 'x' is not a UUID"):
        optional_uuid("x", "payment_id")


def test_customer_ids_and_amounts_are_checked() -> None:
    assert customer_id_of("cust_1") == "cust_1"
    with pytest.raises(InvalidMessageError, match="customer_id"):
        customer_id_of("no spaces")
    assert money(types_pb2.Money(amount_minor=250, currency="EUR"), "total") == Money(250, "EUR")
    with pytest.raises(InvalidMessageError, match=r"total\.currency"):
        money(types_pb2.Money(amount_minor=250, currency="eur"), "total")
    with pytest.raises(InvalidMessageError, match=r"total\.amount_minor"):
        money(types_pb2.Money(amount_minor=-1, currency="EUR"), "total")


def test_failure_codes_round_trip_and_unknown_ones_fall_back() -> None:
    assert known_reason(types_pb2.FAILURE_CODE_OUT_OF_STOCK) == types_pb2.FAILURE_CODE_OUT_OF_STOCK
    assert known_reason(9_999) == types_pb2.FAILURE_CODE_UNSPECIFIED
    assert reason_value(reason_name(types_pb2.FAILURE_CODE_OUT_OF_STOCK), types_pb2.FAILURE_CODE_INTERNAL) == (
        types_pb2.FAILURE_CODE_OUT_OF_STOCK
    )
    assert reason_value(None, types_pb2.FAILURE_CODE_INTERNAL) == types_pb2.FAILURE_CODE_INTERNAL
    assert reason_value("FAILURE_CODE_FROM_THE_FUTURE", types_pb2.FAILURE_CODE_INTERNAL) == (
        types_pb2.FAILURE_CODE_INTERNAL
    )


class ParticipantSettings(ServiceSettings):
    """A participant's own settings class."""


async def handle(envelope: Envelope, session: AsyncSession) -> None:
    """A handler that does nothing."""


def runtime(settings: ServiceSettings) -> Runtime:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connected
    return Runtime(settings, CollectorRegistry(), engine, Publisher(producer=None))


def test_the_relay_starts_before_the_consumer_of_the_command_topic() -> None:
    seen: list[ServiceSettings] = []

    def handler(runtime: Runtime, settings: ParticipantSettings) -> Handler:
        seen.append(settings)
        return handle

    components = command_components(ParticipantSettings, lambda topics: topics.payment_command, handler)
    settings = ParticipantSettings(service_name="payment-test", kafka={"topic_prefix": "p"})
    consumer = components["command-consumer"](runtime(settings))

    assert list(components) == ["outbox-relay", "command-consumer"]
    assert isinstance(components["outbox-relay"](runtime(settings)), OutboxRelay)
    assert isinstance(consumer, TransactionalConsumer)
    assert consumer.topics == (Topics("p").payment_command,)
    assert consumer.group_id == "p.payment-test"  # <prefix>.<service>: groups never span platforms
    assert seen == [settings]


def test_the_consumer_refuses_settings_of_another_class() -> None:
    components = command_components(ParticipantSettings, lambda topics: topics.payment_command, lambda r, s: handle)
    with pytest.raises(TypeError, match="runs with ParticipantSettings, not ServiceSettings"):
        components["command-consumer"](runtime(ServiceSettings(service_name="payment-test")))
