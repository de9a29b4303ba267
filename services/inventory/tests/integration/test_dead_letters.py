"""Commands that can never be applied go to ``<prefix>.dlq`` with the reason, and do not block the partition."""

from __future__ import annotations

import uuid

import httpx
import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, command

pytestmark = pytest.mark.integration


def _reserve(saga_id: str, *items: types_pb2.LineItem) -> commands_pb2.ReserveInventory:
    return commands_pb2.ReserveInventory(saga_id=saga_id, items=list(items))


async def test_invalid_commands_are_dead_lettered_with_their_reason_and_later_ones_answered(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await client.put("/inventory/SKU-A", json={"available": 5, "unit_price_minor": 100, "currency": "EUR"})
    saga = str(uuid.uuid4())
    line = types_pb2.LineItem(sku="SKU-A", quantity=1)
    invalid = [
        (
            "invalid-payload",
            command(_reserve(saga, types_pb2.LineItem(sku="SKU-A", quantity=0)), reply_to=kafka.replies),
        ),
        ("invalid-payload", command(_reserve(str(uuid.uuid4())), reply_to=kafka.replies)),  # no lines
        (
            "invalid-payload",
            command(_reserve(saga, types_pb2.LineItem(sku="no spaces", quantity=1)), reply_to=kafka.replies),
        ),
        # the envelope names a saga, the payload none
        ("invalid-payload", Envelope(message=_reserve("", line), saga_id=saga, source="test", reply_to=kafka.replies)),
        (
            "invalid-payload",
            command(commands_pb2.ReleaseInventory(saga_id=saga, reservation_id="not-a-uuid"), reply_to=kafka.replies),
        ),
        ("unexpected-type", command(events_pb2.OrderCreated(saga_id=saga, order_id="x"), reply_to=kafka.replies)),
        ("invalid-reply-to", command(_reserve(saga, line), reply_to="no such topic!")),
    ]
    for _, envelope in invalid:
        await publisher.publish(command_topic, envelope)
    good = command(_reserve(str(uuid.uuid4()), line), reply_to=kafka.replies)
    await publisher.publish(command_topic, good)

    (reply,) = await replies.wait_for(good.saga_id)
    letters = await kafka.dead_letters(count=len(invalid))

    assert reply.type == "checkout.v1.InventoryReserved"
    assert [dict(letter.headers)["dlq_reason"].decode() for letter in letters] == [reason for reason, _ in invalid]
    assert [dict(letter.headers)["ce_id"].decode() for letter in letters] == [e.id for _, e in invalid]
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["dlq_detail"]
        assert headers["dlq_topic"] == command_topic.encode()
    assert replies.of(saga) == [], "an invalid command is never answered"
    body = (await client.get("/inventory/SKU-A")).json()
    assert (body["available"], body["reserved"]) == (4, 1), "only the valid command took stock"
