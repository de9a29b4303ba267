"""The read API: 404 for an unknown order, 422 for bad input, readiness."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_an_unknown_order_is_404_and_an_unknown_saga_an_empty_list(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/orders/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"order {missing} not found"}
    assert (await client.get("/orders", params={"saga_id": str(uuid.uuid4())})).json() == []


async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    for params, loc in [
        ({"saga_id": "nope"}, ["query", "saga_id"]),
        ({"customer_id": "has space"}, ["query", "customer_id"]),
        ({"limit": "5000"}, ["query", "limit"]),
    ]:
        response = await client.get("/orders", params=params)
        assert response.status_code == 422, response.text
        assert [e["loc"] for e in response.json()["detail"]] == [loc]
    assert (await client.get("/orders/not-a-uuid")).status_code == 422


async def test_readiness_covers_the_database_kafka_the_consumer_and_the_relay(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {"database", "kafka", "outbox-relay", "command-consumer"}
