"""`make demo`'s checkout and trace against scripted HTTP peers: what it sends, what it prints, how it fails."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from checkout_stack import cli, demo
from checkout_stack.processes import ManagedProcess
from checkout_stack.settings import StackSettings
from checkout_stack.stack import Stack

SAGA = "3f0c9a62-8d1e-4c55-9a41-2d4b1c1e9f10"
STEPS = [
    {"at": "2026-01-01T10:00:00.000000Z", "state": "STARTED", "event": "CheckoutInitiated", "detail": ""},
    {"at": "2026-01-01T10:00:00.050000Z", "state": "PAYMENT_PENDING", "event": "InventoryReserved", "detail": ""},
    {"at": "2026-01-01T10:00:00.120000Z", "state": "COMPLETED", "event": "OrderCreated", "detail": "order o-1"},
]
URLS = {
    "gateway-bff": "http://127.0.0.1:8100",
    "inventory": "http://127.0.0.1:41002",
    "order": "http://127.0.0.1:41004",
    "payment": "http://127.0.0.1:41003",
}
"""Where each Service answers (as the node agent's proxies would say)."""


def platform(final: dict[str, object], seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    polls = iter([{"status": "PENDING", "state": "PAYMENT_PENDING", "steps": STEPS[:2]}])
    ports = {httpx.URL(url).port: service for service, url in URLS.items()}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        service, path = ports.get(request.url.port), request.url.path
        if service == "inventory" and path.startswith("/inventory/") and request.method == "GET":
            return httpx.Response(404, json={"detail": "SKU not found"})
        if service == "inventory" and path.startswith("/inventory/"):
            body = json.loads(request.content)
            return httpx.Response(200, json={**body, "sku": path.rsplit("/", 1)[1], "reserved": 0})
        if service == "gateway-bff" and path == "/api/checkout/initiate":
            return httpx.Response(202, json={"saga_id": SAGA, "status_url": f"/api/checkout/{SAGA}"})
        if service == "gateway-bff" and path == f"/api/checkout/{SAGA}":
            return httpx.Response(200, json=next(polls, final))
        if service == "order" and path == "/orders":
            lines = [{"sku": "DEMO-MUG", "quantity": 2}, {"sku": "DEMO-TEE", "quantity": 1}]
            total = {"amount_minor": 4900, "currency": "EUR"}
            return httpx.Response(200, json=[{"id": "o-1", "lines": lines, "total": total}])
        if service == "payment" and path == "/payments":
            payment = {"id": "p-1", "status": "CHARGED", "net_amount_minor": 4900, "currency": "EUR"}
            return httpx.Response(200, json=[payment])
        return httpx.Response(404)

    return handle


def test_a_completed_checkout_goes_through_each_service_and_prints_its_timeline_and_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "POLL_S", 0)
    seen: list[httpx.Request] = []
    final = {"status": "COMPLETED", "state": "COMPLETED", "steps": STEPS, "order_id": "o-1"}
    with httpx.Client(transport=httpx.MockTransport(platform(final, seen))) as http:
        assert demo.run_demo_checkout(URLS, http, logs="the logs") == SAGA

    err = capsys.readouterr().err
    stocked = [(r.url.port, json.loads(r.content)) for r in seen if r.method == "PUT"]
    assert stocked == [
        (41002, {"available": 100, "unit_price_minor": 1250, "currency": "EUR"}),
        (41002, {"available": 100, "unit_price_minor": 2400, "currency": "EUR"}),
    ]
    initiate = next(r for r in seen if r.url.path == "/api/checkout/initiate")
    assert initiate.url.port == 8100
    assert initiate.headers["Idempotency-Key"]
    assert json.loads(initiate.content)["items"] == [
        {"sku": "DEMO-MUG", "quantity": 2},
        {"sku": "DEMO-TEE", "quantity": 1},
    ]
    assert "10:00:00.000  + 0.000s  STARTED          CheckoutInitiated" in err
    assert "10:00:00.120  + 0.120s  COMPLETED        OrderCreated  (order o-1)" in err
    assert "order id: o-1" in err
    assert "payment p-1: CHARGED, net 49.00 EUR" in err


def test_a_failed_checkout_says_why_and_where_the_logs_are(monkeypatch: pytest.MonkeyPatch) -> None:
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
        pytest.raises(demo.DemoError, match=r"FAILED: FAILURE_CODE_OUT_OF_STOCK: DEMO-MUG: 0 available; logs: here"),
    ):
        demo.run_demo_checkout(URLS, http, logs="here")


def test_an_unreachable_service_is_named_with_its_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(refuse)) as http,
        pytest.raises(demo.DemoError, match=r"GET http://127\.0\.0\.1:41002/inventory/DEMO-MUG failed"),
    ):
        demo.run_demo_checkout(URLS, http, logs="here")


def test_demo_checkout_without_a_platform_or_services_says_how_to_start_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CHECKOUT_STACK_SERVICES__GATEWAY_PORT", "1")
    with pytest.raises(SystemExit, match=r"`make demo` installs and starts the platform, `make services`"):
        cli.main(["demo-checkout"])


# --- the trace -----------------------------------------------------------------------------------


def jaeger_span(span_id: str, service: str, parent: str | None = None, **tags: Any) -> dict[str, Any]:
    return {
        "traceID": "t1",
        "spanID": span_id,
        "operationName": f"{service} work",
        "references": [{"refType": "CHILD_OF", "spanID": parent}] if parent else [],
        "startTime": 1_000,
        "duration": 10,
        "tags": [{"key": k.replace("_", "."), "value": v} for k, v in tags.items()],
        "processID": service,
    }


def jaeger(answers: list[tuple[str, list[dict[str, Any]]]]) -> tuple[httpx.Client, list[httpx.Request]]:
    """A Jaeger query API answering each search with the next (trace id, spans), the last one again at the end."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        trace_id, spans = answers.pop(0) if len(answers) > 1 else answers[0]
        if not spans:
            return httpx.Response(200, json={"data": []})
        processes = {s["processID"]: {"serviceName": s["processID"]} for s in spans}
        return httpx.Response(200, json={"data": [{"traceID": trace_id, "spans": spans, "processes": processes}]})

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


WHOLE = [
    jaeger_span("a", "gateway-bff"),
    jaeger_span("b", "checkout-orchestrator", "a", checkout_saga_id=SAGA),
    jaeger_span("c", "inventory", "b"),
    jaeger_span("d", "payment", "b"),
    jaeger_span("e", "order", "b"),
]


def test_the_trace_is_shown_once_it_is_one_tree_with_every_service() -> None:
    # Nothing yet; then the orchestrator's batch is missing (the others' spans have no parent); then no payment.
    # (The trace ids tell the answers apart: the one returned is the answer it accepted.)
    no_orchestrator = [WHOLE[0], WHOLE[2], WHOLE[3], WHOLE[4]]
    no_payment = [WHOLE[0], WHOLE[1], WHOLE[2], WHOLE[4]]
    http, seen = jaeger([("t0", []), ("t0", []), ("t1", no_orchestrator), ("t2", no_payment), ("t3", WHOLE)])
    with http:
        assert demo.wait_for_trace("http://jaeger", SAGA, settle_s=0, poll_s=0, timeout_s=5, http=http) == "t3"
    assert all(json.loads(r.url.params["tags"]) == {"checkout.saga.id": SAGA} for r in seen)


def test_a_trace_still_incomplete_at_the_deadline_is_shown_as_it_is() -> None:
    http, _ = jaeger([("t1", WHOLE[:2])])
    with http:
        assert demo.wait_for_trace("http://jaeger", SAGA, settle_s=0, poll_s=0, timeout_s=0.05, http=http) == "t1"


def test_no_trace_at_all_says_where_it_was_looked_for() -> None:
    http, _ = jaeger([("t0", [])])
    with http, pytest.raises(demo.DemoError, match=r"no trace of saga .* reached Jaeger at http://jaeger"):
        demo.wait_for_trace("http://jaeger", SAGA, settle_s=0, poll_s=0, timeout_s=0.05, http=http)


def test_the_platform_manifest_points_at_the_stack_and_keeps_the_examples_services() -> None:
    obj = demo.demo_manifest(
        demo.DEMO,
        bootstrap_servers="127.0.0.1:29092",
        dsn="postgresql://postgres:pw@127.0.0.1:25432/postgres",
        otlp_endpoint="http://127.0.0.1:14318",
    )
    spec = obj["spec"]
    assert obj["metadata"] == {"name": "checkout"}
    assert spec["kafka"]["bootstrapServers"] == ["127.0.0.1:29092"]
    assert spec["kafka"]["topicPrefix"] == "checkout-demo"
    assert spec["postgres"] | {"adminSecretRef": None} == {
        "host": "127.0.0.1",
        "port": 25432,
        "database": "checkout",
        "adminSecretRef": None,
    }
    assert spec["postgres"]["adminSecretRef"]["name"] == "checkout-postgres-admin"
    assert spec["tracing"] == {"otlpEndpoint": "http://127.0.0.1:14318", "samplingRatio": 1.0}
    assert spec["services"]["cart"] == {"enabled": False}
    assert spec["services"]["gateway-bff"]["replicas"] == 2
    assert spec["deletionPolicy"] == "Retain"


def test_the_demo_stops_make_services_processes_first_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    gateway = ManagedProcess("gateway-bff", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
    gateway.start()
    try:
        demo._make_way(Stack(StackSettings()))
        assert not gateway.running()
        err = capsys.readouterr().err
        assert "stop `make services`' processes (gateway-bff): they hold the ports the platform's Services take" in err
    finally:
        gateway.stop()


def test_nothing_to_stop_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    demo._make_way(Stack(StackSettings()))
    assert capsys.readouterr().err == ""
