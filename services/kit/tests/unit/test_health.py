"""/livez, /readyz and /metrics: readiness names what failed, metrics follow the scraper's Accept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from checkout_kit.health import Readiness, health_router


async def _ok() -> None:
    return None


async def _refused() -> None:
    raise ConnectionRefusedError("connect call failed ('127.0.0.1', 1)")


async def _hangs() -> None:
    await asyncio.sleep(60)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("demo_events", "Events seen.", registry=registry).inc(3)
    return registry


@pytest.fixture
def app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(registry))
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def test_probe_reports_each_check_and_bounds_the_slow_one() -> None:
    readiness = Readiness({"database": _ok, "kafka": _refused, "relay": _hangs}, timeout_s=0.05)
    started = asyncio.get_running_loop().time()

    ready, results = await readiness.probe()

    assert asyncio.get_running_loop().time() - started < 1.0
    assert not ready
    assert results["database"] == "ok"
    assert results["kafka"].startswith("failed: ConnectionRefusedError")
    assert results["relay"] == "failed: no answer within 0.05s"


async def test_livez_needs_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert response.status_code == 200


async def test_readyz_is_503_until_the_lifespan_installed_readiness(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "starting"


async def test_readyz_names_the_failed_check(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.readiness = Readiness({"database": _ok, "kafka": _refused})
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready"
    assert body["failed"] == ["kafka"]
    assert body["checks"]["database"] == "ok"


async def test_readyz_is_200_when_every_check_passes(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.readiness = Readiness({"database": _ok})
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readyz_is_503_while_draining(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.readiness = Readiness({"database": _ok}, draining=True)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "draining"


async def test_metrics_in_prometheus_text_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "demo_events_total 3.0" in response.text


async def test_metrics_in_openmetrics_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert "demo_events_total 3.0" in response.text
