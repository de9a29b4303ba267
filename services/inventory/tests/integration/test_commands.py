"""ReserveInventory and ReleaseInventory through the real Kafka and PostgreSQL, with the real app.

Commands are published as the orchestrator would (CloudEvents envelopes with ``reply_to``);
replies are read back from the reply topic. The command topic has one partition, so commands
are applied in the order sent, and a reply to a later command proves an earlier one was done.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, SchemaReader, command, publish_command, resent

pytestmark = pytest.mark.integration


def reserve(*lines: tuple[str, int], saga_id: str | None = None) -> commands_pb2.ReserveInventory:
    return commands_pb2.ReserveInventory(
        saga_id=saga_id or str(uuid.uuid4()),
        items=[types_pb2.LineItem(sku=sku, quantity=quantity) for sku, quantity in lines],
    )


def release(saga_id: str, reservation_id: str = "") -> commands_pb2.ReleaseInventory:
    return commands_pb2.ReleaseInventory(
        saga_id=saga_id, reservation_id=reservation_id, reason=types_pb2.FAILURE_CODE_PAYMENT_DECLINED
    )


async def put(client: httpx.AsyncClient, sku: str, available: int, price: int = 250, currency: str = "EUR") -> None:
    response = await client.put(
        f"/inventory/{sku}", json={"available": available, "unit_price_minor": price, "currency": currency}
    )
    assert response.status_code == 200, response.text


async def levels(client: httpx.AsyncClient, sku: str) -> tuple[int, int]:
    body = (await client.get(f"/inventory/{sku}")).json()
    return body["available"], body["reserved"]


async def test_reserve_holds_every_line_and_answers_priced_lines_and_total(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await put(client, "SKU-A", 10, price=250)
    await put(client, "SKU-B", 5, price=1_000)
    sent = await publish_command(
        publisher, command_topic, command(reserve(("SKU-B", 1), ("SKU-A", 2)), reply_to=kafka.replies)
    )

    (reply,) = await replies.wait_for(sent.saga_id)

    assert reply.type == "checkout.v1.InventoryReserved"
    assert reply.source.startswith("inventory")
    reserved = reply.message
    assert isinstance(reserved, events_pb2.InventoryReserved)
    assert reserved.saga_id == sent.saga_id
    assert [(i.sku, i.quantity, i.unit_price.amount_minor, i.unit_price.currency) for i in reserved.items] == [
        ("SKU-A", 2, 250, "EUR"),
        ("SKU-B", 1, 1_000, "EUR"),
    ]
    assert (reserved.total.amount_minor, reserved.total.currency) == (1_500, "EUR")
    assert await levels(client, "SKU-A") == (8, 2)
    assert await levels(client, "SKU-B") == (4, 1)
    (held,) = (await client.get("/reservations", params={"saga_id": sent.saga_id})).json()
    assert held["id"] == reserved.reservation_id
    assert held["status"] == "HELD"
    assert held["total"] == {"amount_minor": 1_500, "currency": "EUR"}
    assert [line["sku"] for line in held["lines"]] == ["SKU-A", "SKU-B"]


async def test_repeated_skus_in_one_command_are_reserved_as_one_line(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await put(client, "SKU-A", 10, price=100)
    sent = await publish_command(
        publisher, command_topic, command(reserve(("SKU-A", 2), ("SKU-A", 3)), reply_to=kafka.replies)
    )

    (reply,) = await replies.wait_for(sent.saga_id)

    assert [(i.sku, i.quantity) for i in reply.message.items] == [("SKU-A", 5)]  # type: ignore[attr-defined]
    assert await levels(client, "SKU-A") == (5, 5)


@pytest.mark.parametrize(
    ("lines", "reason", "skus"),
    [
        ((("SKU-A", 2), ("SKU-B", 6)), types_pb2.FAILURE_CODE_OUT_OF_STOCK, ["SKU-B"]),
        ((("SKU-A", 1), ("SKU-NOPE", 1)), types_pb2.FAILURE_CODE_UNKNOWN_SKU, ["SKU-NOPE"]),
        ((("SKU-A", 1), ("SKU-USD", 1)), types_pb2.FAILURE_CODE_INVALID_REQUEST, ["SKU-A", "SKU-USD"]),
    ],
    ids=["out-of-stock", "unknown-sku", "currency-mismatch"],
)
async def test_a_refused_reservation_holds_nothing(
    client: httpx.AsyncClient,
    publisher: Publisher,
    command_topic: str,
    kafka: Kafka,
    replies: Replies,
    lines: tuple[tuple[str, int], ...],
    reason: int,
    skus: list[str],
) -> None:
    await put(client, "SKU-A", 10)
    await put(client, "SKU-B", 5)
    await put(client, "SKU-USD", 5, currency="USD")
    sent = await publish_command(publisher, command_topic, command(reserve(*lines), reply_to=kafka.replies))

    (reply,) = await replies.wait_for(sent.saga_id)

    failed = reply.message
    assert isinstance(failed, events_pb2.InventoryReservationFailed)
    assert failed.reason == reason
    assert list(failed.skus) == skus
    assert failed.message
    assert [await levels(client, sku) for sku in ("SKU-A", "SKU-B", "SKU-USD")] == [(10, 0), (5, 0), (5, 0)]
    (refused,) = (await client.get("/reservations", params={"saga_id": sent.saga_id})).json()
    assert refused["status"] == "FAILED"
    assert refused["lines"] == []


async def test_a_resent_reserve_gets_the_same_answer_without_a_second_effect(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await put(client, "SKU-A", 10)
    await put(client, "SKU-B", 1)
    held = await publish_command(publisher, command_topic, command(reserve(("SKU-A", 3)), reply_to=kafka.replies))
    refused = await publish_command(publisher, command_topic, command(reserve(("SKU-B", 2)), reply_to=kafka.replies))
    (first_held,) = await replies.wait_for(held.saga_id)
    (first_refused,) = await replies.wait_for(refused.saga_id)
    await put(client, "SKU-B", 10)  # restocked: a fresh decision would now succeed

    await publish_command(publisher, command_topic, resent(held))
    await publish_command(publisher, command_topic, resent(refused))
    second_held = (await replies.wait_for(held.saga_id, 2))[1]
    second_refused = (await replies.wait_for(refused.saga_id, 2))[1]

    assert second_held.id != first_held.id
    assert second_held.message == first_held.message  # same reservation id, lines and total
    assert second_refused.message == first_refused.message  # the saga's answer does not change
    assert await levels(client, "SKU-A") == (7, 3)
    assert await levels(client, "SKU-B") == (10, 0)
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_duplicated_delivery_is_applied_and_answered_once(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await put(client, "SKU-A", 10)
    sent = command(reserve(("SKU-A", 4)), reply_to=kafka.replies)
    await publish_command(publisher, command_topic, sent)
    await publish_command(publisher, command_topic, sent)  # the same record again (same ce_id)
    marker = await publish_command(publisher, command_topic, command(reserve(("SKU-A", 1)), reply_to=kafka.replies))

    await replies.wait_for(marker.saga_id)  # the marker came after both copies: they were both handled

    assert len(replies.of(sent.saga_id)) == 1
    assert await levels(client, "SKU-A") == (5, 5)
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_release_gives_the_units_back_and_is_idempotent(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await put(client, "SKU-A", 10)
    await put(client, "SKU-B", 10)
    reserved = await publish_command(
        publisher, command_topic, command(reserve(("SKU-A", 3), ("SKU-B", 2)), reply_to=kafka.replies)
    )
    (held,) = await replies.wait_for(reserved.saga_id)
    reservation_id = held.message.reservation_id  # type: ignore[attr-defined]

    first = await publish_command(
        publisher, command_topic, command(release(reserved.saga_id, reservation_id), reply_to=kafka.replies)
    )
    await replies.wait_for(reserved.saga_id, 2)
    assert await levels(client, "SKU-A") == (10, 0)
    assert await levels(client, "SKU-B") == (10, 0)
    await publish_command(publisher, command_topic, resent(first))  # a retried release
    await publish_command(
        publisher, command_topic, command(release(reserved.saga_id), reply_to=kafka.replies)
    )  # no id given
    again = await publish_command(publisher, command_topic, resent(reserved))  # a late retry of the reservation
    answers = await replies.wait_for(reserved.saga_id, 5)

    assert [a.type for a in answers] == [
        "checkout.v1.InventoryReserved",
        "checkout.v1.InventoryReleased",
        "checkout.v1.InventoryReleased",
        "checkout.v1.InventoryReleased",
        "checkout.v1.InventoryReservationFailed",
    ]
    assert {a.message.reservation_id for a in answers[1:4]} == {reservation_id}  # type: ignore[attr-defined]
    refused = answers[4].message
    assert isinstance(refused, events_pb2.InventoryReservationFailed)
    assert refused.reason == types_pb2.FAILURE_CODE_PAYMENT_DECLINED  # why the saga was released
    assert "released" in refused.message
    assert answers[4].id != again.id
    assert await levels(client, "SKU-A") == (10, 0), "released once, never twice"
    (row,) = (await client.get("/reservations", params={"saga_id": reserved.saga_id})).json()
    assert row["status"] == "RELEASED"
    assert row["released_at"] is not None
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_release_before_the_reservation_leaves_a_tombstone_that_refuses_it(
    client: httpx.AsyncClient,
    publisher: Publisher,
    command_topic: str,
    kafka: Kafka,
    replies: Replies,
    database: SchemaReader,
) -> None:
    await put(client, "SKU-A", 10)
    saga_id = str(uuid.uuid4())

    await publish_command(publisher, command_topic, command(release(saga_id), reply_to=kafka.replies))
    await publish_command(
        publisher, command_topic, command(reserve(("SKU-A", 2), saga_id=saga_id), reply_to=kafka.replies)
    )
    released, refused = await replies.wait_for(saga_id, 2)

    assert released.type == "checkout.v1.InventoryReleased"
    assert refused.type == "checkout.v1.InventoryReservationFailed"
    assert await levels(client, "SKU-A") == (10, 0)
    (tombstone,) = (await client.get("/reservations", params={"saga_id": saga_id})).json()
    assert tombstone["id"] == released.message.reservation_id  # type: ignore[attr-defined]
    assert tombstone["status"] == "RELEASED"
    assert tombstone["lines"] == []
    assert tombstone["total"] is None
    assert await database.fetchval("SELECT count(*) FROM reservation_lines") == 0
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_without_reply_to_the_reply_goes_to_checkout_events(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka
) -> None:
    await put(client, "SKU-A", 1)
    sent = await publish_command(publisher, command_topic, command(reserve(("SKU-A", 1)), reply_to=None))
    events = Replies(kafka.bootstrap_servers, kafka.topics.checkout_events)
    await events.start()
    try:
        (reply,) = await events.wait_for(sent.saga_id)
    finally:
        await events.stop()
    assert reply.type == "checkout.v1.InventoryReserved"
    assert reply.key() == sent.key()


async def test_the_reply_continues_the_command_s_trace(
    client: httpx.AsyncClient, publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies
) -> None:
    await put(client, "SKU-A", 1)
    trace_id = uuid.uuid4().hex
    message = reserve(("SKU-A", 1))
    traced = Envelope(
        message=message,
        saga_id=message.saga_id,
        source="orchestrator-test",
        reply_to=kafka.replies,
        trace_headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    await publish_command(publisher, command_topic, traced)

    (reply,) = await replies.wait_for(traced.saga_id)

    assert reply.trace_headers["traceparent"].split("-")[1] == trace_id
