"""The app factory's lifespan starts components in order, stops them in reverse, within the grace."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from checkout_kit.app import Runtime, ServiceSpec, create_app
from checkout_kit.deps import RuntimeDep, SettingsDep
from checkout_kit.settings import ServiceSettings


class Recorder:
    """A background component that logs what happens to it."""

    def __init__(self, name: str, events: list[str], *, stop_delay: float = 0.0, fail_start: bool = False) -> None:
        self.name = name
        self.events = events
        self.stop_delay = stop_delay
        self.fail_start = fail_start
        self.healthy = True

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.events.append(f"start {self.name}")

    async def stop(self, grace_s: float | None = None) -> None:
        self.events.append(f"stop {self.name} grace={grace_s is not None}")
        await asyncio.sleep(self.stop_delay)
        self.events.append(f"stopped {self.name}")

    async def check_ready(self) -> None:
        if not self.healthy:
            raise RuntimeError(f"{self.name} loop died")


def _settings(grace: float = 5.0) -> ServiceSettings:
    return ServiceSettings(service_name="demo", shutdown_grace_s=grace)


def _spec(events: list[str], built: dict[str, Recorder], **recorders: dict[str, object]) -> ServiceSpec:
    def factory(name: str, options: dict[str, object]):  # type: ignore[no-untyped-def]
        def build(runtime: Runtime) -> Recorder:
            assert runtime.settings.service_name == "demo"
            built[name] = Recorder(name, events, **options)  # type: ignore[arg-type]
            return built[name]

        return build

    return ServiceSpec(title="demo", components={name: factory(name, opts) for name, opts in recorders.items()})


async def test_components_start_in_order_and_stop_in_reverse() -> None:
    events: list[str] = []
    app = create_app(_spec(events, {}, relay={}, consumer={}, scanner={}), _settings())

    async with app.router.lifespan_context(app):
        assert events == ["start relay", "start consumer", "start scanner"]
        events.clear()

    assert events == [
        "stop scanner grace=True",
        "stopped scanner",
        "stop consumer grace=True",
        "stopped consumer",
        "stop relay grace=True",
        "stopped relay",
    ]
    assert app.state.readiness.draining


async def test_a_component_failing_to_start_stops_those_already_started() -> None:
    events: list[str] = []
    app = create_app(_spec(events, {}, relay={}, consumer={"fail_start": True}, scanner={}), _settings())

    with pytest.raises(RuntimeError, match="consumer cannot start"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not serve")

    assert events == ["start relay", "stop relay grace=True", "stopped relay"]


async def test_a_component_that_does_not_stop_is_left_behind_within_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    app = create_app(_spec(events, {}, relay={}, stuck={"stop_delay": 60.0}), _settings(grace=0.2))
    loop = asyncio.get_running_loop()

    with caplog.at_level(logging.ERROR):
        started = loop.time()
        async with app.router.lifespan_context(app):
            events.clear()
        elapsed = loop.time() - started

    assert elapsed < 5.0  # grace 0.2 s + the close margin, not the component's 60 s
    assert "stopped stuck" not in events
    assert events[-1] == "stopped relay"
    assert "stuck did not stop within the shutdown grace period" in caplog.text


async def test_readiness_includes_components_that_report_it() -> None:
    events: list[str] = []
    built: dict[str, Recorder] = {}
    app = create_app(_spec(events, built, consumer={}), _settings())

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        ready = await client.get("/readyz")
        built["consumer"].healthy = False
        unready = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"consumer": "ok"}
    assert unready.status_code == 503
    assert unready.json()["failed"] == ["consumer"]
    assert "consumer loop died" in unready.json()["checks"]["consumer"]


async def test_handlers_get_the_runtime_and_settings_and_no_database_when_none_declared() -> None:
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(runtime: RuntimeDep, settings: SettingsDep) -> dict[str, object]:
        return {
            "service": settings.service_name,
            "database": runtime.has_database,
            "same": runtime.settings is settings,
        }

    app: FastAPI = create_app(ServiceSpec(title="demo", routers=(router,)), _settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/whoami")
        with pytest.raises(RuntimeError, match="declared no database"):
            _ = app.state.runtime.engine

    assert response.json() == {"service": "demo", "database": False, "same": True}
