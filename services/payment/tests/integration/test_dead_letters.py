"""Payment commands that can never be applied go to ``<prefix>.dlq`` with the reason, without blocking."""

from __future__ import annotations

import uuid

import httpx
import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, command

pytestmark = pytest.mark.integration


def _pay(
    saga_id: str, *, amount: int = 100, currency: str = "EUR", customer: str = "cust_1"
) -> commands_pb2.ProcessPayment:
    return commands_pb2.ProcessPayment(
        saga_id=saga_id,
        customer_id=customer,
        amount=types_pb2.Money(amount_minor=amount, currency=currency),
        payment_token="tok_visa",
    )


async def test_invalid_commands_are_dead_lettered_with_their_reason_and_later_ones_answered(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    saga = str(uuid.uuid4())
    no_amount = commands_pb2.ProcessPayment(saga_id=saga, customer_id="cust_1", payment_token="tok_visa")
    invalid = [
        ("invalid-payload", command(_pay(saga, currency="eur"), reply_to=kafka.replies)),
        ("invalid-payload", command(_pay(saga, currency="EURO"), reply_to=kafka.replies)),
        ("invalid-payload", command(_pay(saga, amount=-1), reply_to=kafka.replies)),
        ("invalid-payload", command(_pay(saga, customer=""), reply_to=kafka.replies)),
        ("invalid-payload", command(no_amount, reply_to=kafka.replies)),
        ("invalid-payload", Envelope(message=_pay(""), saga_id=saga, source="test", reply_to=kafka.replies)),
        (
            "invalid-payload",
            command(commands_pb2.RefundPayment(saga_id=saga, payment_id="p-1"), reply_to=kafka.replies),
        ),
        ("unexpected-type", command(events_pb2.PaymentProcessed(saga_id=saga), reply_to=kafka.replies)),
        ("invalid-reply-to", command(_pay(saga), reply_to="spaces are not topic names")),
    ]
    for _, envelope in invalid:
        await publisher.publish(command_topic, envelope)
    good = command(_pay(str(uuid.uuid4())), reply_to=kafka.replies)
    await publisher.publish(command_topic, good)

    (reply,) = await replies.wait_for(good.saga_id)
    letters = await kafka.dead_letters(count=len(invalid))

    assert reply.type == "checkout.v1.PaymentProcessed"
    assert [dict(letter.headers)["dlq_reason"].decode() for letter in letters] == [reason for reason, _ in invalid]
    assert [dict(letter.headers)["ce_id"].decode() for letter in letters] == [e.id for _, e in invalid]
    assert all(dict(letter.headers)["dlq_detail"] for letter in letters)
    assert replies.of(saga) == []
    assert (await client.get("/payments", params={"saga_id": saga})).json() == [], "nothing was charged"
