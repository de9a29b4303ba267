"""Every cart route against the real app and PostgreSQL: happy paths, 404, 409, 413, 422 detail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from checkout_cart.main import create_app

pytestmark = pytest.mark.integration

MAX_BODY_BYTES = 2_048


async def _new_cart(client: httpx.AsyncClient, customer: str = "cust_1", currency: str = "EUR") -> dict:
    response = await client.post("/carts", json={"customer_id": customer, "currency": currency})
    assert response.status_code == 201, response.text
    return response.json()


def _locs(response: httpx.Response) -> list[list[str | int]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


async def test_create_then_read_a_cart(client: httpx.AsyncClient) -> None:
    response = await client.post("/carts", json={"customer_id": "cust_42", "currency": "USD"})

    assert response.status_code == 201
    cart = response.json()
    assert response.headers["location"] == f"/carts/{cart['id']}"
    assert cart["customer_id"] == "cust_42"
    assert cart["currency"] == "USD"
    assert cart["items"] == []
    read = await client.get(f"/carts/{cart['id']}")
    assert read.status_code == 200
    assert read.json() == cart


async def test_create_validation_errors_name_the_fields(client: httpx.AsyncClient) -> None:
    assert _locs(await client.post("/carts", json={"customer_id": "cust_1", "currency": "eur"})) == [
        ["body", "currency"]
    ]
    assert _locs(await client.post("/carts", json={"currency": "EUR"})) == [["body", "customer_id"]]
    assert _locs(await client.post("/carts", json={"customer_id": "c", "currency": "EUR", "coupon": "x"})) == [
        ["body", "coupon"]
    ]
    response = await client.post("/carts", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


async def test_set_update_and_remove_lines(client: httpx.AsyncClient) -> None:
    cart = await _new_cart(client)
    base = f"/carts/{cart['id']}/items"

    first = await client.put(f"{base}/SKU-B", json={"quantity": 2})
    second = await client.put(f"{base}/SKU-A", json={"quantity": 1})
    updated = await client.put(f"{base}/SKU-B", json={"quantity": 5})

    assert first.status_code == second.status_code == updated.status_code == 200
    assert updated.json()["items"] == [{"sku": "SKU-A", "quantity": 1}, {"sku": "SKU-B", "quantity": 5}]
    assert updated.json()["updated_at"] > cart["updated_at"]

    removed_by_zero = await client.put(f"{base}/SKU-A", json={"quantity": 0})
    assert removed_by_zero.json()["items"] == [{"sku": "SKU-B", "quantity": 5}]

    deleted = await client.delete(f"{base}/SKU-B")
    assert deleted.status_code == 200
    assert deleted.json()["items"] == []
    again = await client.delete(f"{base}/SKU-B")
    assert again.status_code == 200, "removing an absent line is not an error"
    assert (await client.get(f"/carts/{cart['id']}")).json()["items"] == []


async def test_line_validation_errors_name_the_fields(client: httpx.AsyncClient) -> None:
    cart = await _new_cart(client)
    base = f"/carts/{cart['id']}/items"
    assert _locs(await client.put(f"{base}/SKU-1", json={"quantity": 1001})) == [["body", "quantity"]]
    assert _locs(await client.put(f"{base}/SKU-1", json={"quantity": -1})) == [["body", "quantity"]]
    assert _locs(await client.put(f"{base}/SKU-1", json={"quantity": "many"})) == [["body", "quantity"]]
    assert _locs(await client.put(f"{base}/bad%20sku", json={"quantity": 1})) == [["path", "sku"]]
    assert _locs(await client.put(f"{base}/{'X' * 65}", json={"quantity": 1})) == [["path", "sku"]]
    assert _locs(await client.get("/carts/not-a-uuid")) == [["path", "cart_id"]]


async def test_unknown_cart_is_404_on_every_route(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    responses = [
        await client.get(f"/carts/{missing}"),
        await client.put(f"/carts/{missing}/items/SKU-1", json={"quantity": 1}),
        await client.delete(f"/carts/{missing}/items/SKU-1"),
        await client.delete(f"/carts/{missing}"),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert responses[0].json() == {"detail": f"cart {missing} not found"}


async def test_delete_cart_removes_it_and_its_lines(
    client: httpx.AsyncClient, postgres_dsn: str, migrated_schema: str
) -> None:
    cart = await _new_cart(client)
    await client.put(f"/carts/{cart['id']}/items/SKU-1", json={"quantity": 3})

    deleted = await client.delete(f"/carts/{cart['id']}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"/carts/{cart['id']}")).status_code == 404
    assert (await client.delete(f"/carts/{cart['id']}")).status_code == 404
    connection = await asyncpg.connect(postgres_dsn, server_settings={"search_path": migrated_schema})
    try:
        lines = await connection.fetchval("SELECT count(*) FROM cart_lines WHERE cart_id = $1", uuid.UUID(cart["id"]))
    finally:
        await connection.close()
    assert lines == 0


@pytest.fixture
async def small_carts(settings_for, migrated_schema: str, serving) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings_for(migrated_schema, max_lines_per_cart=5))) as client:
        yield client


async def test_a_full_cart_refuses_a_new_line_but_updates_existing_ones(small_carts: httpx.AsyncClient) -> None:
    cart = await _new_cart(small_carts)
    base = f"/carts/{cart['id']}/items"
    for n in range(5):
        assert (await small_carts.put(f"{base}/SKU-{n}", json={"quantity": 1})).status_code == 200

    refused = await small_carts.put(f"{base}/SKU-9", json={"quantity": 1})
    updated = await small_carts.put(f"{base}/SKU-0", json={"quantity": 7})

    assert refused.status_code == 409
    assert refused.json() == {"detail": "a cart holds at most 5 lines"}
    assert updated.status_code == 200
    assert len(updated.json()["items"]) == 5


async def test_concurrent_new_lines_never_overfill_a_cart(small_carts: httpx.AsyncClient) -> None:
    cart = await _new_cart(small_carts)
    base = f"/carts/{cart['id']}/items"

    responses = await asyncio.gather(*(small_carts.put(f"{base}/SKU-{n}", json={"quantity": 1}) for n in range(12)))

    assert sorted(r.status_code for r in responses) == [200] * 5 + [409] * 7
    assert len((await small_carts.get(f"/carts/{cart['id']}")).json()["items"]) == 5


async def _chunks(body: bytes, size: int = 256) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_oversized_bodies_are_refused_with_413(client: httpx.AsyncClient) -> None:
    cart = await _new_cart(client)
    padding = "x" * (MAX_BODY_BYTES + 1)
    declared = await client.post("/carts", json={"customer_id": "cust_1", "currency": "EUR", "pad": padding})
    body = ('{"quantity": 1, "pad": "' + padding + '"}').encode()
    request = client.build_request(
        "PUT", f"/carts/{cart['id']}/items/SKU-1", content=_chunks(body), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    chunked = await client.send(request)

    assert declared.status_code == 413
    assert chunked.status_code == 413
    assert (await client.get(f"/carts/{cart['id']}")).json()["items"] == [], "the refused line was not stored"
