"""The admin routes: set and read stock, list reservations; 404 and 422 as promised."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration


def _locs(response: httpx.Response) -> list[list[str | int]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


async def test_put_creates_then_updates_a_sku(client: httpx.AsyncClient) -> None:
    created = await client.put("/inventory/SKU-1", json={"available": 7, "unit_price_minor": 1_299, "currency": "USD"})
    updated = await client.put("/inventory/SKU-1", json={"available": 3, "unit_price_minor": 1_499, "currency": "USD"})
    read = await client.get("/inventory/SKU-1")

    assert created.status_code == updated.status_code == read.status_code == 200
    body = read.json()
    assert {k: body[k] for k in ("sku", "available", "reserved", "unit_price_minor", "currency")} == {
        "sku": "SKU-1",
        "available": 3,
        "reserved": 0,
        "unit_price_minor": 1_499,
        "currency": "USD",
    }
    assert body == updated.json()


async def test_an_unknown_sku_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/inventory/SKU-NEVER")
    assert response.status_code == 404
    assert response.json() == {"detail": "SKU SKU-NEVER not found"}


async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    good = {"available": 1, "unit_price_minor": 1, "currency": "EUR"}
    assert _locs(await client.put("/inventory/SKU-1", json={**good, "available": -1})) == [["body", "available"]]
    assert _locs(await client.put("/inventory/SKU-1", json={**good, "unit_price_minor": -5})) == [
        ["body", "unit_price_minor"]
    ]
    assert _locs(await client.put("/inventory/SKU-1", json={**good, "currency": "euro"})) == [["body", "currency"]]
    assert _locs(await client.put("/inventory/SKU-1", json={**good, "reserved": 3})) == [["body", "reserved"]]
    assert _locs(await client.put("/inventory/SKU-1", json={"available": 1})) == [
        ["body", "unit_price_minor"],
        ["body", "currency"],
    ]
    assert _locs(await client.put("/inventory/bad%20sku", json=good)) == [["path", "sku"]]
    assert _locs(await client.get("/reservations", params={"saga_id": "nope"})) == [["query", "saga_id"]]
    assert _locs(await client.get("/reservations", params={"status": "LOST"})) == [["query", "status"]]
    assert (await client.get("/inventory/SKU-1")).status_code == 404, "nothing was stored"


async def test_reservations_of_an_unknown_saga_are_an_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/reservations", params={"saga_id": str(uuid.uuid4())})
    assert response.status_code == 200
    assert response.json() == []


async def test_readiness_covers_the_database_kafka_the_consumer_and_the_relay(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {"database", "kafka", "outbox-relay", "command-consumer"}
