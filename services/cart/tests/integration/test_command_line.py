"""``python -m checkout_cart`` as an operator runs it: migrate, serve, stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.integration

MAX_BODY_BYTES = 2_048


def _env(postgres_dsn: str, schema: str, port: int = 8106) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE__", "HTTP__", "KAFKA__"))}
    env.update(
        {
            "DATABASE__URL": postgres_dsn,
            "DATABASE__SCHEMA": schema,
            "HTTP__PORT": str(port),
            "HTTP__MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "SHUTDOWN_GRACE_S": "5",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def _cart(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkout_cart", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_migrate_and_check(postgres_dsn: str, new_schema) -> None:
    env = _env(postgres_dsn, new_schema("cli"))

    before = _cart("migrate", "--check", env=env)
    migrate = _cart("migrate", env=env)
    after = _cart("migrate", "--check", env=env)

    assert before.returncode == 1, before.stderr
    assert "no revision (never migrated), head 0001" in before.stdout
    assert migrate.returncode == 0, migrate.stderr
    assert "migrated: revision 0001" in migrate.stdout
    assert after.returncode == 0
    assert "revision 0001, head 0001" in after.stdout


def test_invalid_environment_exits_2_naming_the_field(postgres_dsn: str) -> None:
    env = _env(postgres_dsn, "cart")
    env["HTTP__PORT"] = "not-a-port"
    result = _cart("migrate", env=env)
    assert result.returncode == 2
    assert "http.port" in result.stderr


def test_serving_refuses_a_stale_schema_with_exit_status_3(postgres_dsn: str, new_schema, unused_tcp_port: int) -> None:
    schema = new_schema("stale")
    result = _cart(env=_env(postgres_dsn, schema, unused_tcp_port))
    assert result.returncode == 3
    assert (
        f"database schema '{schema}' is at no revision (never migrated) but this code needs head 0001" in result.stderr
    )


@pytest.fixture
def served(
    postgres_dsn: str, migrated_schema: str, unused_tcp_port: int
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "checkout_cart"],
        env=_env(postgres_dsn, migrated_schema, unused_tcp_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the service exited with {process.returncode}:\n{process.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the service did not become ready within 60 s")
            time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_serves_over_http_and_stops_gracefully_on_sigterm(served: tuple[subprocess.Popen[str], str]) -> None:
    process, base = served

    with httpx.Client(base_url=base, timeout=5) as client:
        created = client.post("/carts", json={"customer_id": "cust_cli", "currency": "EUR"})
        chunked = client.post(
            "/carts",
            content=iter([b'{"customer_id": "cust_cli", "currency": "EUR", "pad": "', b"x" * 4096, b'"}']),
            headers={"content-type": "application/json"},
        )
    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=20)
    output = process.stdout.read()  # type: ignore[union-attr]

    assert created.status_code == 201
    assert chunked.status_code == 413, "a chunked body over the limit is refused over real HTTP too"
    # uvicorn re-raises the signal once its graceful shutdown is done (the Unix convention).
    assert returncode in (0, -signal.SIGTERM), output
    assert "cart shutting down" in output
    assert "database engine stopped" in output
    assert "Application shutdown complete" in output
