"""HTTP metrics are labelled by route template and status, in the registry the app was given."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry

from checkout_kit.metrics import UNMATCHED_ROUTE, HttpMetrics, MetricsMiddleware


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(registry: CollectorRegistry) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(404, "no such item")
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _count(registry: CollectorRegistry, route: str, status: str, method: str = "GET") -> float | None:
    labels = {"method": method, "route": route, "status": status}
    return registry.get_sample_value("http_server_requests_total", labels)


async def test_requests_are_counted_per_route_template(client: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    for item_id in (1, 2, 3):
        assert (await client.get(f"/items/{item_id}")).status_code == 200
    assert (await client.get("/items/0")).status_code == 404

    assert _count(registry, "/items/{item_id}", "200") == 3
    assert _count(registry, "/items/{item_id}", "404") == 1
    assert _count(registry, "/items/1", "200") is None
    labels = {"method": "GET", "route": "/items/{item_id}"}
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 4
    assert registry.get_sample_value("http_server_active_requests", {"method": "GET"}) == 0


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    for path in ("/wp-admin", "/.env", "/items"):
        await client.get(path)
    assert _count(registry, UNMATCHED_ROUTE, "404") == 3


async def test_unhandled_errors_count_as_500(client: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    assert (await client.get("/boom")).status_code == 500
    assert _count(registry, "/boom", "500") == 1


def test_two_apps_do_not_share_instruments() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    HttpMetrics(first).observe("GET", "/x", 200, 0.01)
    HttpMetrics(second)
    assert _count(first, "/x", "200") == 1
    assert _count(second, "/x", "200") is None
