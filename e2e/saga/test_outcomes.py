"""Each way a checkout ends, seen through the gateway and confirmed by every participant's own API."""

from __future__ import annotations

import time

import pytest
from saga_platform import STOCK, Client, SagaPlatform, checkout_body, net_charge, outcome

pytestmark = pytest.mark.integration

FORWARD = ["INVENTORY_RESERVATION_PENDING", "PAYMENT_PENDING", "ORDER_CREATION_PENDING", "COMPLETED"]


def states(final: dict[str, object]) -> list[str]:
    """The states the saga went through, in order (a state the timeline repeats counts once)."""
    steps = final["steps"]
    assert isinstance(steps, list)
    visited: list[str] = []
    for step in steps:
        if not visited or visited[-1] != step["state"]:
            visited.append(step["state"])
    return visited


def checkout(platform: SagaPlatform, client: Client, scenario: str, body: dict[str, object]) -> tuple[str, dict]:
    began = time.monotonic()
    saga_id = client.start(body)
    final = client.wait(saga_id, timeout_s=30)
    platform.record(scenario, outcome(final), time.monotonic() - began)
    return saga_id, final


def unchanged_stock(client: Client, sku: str) -> None:
    stock = client.stock(sku)
    assert (stock["available"], stock["reserved"]) == (STOCK[sku][0], 0), stock


def test_a_paid_checkout_completes_with_one_order_and_one_charge(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-HAPPY"
    saga_id, final = checkout(platform, client, "happy path (tok_visa)", checkout_body({sku: 2}))

    assert final["status"] == "COMPLETED", final
    assert final["failure_code"] is None
    assert states(final) == ["STARTED", *FORWARD], final["steps"]
    total = 2 * STOCK[sku][1]
    orders = client.orders(saga_id)
    assert len(orders) == 1, orders
    assert orders[0]["id"] == final["order_id"]
    assert orders[0]["total"] == {"amount_minor": total, "currency": "EUR"}
    assert [(line["sku"], line["quantity"]) for line in orders[0]["lines"]] == [(sku, 2)]
    payments = client.payments(saga_id)
    assert [p["status"] for p in payments] == ["CHARGED"], payments
    assert net_charge(payments) == total
    stock = client.stock(sku)
    assert (stock["available"], stock["reserved"]) == (STOCK[sku][0] - 2, 2), "sold units stay held"


def test_out_of_stock_fails_without_charging(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-SCARCE"
    saga_id, final = checkout(platform, client, "out of stock", checkout_body({sku: STOCK[sku][0] + 1}))

    assert final["status"] == "FAILED", final
    assert final["failure_code"] == "FAILURE_CODE_OUT_OF_STOCK"
    assert "PAYMENT_PENDING" not in states(final)
    assert client.payments(saga_id) == []
    assert client.orders(saga_id) == []
    assert final["order_id"] is None
    assert [r["status"] for r in client.reservations(saga_id)] != ["HELD"]
    unchanged_stock(client, sku)


def test_a_declined_payment_releases_the_reservation(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-DECLINE"
    body = checkout_body({sku: 3}, card="tok_chargeDeclined")
    saga_id, final = checkout(platform, client, "payment declined (tok_chargeDeclined)", body)

    assert final["status"] == "FAILED", final
    assert final["failure_code"] == "FAILURE_CODE_PAYMENT_DECLINED"
    payments = client.payments(saga_id)
    assert [p["status"] for p in payments] == ["DECLINED"], payments
    assert net_charge(payments) == 0
    assert [r["status"] for r in client.reservations(saga_id)] == ["RELEASED"]
    assert client.orders(saga_id) == []
    unchanged_stock(client, sku)


def test_a_refused_order_refunds_and_releases(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-ORDERFAIL"
    body = checkout_body({sku: 1}, customer="cust_order_fail")
    saga_id, final = checkout(platform, client, "order refused (cust_order_fail)", body)

    assert final["status"] == "FAILED", final
    assert final["failure_code"] == "FAILURE_CODE_ORDER_REJECTED"
    assert "COMPENSATING" in states(final)
    payments = client.payments(saga_id)
    assert [p["status"] for p in payments] == ["REFUNDED"], payments
    assert [r["amount_minor"] for r in payments[0]["refunds"]] == [STOCK[sku][1]]
    assert net_charge(payments) == 0
    assert [r["status"] for r in client.reservations(saga_id)] == ["RELEASED"]
    assert client.orders(saga_id) == []
    unchanged_stock(client, sku)


@pytest.mark.usefixtures("short_deadlines")
def test_a_hung_payment_hits_its_deadline_and_is_compensated(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-TIMEOUT"
    body = checkout_body({sku: 2}, card="tok_timeout")
    saga_id, final = checkout(platform, client, "payment hangs (tok_timeout)", body)

    assert final["status"] == "FAILED", final
    assert final["failure_code"] == "FAILURE_CODE_DEADLINE_EXCEEDED"
    assert "COMPENSATING" in states(final)
    payments = client.payments(saga_id)
    assert len(payments) == 1, payments
    assert payments[0]["status"] in ("VOIDED", "REFUNDED"), payments
    assert net_charge(payments) == 0
    assert [r["status"] for r in client.reservations(saga_id)] == ["RELEASED"]
    assert client.orders(saga_id) == []
    unchanged_stock(client, sku)
