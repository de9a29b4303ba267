"""`checkout-stack demo-checkout` against a scripted HTTP peer: what it sends, what it prints, how it fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from checkout_stack import cli, demo
from checkout_stack.settings import StackSettings
from checkout_stack.stack import Stack

SAGA = "3f0c9a62-8d1e-4c55-9a41-2d4b1c1e9f10"
STEPS = [
    {"at": "2026-01-01T10:00:00.000000Z", "state": "STARTED", "event": "CheckoutInitiated", "detail": ""},
    {"at": "2026-01-01T10:00:00.050000Z", "state": "PAYMENT_PENDING", "event": "InventoryReserved", "detail": ""},
    {"at": "2026-01-01T10:00:00.120000Z", "state": "COMPLETED", "event": "OrderCreated", "detail": "order o-1"},
]


def platform(final: dict[str, object], seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    polls = iter([{"status": "PENDING", "state": "PAYMENT_PENDING", "steps": STEPS[:2]}])

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.startswith("/inventory/") and request.method == "GET":
            return httpx.Response(404, json={"detail": "SKU not found"})
        if path.startswith("/inventory/"):
            body = json.loads(request.content)
            return httpx.Response(200, json={**body, "sku": path.rsplit("/", 1)[1], "reserved": 0})
        if path == "/api/checkout/initiate":
            return httpx.Response(202, json={"saga_id": SAGA, "status_url": f"/api/checkout/{SAGA}"})
        if path == f"/api/checkout/{SAGA}":
            return httpx.Response(200, json=next(polls, final))
        if path == "/orders":
            lines = [{"sku": "DEMO-MUG", "quantity": 2}, {"sku": "DEMO-TEE", "quantity": 1}]
            total = {"amount_minor": 4900, "currency": "EUR"}
            return httpx.Response(200, json=[{"id": "o-1", "lines": lines, "total": total}])
        if path == "/payments":
            payment = {"id": "p-1", "status": "CHARGED", "net_amount_minor": 4900, "currency": "EUR"}
            return httpx.Response(200, json=[payment])
        return httpx.Response(404)

    return handle


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    return Stack(StackSettings())


def test_a_completed_checkout_prints_its_timeline_and_order(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "POLL_S", 0)
    seen: list[httpx.Request] = []
    final = {"status": "COMPLETED", "state": "COMPLETED", "steps": STEPS, "order_id": "o-1"}
    with httpx.Client(transport=httpx.MockTransport(platform(final, seen))) as http:
        demo.run_demo_checkout(stack, http)

    err = capsys.readouterr().err
    stocked = [json.loads(r.content) for r in seen if r.method == "PUT"]
    assert stocked == [
        {"available": 100, "unit_price_minor": 1250, "currency": "EUR"},
        {"available": 100, "unit_price_minor": 2400, "currency": "EUR"},
    ]
    initiate = next(r for r in seen if r.url.path == "/api/checkout/initiate")
    assert initiate.headers["Idempotency-Key"]
    assert json.loads(initiate.content)["items"] == [
        {"sku": "DEMO-MUG", "quantity": 2},
        {"sku": "DEMO-TEE", "quantity": 1},
    ]
    assert "10:00:00.000  + 0.000s  STARTED          CheckoutInitiated" in err
    assert "10:00:00.120  + 0.120s  COMPLETED        OrderCreated  (order o-1)" in err
    assert "order id: o-1" in err
    assert "payment p-1: CHARGED, net 49.00 EUR" in err


def test_a_failed_checkout_exits_with_its_reason(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "POLL_S", 0)
    final = {
        "status": "FAILED",
        "state": "FAILED",
        "steps": STEPS[:1],
        "failure_code": "FAILURE_CODE_OUT_OF_STOCK",
        "failure_reason": "DEMO-MUG: 0 available",
    }
    with (
        httpx.Client(transport=httpx.MockTransport(platform(final, []))) as http,
        pytest.raises(SystemExit, match="FAILED: FAILURE_CODE_OUT_OF_STOCK: DEMO-MUG: 0 available"),
    ):
        demo.run_demo_checkout(stack, http)


def test_without_the_services_it_says_how_to_start_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CHECKOUT_STACK_SERVICES__GATEWAY_PORT", "1")
    with pytest.raises(SystemExit, match="make services"):
        cli.main(["demo-checkout"])
