"""Following a checkout: the orchestrator's saga as PENDING/COMPLETED/FAILED, and every way that can fail."""

from __future__ import annotations

import uuid

import httpx
import pytest
from gateway_harness import FakeOrchestrator, closed_port_url, saga_json

from checkout_gateway.main import create_app

pytestmark = pytest.mark.integration


def new_saga_id() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("STARTED", "PENDING"),
        ("INVENTORY_RESERVATION_PENDING", "PENDING"),
        ("PAYMENT_PENDING", "PENDING"),
        ("ORDER_CREATION_PENDING", "PENDING"),
        ("COMPENSATING", "PENDING"),
        ("COMPLETED", "COMPLETED"),
        ("FAILED", "FAILED"),
    ],
)
async def test_the_saga_state_maps_to_a_public_status(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator, state: str, status: str
) -> None:
    saga_id = new_saga_id()
    orchestrator.sagas[saga_id] = saga_json(saga_id, state)

    response = await client.get(f"/api/checkout/{saga_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["saga_id"], body["status"], body["state"]) == (saga_id, status, state)


async def test_a_completed_checkout_shows_its_order_timeline_and_trace(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator
) -> None:
    saga_id = new_saga_id()
    orchestrator.sagas[saga_id] = saga_json(saga_id, "COMPLETED", order_id="ord-1", trace_id="ab" * 16)

    body = (await client.get(f"/api/checkout/{saga_id}")).json()

    assert body == {
        "saga_id": saga_id,
        "status": "COMPLETED",
        "state": "COMPLETED",
        "steps": [
            {"at": "2026-01-02T03:04:05.123456Z", "state": "STARTED", "event": "CheckoutInitiated", "detail": None},
            {
                "at": "2026-01-02T03:04:05.223456Z",
                "state": "COMPLETED",
                "event": "SomethingHappened",
                "detail": "details",
            },
        ],
        "order_id": "ord-1",
        "failure_code": None,
        "failure_reason": None,
        "trace_id": "ab" * 16,
    }


async def test_a_failed_checkout_says_why(client: httpx.AsyncClient, orchestrator: FakeOrchestrator) -> None:
    saga_id = new_saga_id()
    orchestrator.sagas[saga_id] = saga_json(
        saga_id, "FAILED", failure_code="PAYMENT_DECLINED", failure_reason="Your card was declined."
    )

    body = (await client.get(f"/api/checkout/{saga_id}")).json()

    assert body["status"] == "FAILED"
    assert body["failure_code"] == "PAYMENT_DECLINED"
    assert body["failure_reason"] == "Your card was declined."
    assert body["order_id"] is None


async def test_an_accepted_checkout_the_orchestrator_has_not_seen_is_pending_in_state_started(
    client: httpx.AsyncClient,
) -> None:
    accepted = await client.post(
        "/api/checkout/initiate",
        json={
            "customer_id": "c1",
            "items": [{"sku": "S", "quantity": 1}],
            "currency": "EUR",
            "payment_token": "tok_visa",
        },
    )
    saga_id = accepted.json()["saga_id"]

    response = await client.get(accepted.json()["status_url"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["saga_id"], body["status"], body["state"]) == (saga_id, "PENDING", "STARTED")
    (step,) = body["steps"]
    assert step["state"] == "STARTED"
    assert step["event"] == "CheckoutInitiated"
    assert body["order_id"] is None


async def test_a_checkout_unknown_everywhere_is_404(client: httpx.AsyncClient) -> None:
    saga_id = new_saga_id()
    response = await client.get(f"/api/checkout/{saga_id}")
    assert response.status_code == 404
    assert response.json()["detail"] == f"checkout {saga_id} not found"


@pytest.mark.parametrize("saga_id", ["not-a-uuid", "123", "' OR 1=1 --"])
async def test_a_malformed_saga_id_is_422(client: httpx.AsyncClient, saga_id: str) -> None:
    response = await client.get(f"/api/checkout/{saga_id}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "saga_id"]


async def test_orchestrator_down_is_503_with_detail(settings_for, serving) -> None:
    async with serving(create_app(settings_for(orchestrator_url=closed_port_url()))) as client:
        response = await client.get(f"/api/checkout/{new_saga_id()}")

    assert response.status_code == 503
    assert "orchestrator service is unavailable" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"


async def test_a_slow_orchestrator_is_504(client: httpx.AsyncClient, orchestrator: FakeOrchestrator) -> None:
    saga_id = new_saga_id()
    orchestrator.sagas[saga_id] = saga_json(saga_id, "COMPLETED")
    orchestrator.slow.add(saga_id)

    response = await client.get(f"/api/checkout/{saga_id}")

    assert response.status_code == 504
    assert response.json()["detail"] == "the orchestrator service did not answer within 1s"


async def test_an_orchestrator_error_or_garbage_is_502(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator
) -> None:
    broken, garbled, wrong = new_saga_id(), new_saga_id(), new_saga_id()
    orchestrator.broken.add(broken)
    orchestrator.garbled.add(garbled)
    orchestrator.sagas[wrong] = saga_json(new_saga_id(), "COMPLETED")

    failed = await client.get(f"/api/checkout/{broken}")
    unreadable = await client.get(f"/api/checkout/{garbled}")
    mismatched = await client.get(f"/api/checkout/{wrong}")

    assert failed.status_code == unreadable.status_code == mismatched.status_code == 502
    assert failed.json()["detail"] == "the orchestrator service answered 500 Internal Server Error"
    assert "unreadable saga" in unreadable.json()["detail"]
    assert "when asked for" in mismatched.json()["detail"]


async def test_readiness_covers_database_kafka_and_relay_but_not_the_upstreams(settings_for, serving) -> None:
    settings = settings_for(orchestrator_url=closed_port_url(), cart_url=closed_port_url())
    async with serving(create_app(settings)) as client:
        response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "kafka": "ok", "outbox relay": "ok"}
