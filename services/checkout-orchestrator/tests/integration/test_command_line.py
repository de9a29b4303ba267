"""``python -m checkout_orchestrator`` as an operator runs it: migrate, serve a saga, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from checkout_kit.migrations import script_heads
from checkout_orchestrator.main import MIGRATIONS

pytestmark = pytest.mark.integration


def _env(postgres_dsn: str, schema: str, kafka_session, port: int) -> dict[str, str]:
    names = ("DATABASE__", "HTTP__", "KAFKA__", "SAGA__", "DEADLINES__", "OUTBOX__", "CONSUMER_GROUP")
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(
        {
            "DATABASE__URL": postgres_dsn,
            "DATABASE__SCHEMA": schema,
            "HTTP__PORT": str(port),
            "KAFKA__BOOTSTRAP_SERVERS": kafka_session.bootstrap_servers,
            "KAFKA__TOPIC_PREFIX": kafka_session.topics.prefix,
            "CONSUMER_GROUP": kafka_session.group,
            "SAGA__STEP_TIMEOUT_S": "30",
            "SHUTDOWN_GRACE_S": "5",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def _orchestrator(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkout_orchestrator", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_migrate_serve_a_saga_and_stop_on_sigterm(
    harness, postgres_dsn: str, schema: str, kafka_session, unused_tcp_port: int
) -> None:
    env = _env(postgres_dsn, schema, kafka_session, unused_tcp_port)
    before = _orchestrator("migrate", "--check", env=env)
    migrate = _orchestrator("migrate", env=env)
    assert before.returncode == 1, before.stderr
    assert migrate.returncode == 0, migrate.stderr
    (head,) = script_heads(MIGRATIONS)
    assert f"migrated: revision {head}" in migrate.stdout

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "checkout_orchestrator",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output_read = asyncio.create_task(process.stdout.read())  # drained all along: a full pipe would block it
    base = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                if process.returncode is not None:
                    pytest.fail(f"the orchestrator exited with {process.returncode}:\n{(await output_read).decode()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("the orchestrator did not become ready within 60 s")
                await asyncio.sleep(0.1)

            saga_id = (await harness.initiate(saga_id=str(uuid.uuid4()))).saga_id
            saga = await harness.wait_status(client, saga_id, "COMPLETED")
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), 30)
        output = (await asyncio.wait_for(output_read, 10)).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert saga["order_id"] == f"ord-{saga_id[:8]}"
    assert returncode in (0, -signal.SIGTERM), output
    for line in ("deadline scanner stopped", "saga consumer stopped", "outbox relay stopped"):
        assert line in output
    assert output.index("deadline scanner stopped") < output.index("outbox relay stopped")
