"""Probes and metrics of the real cart app: readiness follows the database, metrics its routes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from checkout_cart.main import create_app

pytestmark = pytest.mark.integration


async def test_live_and_ready_with_the_database_only(client: httpx.AsyncClient) -> None:
    live = await client.get("/livez")
    ready = await client.get("/readyz")

    assert live.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readyz_turns_503_naming_the_database_when_it_becomes_unreachable(
    settings_for, migrated_schema: str, postgres_dsn: str, postgres_proxy, dsn_via, serving
) -> None:
    app = create_app(settings_for(migrated_schema, url=dsn_via(postgres_dsn, postgres_proxy)))
    async with serving(app) as client:
        assert (await client.get("/readyz")).status_code == 200

        await postgres_proxy.cut()
        async with asyncio.timeout(10):
            unready = await client.get("/readyz")

        assert unready.status_code == 503
        body = unready.json()
        assert body["status"] == "unready"
        assert body["failed"] == ["database"]
        assert body["checks"]["database"].startswith("failed:")
        assert (await client.get("/livez")).status_code == 200, "liveness does not depend on the database"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    created = await client.post("/carts", json={"customer_id": "cust_m", "currency": "EUR"})
    for _ in range(3):
        await client.get(f"/carts/{created.json()['id']}")

    text = (await client.get("/metrics")).text
    openmetrics = await client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})

    assert 'http_server_requests_total{method="GET",route="/carts/{cart_id}",status="200"} 3.0' in text
    assert 'http_server_requests_total{method="POST",route="/carts",status="201"} 1.0' in text
    assert "http_server_request_duration_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
