"""The cart routes through the gateway, and checkouts that start from a cart (real cart service)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from gateway_harness import closed_port_url, envelope_of, records_of_saga

from checkout_gateway.main import create_app
from checkout_kit.testing import Kafka

pytestmark = pytest.mark.integration


async def new_cart(client: httpx.AsyncClient, customer_id: str = "cust_cart", currency: str = "EUR") -> str:
    response = await client.post("/api/carts", json={"customer_id": customer_id, "currency": currency})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_cart_crud_passes_through_with_status_codes_and_bodies(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/carts", json={"customer_id": "cust_p", "currency": "USD"})
    assert created.status_code == 201
    cart_id = created.json()["id"]
    assert created.headers["location"] == f"/api/carts/{cart_id}"
    assert created.headers["content-type"] == "application/json"

    put = await client.put(f"/api/carts/{cart_id}/items/SKU-1", json={"quantity": 3})
    assert put.status_code == 200
    assert put.json()["items"] == [{"sku": "SKU-1", "quantity": 3}]
    read = await client.get(f"/api/carts/{cart_id}")
    assert read.status_code == 200
    assert read.json()["customer_id"] == "cust_p"

    removed = await client.delete(f"/api/carts/{cart_id}/items/SKU-1")
    assert removed.status_code == 200
    assert removed.json()["items"] == []
    deleted = await client.delete(f"/api/carts/{cart_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    gone = await client.get(f"/api/carts/{cart_id}")
    assert gone.status_code == 404
    assert gone.json() == {"detail": f"cart {cart_id} not found"}


async def test_cart_validation_errors_come_back_with_field_detail(client: httpx.AsyncClient) -> None:
    bad_currency = await client.post("/api/carts", json={"customer_id": "c", "currency": "eur"})
    assert bad_currency.status_code == 422
    assert [e["loc"] for e in bad_currency.json()["detail"]] == [["body", "currency"]]

    cart_id = await new_cart(client)
    bad_quantity = await client.put(f"/api/carts/{cart_id}/items/SKU-1", json={"quantity": 1001})
    assert bad_quantity.status_code == 422
    assert [e["loc"] for e in bad_quantity.json()["detail"]] == [["body", "quantity"]]


async def test_paths_outside_the_cart_routes_cannot_be_reached(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/carts/not-a-uuid")).status_code == 422
    cart_id = await new_cart(client)
    assert (await client.put(f"/api/carts/{cart_id}/items/bad%20sku", json={"quantity": 1})).status_code == 422
    assert (await client.get(f"/api/carts/{cart_id}/..%2F..%2Freadyz")).status_code in (404, 422)


async def test_cart_service_down_is_503_with_detail(settings_for, serving) -> None:
    async with serving(create_app(settings_for(cart_url=closed_port_url()))) as client:
        proxied = await client.get(f"/api/carts/{uuid.uuid4()}")
        checkout = await client.post(
            "/api/checkout/initiate",
            json={"customer_id": "c", "cart_id": str(uuid.uuid4()), "payment_token": "tok_visa"},
        )

    assert proxied.status_code == checkout.status_code == 503
    assert "cart service is unavailable" in proxied.json()["detail"]
    assert "cart service is unavailable" in checkout.json()["detail"]


async def test_checkout_from_a_cart_publishes_its_lines_and_currency(client: httpx.AsyncClient, kafka: Kafka) -> None:
    cart_id = await new_cart(client, "cust_cart", "GBP")
    await client.put(f"/api/carts/{cart_id}/items/SKU-2", json={"quantity": 2})
    await client.put(f"/api/carts/{cart_id}/items/SKU-1", json={"quantity": 5})

    response = await client.post(
        "/api/checkout/initiate", json={"customer_id": "cust_cart", "cart_id": cart_id, "payment_token": "tok_visa"}
    )

    assert response.status_code == 202, response.text
    saga_id = response.json()["saga_id"]
    (record,) = await records_of_saga(kafka, kafka.topics.checkout_events, saga_id)
    event = envelope_of(record).message
    assert event.cart_id == cart_id  # type: ignore[attr-defined]
    assert event.currency == "GBP"  # type: ignore[attr-defined]
    assert [(line.sku, line.quantity) for line in event.items] == [("SKU-1", 5), ("SKU-2", 2)]  # type: ignore[attr-defined]


async def test_a_retry_of_a_cart_checkout_returns_the_saga_even_after_the_cart_is_gone(
    client: httpx.AsyncClient,
) -> None:
    cart_id = await new_cart(client)
    await client.put(f"/api/carts/{cart_id}/items/SKU-1", json={"quantity": 1})
    body = {"customer_id": "cust_cart", "cart_id": cart_id, "payment_token": "tok_visa"}
    key = {"Idempotency-Key": str(uuid.uuid4())}

    first = await client.post("/api/checkout/initiate", json=body, headers=key)
    await client.delete(f"/api/carts/{cart_id}")
    retry = await client.post("/api/checkout/initiate", json=body, headers=key)

    assert first.status_code == retry.status_code == 202
    assert retry.json()["saga_id"] == first.json()["saga_id"]


def _only_error(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return error  # type: ignore[no-any-return]


async def test_cart_checkouts_that_cannot_start_are_422_with_detail(client: httpx.AsyncClient) -> None:
    unknown = str(uuid.uuid4())
    error = _only_error(
        await client.post(
            "/api/checkout/initiate", json={"customer_id": "cust_cart", "cart_id": unknown, "payment_token": "tok_visa"}
        )
    )
    assert error["loc"] == ["body", "cart_id"]
    assert error["msg"] == f"cart {unknown} not found"

    empty = await new_cart(client)
    error = _only_error(
        await client.post(
            "/api/checkout/initiate", json={"customer_id": "cust_cart", "cart_id": empty, "payment_token": "tok_visa"}
        )
    )
    assert error["msg"] == f"cart {empty} is empty: add items first"

    theirs = await new_cart(client, "someone_else")
    await client.put(f"/api/carts/{theirs}/items/SKU-1", json={"quantity": 1})
    error = _only_error(
        await client.post(
            "/api/checkout/initiate", json={"customer_id": "cust_cart", "cart_id": theirs, "payment_token": "tok_visa"}
        )
    )
    assert error["msg"] == f"cart {theirs} belongs to another customer"

    euros = await new_cart(client)
    await client.put(f"/api/carts/{euros}/items/SKU-1", json={"quantity": 1})
    error = _only_error(
        await client.post(
            "/api/checkout/initiate",
            json={"customer_id": "cust_cart", "cart_id": euros, "currency": "USD", "payment_token": "tok_visa"},
        )
    )
    assert error["loc"] == ["body", "currency"]
    assert error["msg"] == f"cart {euros} is in EUR, not USD"
