"""Starting a checkout: 202 after commit, then exactly one CheckoutInitiated on the topic."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from gateway_harness import envelope_of, records_of_saga
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from checkout.v1 import events_pb2
from checkout_kit.testing import Kafka, wait_until

pytestmark = pytest.mark.integration

ITEMS = [{"sku": "SKU-B", "quantity": 2}, {"sku": "SKU-A", "quantity": 1}]


def checkout_body(**overrides: object) -> dict[str, object]:
    return {"customer_id": "cust_42", "items": ITEMS, "currency": "EUR", "payment_token": "tok_visa", **overrides}


async def test_initiate_answers_202_and_publishes_checkout_initiated_as_a_cloudevent(
    client: httpx.AsyncClient, kafka: Kafka, gateway_db: asyncpg.Connection
) -> None:
    response = await client.post("/api/checkout/initiate", json=checkout_body())

    assert response.status_code == 202, response.text
    body = response.json()
    saga_id = body["saga_id"]
    assert uuid.UUID(saga_id).version == 4
    assert body["status_url"] == f"/api/checkout/{saga_id}"
    assert response.headers["location"] == body["status_url"]
    assert "idempotent-replayed" not in response.headers

    (record,) = await records_of_saga(kafka, kafka.topics.checkout_events, saga_id)
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "checkout.v1.CheckoutInitiated"
    assert headers["ce_source"] == "gateway-bff"
    assert headers["content-type"] == "application/protobuf"
    assert headers["saga_id"] == saga_id
    assert uuid.UUID(headers["ce_id"])
    assert record.key == saga_id.encode()

    envelope = envelope_of(record)
    event = envelope.message
    assert isinstance(event, events_pb2.CheckoutInitiated)
    assert event.saga_id == saga_id
    assert event.customer_id == "cust_42"
    assert [(line.sku, line.quantity) for line in event.items] == [("SKU-B", 2), ("SKU-A", 1)]
    assert event.currency == "EUR"
    assert event.payment_token == "tok_visa"
    assert event.cart_id == ""

    row = await gateway_db.fetchrow("SELECT * FROM checkouts WHERE saga_id = $1", uuid.UUID(saga_id))
    assert row is not None
    assert row["customer_id"] == "cust_42"
    assert row["idempotency_key"] is None
    assert len(row["request_fingerprint"]) == 64
    initiated_at = event.initiated_at.ToDatetime(tzinfo=dt.UTC)
    assert initiated_at == row["created_at"] == envelope.time

    async def marked_published() -> bool:
        query = "SELECT published_at IS NOT NULL FROM outbox WHERE key = $1"
        return bool(await gateway_db.fetchval(query, saga_id))

    await wait_until(marked_published, "the relay marked the row Kafka acknowledged as published")


async def test_the_callers_trace_continues_in_the_event(
    client: httpx.AsyncClient, kafka: Kafka, gateway_db: asyncpg.Connection
) -> None:
    trace_id = uuid.uuid4().int
    span_id = uuid.uuid4().int & (2**64 - 1)
    parent = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True, trace_flags=TraceFlags(1))

    # The ASGI transport runs the app in this task, so the current span is the request's.
    with trace.use_span(NonRecordingSpan(parent)):
        response = await client.post("/api/checkout/initiate", json=checkout_body())
    saga_id = response.json()["saga_id"]

    (record,) = await records_of_saga(kafka, kafka.topics.checkout_events, saga_id)
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == f"{trace_id:032x}"
    stored = await gateway_db.fetchval("SELECT trace_id FROM checkouts WHERE saga_id = $1", uuid.UUID(saga_id))
    assert stored == f"{trace_id:032x}"


async def test_requests_without_a_key_each_start_a_saga(client: httpx.AsyncClient, kafka: Kafka) -> None:
    first = await client.post("/api/checkout/initiate", json=checkout_body())
    second = await client.post("/api/checkout/initiate", json=checkout_body())

    assert first.status_code == second.status_code == 202
    assert first.json()["saga_id"] != second.json()["saga_id"]
    await records_of_saga(kafka, kafka.topics.checkout_events, second.json()["saga_id"])


async def test_a_retry_with_the_same_key_and_body_returns_the_same_saga_and_publishes_once(
    client: httpx.AsyncClient, kafka: Kafka, gateway_db: asyncpg.Connection
) -> None:
    key = f"retry-{uuid.uuid4()}"
    first = await client.post("/api/checkout/initiate", json=checkout_body(), headers={"Idempotency-Key": key})
    # The same order with its lines listed the other way round is the same request.
    reordered = checkout_body(items=list(reversed(ITEMS)))
    again = await client.post("/api/checkout/initiate", json=reordered, headers={"Idempotency-Key": key})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    saga_id = first.json()["saga_id"]
    assert await gateway_db.fetchval("SELECT count(*) FROM checkouts WHERE idempotency_key = $1", key) == 1
    records = await records_of_saga(kafka, kafka.topics.checkout_events, saga_id)
    # The outbox is drained once its only row is published: no second record can follow.
    assert await gateway_db.fetchval("SELECT count(*) FROM outbox WHERE key = $1", saga_id) == 1
    assert len(records) == 1


async def test_the_same_key_with_another_body_is_refused_with_409(
    client: httpx.AsyncClient, gateway_db: asyncpg.Connection
) -> None:
    key = f"conflict-{uuid.uuid4()}"
    first = await client.post("/api/checkout/initiate", json=checkout_body(), headers={"Idempotency-Key": key})
    other = await client.post(
        "/api/checkout/initiate", json=checkout_body(currency="USD"), headers={"Idempotency-Key": key}
    )

    assert first.status_code == 202
    assert other.status_code == 409
    detail = other.json()["detail"]
    assert key in detail
    assert "different request" in detail
    assert first.json()["saga_id"] in detail
    assert await gateway_db.fetchval("SELECT count(*) FROM checkouts WHERE idempotency_key = $1", key) == 1


async def test_ten_concurrent_requests_with_one_key_start_one_saga(
    client: httpx.AsyncClient, kafka: Kafka, gateway_db: asyncpg.Connection
) -> None:
    key = f"concurrent-{uuid.uuid4()}"

    responses = await asyncio.gather(
        *(
            client.post("/api/checkout/initiate", json=checkout_body(), headers={"Idempotency-Key": key})
            for _ in range(10)
        )
    )

    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
    saga_ids = {r.json()["saga_id"] for r in responses}
    assert len(saga_ids) == 1
    (saga_id,) = saga_ids
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
    assert await gateway_db.fetchval("SELECT count(*) FROM checkouts WHERE idempotency_key = $1", key) == 1
    assert await gateway_db.fetchval("SELECT count(*) FROM outbox WHERE key = $1", saga_id) == 1
    assert len(await records_of_saga(kafka, kafka.topics.checkout_events, saga_id)) == 1


def _errors(response: httpx.Response) -> list[tuple[tuple[str | int, ...], str]]:
    assert response.status_code == 422, response.text
    return [(tuple(error["loc"]), error["msg"]) for error in response.json()["detail"]]


def _locs(response: httpx.Response) -> list[tuple[str | int, ...]]:
    return [loc for loc, _ in _errors(response)]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (checkout_body(items=[{"sku": "bad sku", "quantity": 1}]), ("body", "items", 0, "sku")),
        (checkout_body(items=[{"sku": "SKU-1", "quantity": 0}]), ("body", "items", 0, "quantity")),
        (checkout_body(items=[{"sku": "SKU-1", "quantity": 1001}]), ("body", "items", 0, "quantity")),
        (checkout_body(items=[{"sku": f"SKU-{n}", "quantity": 1} for n in range(101)]), ("body", "items")),
        (checkout_body(items=[]), ("body", "items")),
        (checkout_body(currency="eur"), ("body", "currency")),
        (checkout_body(payment_token="visa"), ("body", "payment_token")),
        (checkout_body(customer_id="c" * 65), ("body", "customer_id")),
        (checkout_body(coupon="FREE"), ("body", "coupon")),
        ({"customer_id": "cust_1", "items": ITEMS, "currency": "EUR"}, ("body", "payment_token")),
    ],
)
async def test_invalid_requests_are_refused_with_the_field_named(
    client: httpx.AsyncClient, body: dict[str, object], loc: tuple[str | int, ...]
) -> None:
    assert _locs(await client.post("/api/checkout/initiate", json=body)) == [loc]


async def test_inconsistent_requests_say_what_is_wrong(client: httpx.AsyncClient) -> None:
    repeated = checkout_body(items=[{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 2}])
    ((loc, message),) = _errors(await client.post("/api/checkout/initiate", json=repeated))
    assert loc == ("body", "items")
    assert "repeated: SKU-1" in message

    no_currency = {"customer_id": "cust_1", "items": ITEMS, "payment_token": "tok_visa"}
    ((_, message),) = _errors(await client.post("/api/checkout/initiate", json=no_currency))
    assert "currency is required with items" in message

    both = checkout_body(cart_id=str(uuid.uuid4()))
    ((_, message),) = _errors(await client.post("/api/checkout/initiate", json=both))
    assert "not both" in message

    neither = {"customer_id": "cust_1", "payment_token": "tok_visa"}
    ((_, message),) = _errors(await client.post("/api/checkout/initiate", json=neither))
    assert "either items" in message

    garbage = await client.post(
        "/api/checkout/initiate", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "tab\there", "ünïcode"])
async def test_a_malformed_idempotency_key_is_refused(
    client: httpx.AsyncClient, gateway_db: asyncpg.Connection, key: str
) -> None:
    before = await gateway_db.fetchval("SELECT count(*) FROM checkouts")
    response = await client.post(
        "/api/checkout/initiate", json=checkout_body(), headers={"Idempotency-Key": key.encode()}
    )
    assert _locs(response) == [("header", "Idempotency-Key")]
    assert await gateway_db.fetchval("SELECT count(*) FROM checkouts") == before


async def test_an_oversized_body_is_refused_with_413_before_anything_is_stored(
    client: httpx.AsyncClient, gateway_db: asyncpg.Connection
) -> None:
    before = await gateway_db.fetchval("SELECT count(*) FROM checkouts")
    body = checkout_body(customer_id="x" * 20_000)

    declared = await client.post("/api/checkout/initiate", json=body)

    async def undeclared_length() -> AsyncIterator[bytes]:
        for chunk in (b'{"customer_id": "', b"x" * 20_000, b'"}'):
            yield chunk

    chunked = await client.post(
        "/api/checkout/initiate",
        content=undeclared_length(),
        headers={"content-type": "application/json"},
    )

    assert declared.status_code == chunked.status_code == 413
    assert "larger than 16384 bytes" in declared.json()["detail"]
    assert await gateway_db.fetchval("SELECT count(*) FROM checkouts") == before


async def test_a_full_checkout_of_100_lines_fits(client: httpx.AsyncClient, kafka: Kafka) -> None:
    lines = [{"sku": f"SKU-{n:03d}", "quantity": 1000} for n in range(100)]
    response = await client.post("/api/checkout/initiate", json=checkout_body(items=lines))
    assert response.status_code == 202, response.text
    (record,) = await records_of_saga(kafka, kafka.topics.checkout_events, response.json()["saga_id"])
    assert len(envelope_of(record).message.items) == 100  # type: ignore[attr-defined]
