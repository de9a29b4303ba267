"""``GET /sagas/{id}`` and ``GET /sagas`` on real sagas; readiness; the schema matches the models."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from checkout_kit.db import create_engine
from checkout_kit.migrations import model_drift, upgrade_to_head
from checkout_orchestrator.main import MIGRATIONS
from checkout_orchestrator.storage.tables import metadata

pytestmark = pytest.mark.integration


async def test_a_saga_shows_its_timeline_in_order(harness) -> None:
    async with harness.app() as client:
        saga_id = (await harness.initiate()).saga_id
        saga = await harness.wait_status(client, saga_id, "COMPLETED")

    assert [(step["state"], step["event"]) for step in saga["steps"]] == [
        ("STARTED", "CheckoutInitiated"),
        ("INVENTORY_RESERVATION_PENDING", "reserving inventory"),
        ("INVENTORY_RESERVATION_PENDING", "ReserveInventory sent"),
        ("PAYMENT_PENDING", "InventoryReserved"),
        ("PAYMENT_PENDING", "ProcessPayment sent"),
        ("ORDER_CREATION_PENDING", "PaymentProcessed"),
        ("ORDER_CREATION_PENDING", "CreateOrder sent"),
        ("COMPLETED", "OrderCreated"),
    ]
    times = [dt.datetime.fromisoformat(step["at"]) for step in saga["steps"]]
    assert times == sorted(times)
    assert dt.datetime.fromisoformat(saga["created_at"]) <= dt.datetime.fromisoformat(saga["updated_at"])
    assert saga["saga_id"] == saga_id
    assert saga["reservation_id"] == f"res-{saga_id[:8]}"
    assert "payment_token" not in saga


async def test_an_unknown_saga_is_404_and_a_malformed_id_422(harness) -> None:
    async with harness.app() as client:
        missing = await client.get(f"/sagas/{uuid.uuid4()}")
        malformed = await client.get("/sagas/not-a-saga-id")
    assert missing.status_code == 404
    assert "not found" in missing.json()["detail"]
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["path", "saga_id"]


async def test_sagas_are_listed_newest_first_and_filtered_by_status_and_state(harness) -> None:
    async with harness.app() as client:
        completed = (await harness.initiate()).saga_id
        await harness.wait_status(client, completed, "COMPLETED")
        failed = (await harness.initiate(sku="OUT-OF-STOCK")).saga_id
        await harness.wait_status(client, failed, "FAILED")
        pending = (await harness.initiate(payment="tok_timeout")).saga_id
        await harness.wait_state(client, pending, "PAYMENT_PENDING")

        async def ids(query: str) -> list[str]:
            response = await client.get(f"/sagas{query}")
            assert response.status_code == 200, response.text
            return [saga["saga_id"] for saga in response.json()["sagas"]]

        assert await ids("") == [pending, failed, completed]
        assert await ids("?status=FAILED") == [failed]
        assert await ids("?status=COMPLETED") == [completed]
        assert await ids("?status=PENDING") == [pending]
        assert await ids("?state=PAYMENT_PENDING") == [pending]
        assert await ids("?status=PENDING&state=COMPLETED") == []
        assert await ids("?limit=2") == [pending, failed]
        listed = (await client.get("/sagas?status=FAILED")).json()["sagas"][0]
        assert listed["failure_code"] == "FAILURE_CODE_OUT_OF_STOCK"
        assert "steps" not in listed
        for bad in ("?status=DONE", "?state=NOWHERE", "?limit=0", "?limit=501"):
            assert (await client.get(f"/sagas{bad}")).status_code == 422, bad


async def test_ready_once_consumer_relay_and_deadline_scanner_run(harness) -> None:
    async with harness.app() as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert {"database", "kafka", "outbox relay", "saga consumer", "deadline scanner"} <= set(response.json()["checks"])


async def test_models_match_the_migrations(harness) -> None:
    settings = harness.settings()
    await upgrade_to_head(settings.database, MIGRATIONS)
    engine = create_engine(settings.database)
    try:
        assert await model_drift(engine, metadata, settings.database.db_schema) == []
    finally:
        await engine.dispose()
