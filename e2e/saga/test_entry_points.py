"""Ways into a checkout besides a list of items: a cart, and a retried request with an Idempotency-Key."""

from __future__ import annotations

import time
import uuid

import pytest
from saga_platform import STOCK, Client, SagaPlatform, checkout_body, net_charge, outcome

pytestmark = pytest.mark.integration


def test_a_cart_checks_out_with_its_lines(platform: SagaPlatform, client: Client) -> None:
    bff = platform.bff_url
    created = client.http.post(f"{bff}/api/carts", json={"customer_id": "cust_cart", "currency": "EUR"})
    assert created.status_code == 201, created.text
    cart_id = created.json()["id"]
    for sku, quantity in (("E2E-CART-A", 2), ("E2E-CART-B", 1)):
        added = client.http.put(f"{bff}/api/carts/{cart_id}/items/{sku}", json={"quantity": quantity})
        assert added.status_code in (200, 201), added.text

    began = time.monotonic()
    saga_id = client.start({"customer_id": "cust_cart", "cart_id": cart_id, "payment_token": "tok_visa"})
    final = client.wait(saga_id, timeout_s=30)
    platform.record("checkout from a cart", outcome(final), time.monotonic() - began)

    assert final["status"] == "COMPLETED", final
    total = 2 * STOCK["E2E-CART-A"][1] + STOCK["E2E-CART-B"][1]
    orders = client.orders(saga_id)
    assert len(orders) == 1, orders
    assert sorted((line["sku"], line["quantity"]) for line in orders[0]["lines"]) == [
        ("E2E-CART-A", 2),
        ("E2E-CART-B", 1),
    ]
    assert orders[0]["customer_id"] == "cust_cart"
    assert orders[0]["total"] == {"amount_minor": total, "currency": "EUR"}
    assert net_charge(client.payments(saga_id)) == total


def test_a_retry_with_the_same_idempotency_key_returns_the_same_saga(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-IDEM"
    key = str(uuid.uuid4())
    body = checkout_body({sku: 1}, customer="cust_idem")

    began = time.monotonic()
    first = client.initiate(body, idempotency_key=key)
    retried = client.initiate(body, idempotency_key=key)
    other_body = client.initiate(checkout_body({sku: 2}, customer="cust_idem"), idempotency_key=key)

    assert first.status_code == 202, first.text
    assert retried.status_code == 202, retried.text
    saga_id = first.json()["saga_id"]
    assert retried.json()["saga_id"] == saga_id
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert other_body.status_code == 409, "a reused key with another body is refused"
    final = client.wait(saga_id, timeout_s=30)
    platform.record("Idempotency-Key retry", f"{outcome(final)}, same saga", time.monotonic() - began)
    assert final["status"] == "COMPLETED", final
    assert len(client.orders(saga_id)) == 1
    assert net_charge(client.payments(saga_id)) == STOCK[sku][1]
    stock = client.stock(sku)
    assert (stock["available"], stock["reserved"]) == (STOCK[sku][0] - 1, 1), "one unit taken, not two"
    by_customer = client.http.get(f"{platform.url('order')}/orders", params={"customer_id": "cust_idem"}).json()
    assert [order["saga_id"] for order in by_customer] == [saga_id], "the retry created no second checkout"
