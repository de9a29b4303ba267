"""Helpers of the gateway's integration tests: real upstream HTTP servers and Kafka look-ups.

The gateway's upstreams are real HTTP servers on ephemeral ports, each run by uvicorn in a
thread of its own: the real cart app on its own migrated schema, and a small orchestrator
stand-in serving canned saga JSON (the orchestrator is another service; the gateway only reads
its ``GET /sagas/{id}``). Kafka and PostgreSQL are never mocked.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from checkout_kit.messaging.envelope import Envelope
from checkout_kit.testing import Kafka, wait_until


@contextmanager
def serve_in_thread(
    app: FastAPI, *, startup_timeout_s: float = 30.0, config: uvicorn.Config | None = None
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<ephemeral port> (its lifespan included); yield the base URL.

    ``config`` replaces the default server configuration (it must bind 127.0.0.1, port 0)."""
    server = uvicorn.Server(
        config or uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(target=server.run, name="test-http-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test HTTP server exited during startup (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test HTTP server did not start within {startup_timeout_s:g}s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def closed_port_url() -> str:
    """A URL where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeOrchestrator:
    """``GET /sagas/{id}`` answering what a test put in :attr:`sagas` (404 otherwise).

    Saga ids in :attr:`slow` answer after :attr:`delay_s`; in :attr:`broken` with a 500; in
    :attr:`garbled` with a 200 whose body is not a saga.
    """

    def __init__(self) -> None:
        self.sagas: dict[str, dict[str, Any]] = {}
        self.slow: set[str] = set()
        self.broken: set[str] = set()
        self.garbled: set[str] = set()
        self.delay_s = 3.0
        self.app = FastAPI(title="orchestrator stand-in")

        @self.app.get("/sagas/{saga_id}", response_model=None)
        async def saga(saga_id: str) -> Any:
            if saga_id in self.slow:
                await asyncio.sleep(self.delay_s)
            if saga_id in self.broken:
                raise HTTPException(500, "orchestrator exploded")
            if saga_id in self.garbled:
                return PlainTextResponse("<html>not json</html>")
            if saga_id not in self.sagas:
                raise HTTPException(404, f"saga {saga_id} not found")
            return self.sagas[saga_id]


def saga_json(saga_id: str, state: str, **fields: Any) -> dict[str, Any]:
    """A saga as the orchestrator's ``GET /sagas/{id}`` returns it."""
    return {
        "saga_id": saga_id,
        "state": state,
        "status": state,
        "steps": [
            {"at": "2026-01-02T03:04:05.123456Z", "state": "STARTED", "event": "CheckoutInitiated", "detail": None},
            {"at": "2026-01-02T03:04:05.223456Z", "state": state, "event": "SomethingHappened", "detail": "details"},
        ],
        "order_id": None,
        "failure_code": None,
        "failure_reason": None,
        "trace_id": None,
        "customer_id": "cust_1",
        "version": 3,
        **fields,
    }


async def records_of_saga(kafka: Kafka, topic: str, saga_id: str, *, at_least: int = 1) -> list[Any]:
    """The records keyed ``saga_id`` in ``topic``, once there are ``at_least`` of them."""
    found: list[Any] = []

    async def arrived() -> bool:
        nonlocal found
        found = [r for r in await kafka.read_all(topic) if r.key == saga_id.encode()]
        return len(found) >= at_least

    await wait_until(arrived, f"{at_least} record(s) of saga {saga_id} are in {topic}")
    return found


def envelope_of(record: Any) -> Envelope:
    """Decode a record as every consumer does (raises on anything malformed)."""
    return Envelope.from_record(record.key, record.value, record.headers)
