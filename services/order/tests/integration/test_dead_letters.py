"""CreateOrder commands that can never be applied go to ``<prefix>.dlq`` with the reason, without blocking."""

from __future__ import annotations

import uuid

import httpx
import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, command

pytestmark = pytest.mark.integration


def _order(saga_id: str, *, quantity: int = 1, currency: str = "EUR", total: int = 100) -> commands_pb2.CreateOrder:
    return commands_pb2.CreateOrder(
        saga_id=saga_id,
        customer_id="cust_1",
        items=[
            types_pb2.LineItem(
                sku="SKU-A", quantity=quantity, unit_price=types_pb2.Money(amount_minor=100, currency=currency)
            )
        ],
        total=types_pb2.Money(amount_minor=total, currency=currency),
    )


async def test_invalid_commands_are_dead_lettered_with_their_reason_and_later_ones_answered(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    saga = str(uuid.uuid4())
    no_items = commands_pb2.CreateOrder(
        saga_id=saga, customer_id="cust_1", total=types_pb2.Money(amount_minor=0, currency="EUR")
    )
    invalid = [
        ("invalid-payload", command(_order(saga, quantity=0, total=0), reply_to=kafka.replies)),
        ("invalid-payload", command(_order(saga, currency="eu"), reply_to=kafka.replies)),
        ("invalid-payload", command(_order(saga, total=99), reply_to=kafka.replies)),
        ("invalid-payload", command(no_items, reply_to=kafka.replies)),
        ("invalid-payload", Envelope(message=_order(""), saga_id=saga, source="test", reply_to=kafka.replies)),
        ("unexpected-type", command(events_pb2.OrderCreated(saga_id=saga), reply_to=kafka.replies)),
        ("invalid-reply-to", command(_order(saga), reply_to="not a topic")),
    ]
    for _, envelope in invalid:
        await publisher.publish(command_topic, envelope)
    good = command(_order(str(uuid.uuid4())), reply_to=kafka.replies)
    await publisher.publish(command_topic, good)

    (reply,) = await replies.wait_for(good.saga_id)
    letters = await kafka.dead_letters(count=len(invalid))

    assert reply.type == "checkout.v1.OrderCreated"
    assert [dict(letter.headers)["dlq_reason"].decode() for letter in letters] == [reason for reason, _ in invalid]
    assert [dict(letter.headers)["ce_id"].decode() for letter in letters] == [e.id for _, e in invalid]
    assert all(dict(letter.headers)["dlq_detail"] for letter in letters)
    assert replies.of(saga) == []
    assert (await client.get("/orders", params={"saga_id": saga})).json() == []
