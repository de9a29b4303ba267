"""``python -m checkout_gateway`` as an operator runs it: migrate, serve, stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from checkout_gateway.config import GatewayDatabaseSettings
from checkout_gateway.storage.tables import metadata
from checkout_kit.db import create_engine
from checkout_kit.migrations import model_drift

pytestmark = pytest.mark.integration


def _env(postgres_dsn: str, schema: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE__", "HTTP__", "KAFKA__", "UPSTREAMS__"))}
    env.update({"DATABASE__URL": postgres_dsn, "DATABASE__SCHEMA": schema, "SHUTDOWN_GRACE_S": "5", **extra})
    return env


def _gateway(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkout_gateway", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_then_serve_then_stop_gracefully(
    postgres_dsn: str, kafka_bootstrap_servers: str, new_schema: Callable[[str], str], unused_tcp_port: int
) -> None:
    env = _env(
        postgres_dsn,
        new_schema("gateway_cli"),
        HTTP__PORT=str(unused_tcp_port),
        KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
    )
    assert _gateway("migrate", "--check", env=env).returncode == 1
    migrated = _gateway("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated: revision 0001" in migrated.stdout

    process = subprocess.Popen(
        [sys.executable, "-m", "checkout_gateway"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
            try:
                ready = httpx.get(f"http://127.0.0.1:{unused_tcp_port}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not become ready within 60 s"
            time.sleep(0.1)
        openapi = httpx.get(f"http://127.0.0.1:{unused_tcp_port}/openapi.json", timeout=5).json()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = process.stdout.read()  # type: ignore[union-attr]

    assert returncode in (0, -signal.SIGTERM), output
    assert "outbox relay stopped" in output
    assert "kafka producer stopped" in output
    assert {"/api/checkout/initiate", "/api/checkout/{saga_id}", "/api/carts", "/api/carts/{cart_id}"} <= set(
        openapi["paths"]
    )


async def test_models_match_the_migrations(postgres_dsn: str, gateway_schema: str) -> None:
    engine: AsyncEngine = create_engine(GatewayDatabaseSettings(url=postgres_dsn, schema=gateway_schema))
    try:
        assert await model_drift(engine, metadata, gateway_schema) == []
    finally:
        await engine.dispose()
