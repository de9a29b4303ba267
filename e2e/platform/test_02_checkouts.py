"""Checkouts through the gateway's Service: load, every failure path, and the cart proxied by the gateway."""

from __future__ import annotations

import asyncio
import time

import pytest
from deployed import DeployedPlatform
from saga_platform import Client, checkout_body, net_charge, outcome, run_concurrently

pytestmark = pytest.mark.integration


def test_fifty_concurrent_checkouts_all_complete(platform: DeployedPlatform, client: Client) -> None:
    bodies = [checkout_body({"PE2E-HAPPY": 1}, customer=f"cust_load_{i}") for i in range(50)]
    final, seconds = asyncio.run(run_concurrently(platform, bodies, timeout_s=120, poll_interval_s=1.0))
    outcomes = sorted({outcome(f) for f in final})
    platform.record("50 concurrent checkouts", ", ".join(outcomes), seconds)
    assert outcomes == ["COMPLETED"]
    for saga in final:
        assert len(client.orders(saga["saga_id"])) == 1
        assert net_charge(client.payments(saga["saga_id"])) == 1_999
    stock = client.stock("PE2E-HAPPY")
    # A completed checkout's reservation stays held (the units are sold): 50 out of the 200 seeded.
    assert (stock["available"], stock["reserved"]) == (150, 50)


def test_declined_payment_releases_the_stock(platform: DeployedPlatform, client: Client) -> None:
    began = time.monotonic()
    saga_id = client.start(checkout_body({"PE2E-DECLINE": 2}, card="tok_chargeDeclined"))
    final = client.wait(saga_id, timeout_s=60)
    platform.record("declined payment", outcome(final), time.monotonic() - began)
    assert final["status"] == "FAILED"
    assert final["failure_code"] == "FAILURE_CODE_PAYMENT_DECLINED"
    assert net_charge(client.payments(saga_id)) == 0
    assert client.orders(saga_id) == []
    assert client.stock("PE2E-DECLINE")["available"] == 10


def test_out_of_stock_fails_before_any_charge(platform: DeployedPlatform, client: Client) -> None:
    began = time.monotonic()
    saga_id = client.start(checkout_body({"PE2E-SCARCE": 2}))
    final = client.wait(saga_id, timeout_s=60)
    platform.record("out of stock", outcome(final), time.monotonic() - began)
    assert final["status"] == "FAILED"
    assert final["failure_code"] == "FAILURE_CODE_OUT_OF_STOCK"
    assert client.payments(saga_id) == []
    assert client.stock("PE2E-SCARCE")["available"] == 1


def test_hung_payment_hits_its_deadline_and_is_compensated(platform: DeployedPlatform, client: Client) -> None:
    began = time.monotonic()
    saga_id = client.start(checkout_body({"PE2E-TIMEOUT": 1}, card="tok_timeout"))
    final = client.wait(saga_id, timeout_s=90)
    seconds = time.monotonic() - began
    platform.record("hung payment → deadline → compensation", outcome(final), seconds)
    assert final["status"] == "FAILED"
    states = [step["state"] for step in final["steps"]]
    assert "COMPENSATING" in states, states
    assert net_charge(client.payments(saga_id)) == 0
    stock = client.stock("PE2E-TIMEOUT")
    assert (stock["available"], stock["reserved"]) == (10, 0)
    assert seconds >= 10, "the saga failed before its 10 s payment deadline could have passed"


def test_a_cart_checkout_goes_through_the_gateways_cart_proxy(platform: DeployedPlatform, client: Client) -> None:
    began = time.monotonic()
    bff = platform.bff_url
    created = client.http.post(f"{bff}/api/carts", json={"customer_id": "cust_cart", "currency": "EUR"})
    assert created.status_code == 201, created.text
    cart_id = created.json()["id"]
    added = client.http.put(f"{bff}/api/carts/{cart_id}/items/PE2E-CART", json={"quantity": 3})
    assert added.status_code == 200, added.text
    saga_id = client.start({"customer_id": "cust_cart", "cart_id": cart_id, "payment_token": "tok_visa"})
    final = client.wait(saga_id, timeout_s=60)
    platform.record("cart checkout via the gateway", outcome(final), time.monotonic() - began)
    assert final["status"] == "COMPLETED"
    assert net_charge(client.payments(saga_id)) == 3 * 700
