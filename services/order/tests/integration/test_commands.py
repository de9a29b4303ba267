"""CreateOrder through the real Kafka and PostgreSQL, with the real app.

Commands are published as the orchestrator would (CloudEvents envelopes with ``reply_to``);
replies are read back from the reply topic. The command topic has one partition, so commands
are applied in the order sent.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, SchemaReader, command, publish_command, resent

pytestmark = pytest.mark.integration


def create_order(customer: str = "cust_42", *, saga_id: str | None = None) -> commands_pb2.CreateOrder:
    return commands_pb2.CreateOrder(
        saga_id=saga_id or str(uuid.uuid4()),
        customer_id=customer,
        items=[
            types_pb2.LineItem(sku="SKU-A", quantity=2, unit_price=types_pb2.Money(amount_minor=250, currency="EUR")),
            types_pb2.LineItem(sku="SKU-B", quantity=1, unit_price=types_pb2.Money(amount_minor=1_000, currency="EUR")),
        ],
        total=types_pb2.Money(amount_minor=1_500, currency="EUR"),
        payment_id=str(uuid.uuid4()),
    )


async def test_an_order_is_created_with_its_lines(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    message = create_order()
    sent = await publish_command(publisher, command_topic, command(message, reply_to=kafka.replies))

    (reply,) = await replies.wait_for(sent.saga_id)

    created = reply.message
    assert isinstance(created, events_pb2.OrderCreated)
    (order,) = (await client.get("/orders", params={"saga_id": sent.saga_id})).json()
    assert order["id"] == created.order_id
    assert order["customer_id"] == "cust_42"
    assert order["payment_id"] == message.payment_id
    assert order["total"] == {"amount_minor": 1_500, "currency": "EUR"}
    assert [(line["sku"], line["quantity"], line["unit_price"]["amount_minor"]) for line in order["lines"]] == [
        ("SKU-A", 2, 250),
        ("SKU-B", 1, 1_000),
    ]
    assert (await client.get(f"/orders/{created.order_id}")).json() == order


async def test_the_rejected_customer_is_refused_and_nothing_but_the_refusal_is_stored(
    client: httpx.AsyncClient,
    publisher: Publisher,
    command_topic: str,
    kafka: Kafka,
    replies: Replies,
    database: SchemaReader,
) -> None:
    sent = await publish_command(
        publisher, command_topic, command(create_order("cust_order_fail"), reply_to=kafka.replies)
    )
    await publish_command(publisher, command_topic, resent(sent))

    first, second = await replies.wait_for(sent.saga_id, 2)

    failed = first.message
    assert isinstance(failed, events_pb2.OrderCreationFailed)
    assert failed.reason == types_pb2.FAILURE_CODE_ORDER_REJECTED
    assert "cust_order_fail" in failed.message
    assert second.message == failed
    assert (await client.get("/orders", params={"saga_id": sent.saga_id})).json() == []
    assert await database.fetchval("SELECT count(*) FROM orders") == 0
    assert await database.fetchval("SELECT count(*) FROM order_lines") == 0
    assert await database.fetchval("SELECT count(*) FROM order_refusals") == 1
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_resent_command_gets_the_same_order_without_a_second_one(
    client: httpx.AsyncClient,
    publisher: Publisher,
    command_topic: str,
    kafka: Kafka,
    replies: Replies,
    database: SchemaReader,
) -> None:
    sent = await publish_command(publisher, command_topic, command(create_order(), reply_to=kafka.replies))
    (first,) = await replies.wait_for(sent.saga_id)

    again = await publish_command(publisher, command_topic, resent(sent))
    second = (await replies.wait_for(sent.saga_id, 2))[1]

    assert again.id != sent.id
    assert second.message == first.message
    assert await database.fetchval("SELECT count(*) FROM orders") == 1
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_duplicated_delivery_creates_and_answers_once(
    client: httpx.AsyncClient,
    publisher: Publisher,
    command_topic: str,
    kafka: Kafka,
    replies: Replies,
    database: SchemaReader,
) -> None:
    sent = command(create_order(), reply_to=kafka.replies)
    await publish_command(publisher, command_topic, sent)
    await publish_command(publisher, command_topic, sent)  # the same record again (same ce_id)
    marker = await publish_command(publisher, command_topic, command(create_order(), reply_to=kafka.replies))

    await replies.wait_for(marker.saga_id)

    assert len(replies.of(sent.saga_id)) == 1
    assert await database.fetchval("SELECT count(*) FROM orders") == 2
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"
