"""The handlers' pure parts: where commands go, which trace a message is in, what is refused before any I/O."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import commands_pb2, events_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.errors import InvalidMessageError
from checkout_kit.topics import Topics
from checkout_orchestrator.domain.rules import Policy
from checkout_orchestrator.handlers.events import SagaEventHandler, trace_id_of
from checkout_orchestrator.handlers.outcomes import OutcomeWriter, command_topic

TOPICS = Topics("t")
SAGA = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("command", "topic"),
    [
        (commands_pb2.ReserveInventory(), "t.inventory-command"),
        (commands_pb2.ReleaseInventory(), "t.inventory-command"),
        (commands_pb2.ProcessPayment(), "t.payment-command"),
        (commands_pb2.RefundPayment(), "t.payment-command"),
        (commands_pb2.CreateOrder(), "t.order-command"),
    ],
)
def test_each_command_goes_to_its_participant(command: Any, topic: str) -> None:
    assert command_topic(TOPICS, command) == topic


def test_an_event_is_no_command() -> None:
    with pytest.raises(TypeError, match="OrderCreated"):
        command_topic(TOPICS, events_pb2.OrderCreated())


def test_commands_reply_to_the_events_topic() -> None:
    envelope = OutcomeWriter(TOPICS, "checkout-orchestrator").envelope(SAGA, commands_pb2.CreateOrder(saga_id=SAGA))
    assert envelope.reply_to == "t.checkout-events"
    assert (envelope.saga_id, envelope.source) == (SAGA, "checkout-orchestrator")


@pytest.mark.parametrize(
    ("traceparent", "trace_id"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "0af7651916cd43dd8448eb211c80319c"),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_the_trace_id_comes_from_the_traceparent(traceparent: str | None, trace_id: str | None) -> None:
    headers = {"traceparent": traceparent} if traceparent else {}
    envelope = Envelope(events_pb2.OrderCreated(saga_id=SAGA), SAGA, "order", trace_headers=headers)
    assert trace_id_of(envelope) == trace_id


async def test_a_command_on_the_events_topic_is_invalid() -> None:
    handler = SagaEventHandler(OutcomeWriter(TOPICS, "checkout-orchestrator"), Policy())
    envelope = Envelope(commands_pb2.ProcessPayment(saga_id=SAGA), SAGA, "someone")
    with pytest.raises(InvalidMessageError) as raised:
        await handler(envelope, cast(AsyncSession, None))  # refused before touching the database
    assert raised.value.reason == "unexpected-command"
    assert "t.checkout-events" in raised.value.detail
