"""The whole platform as real local processes, isolated, and a client that speaks to it over HTTP.

One :class:`SagaPlatform` per test session: the six services started by the stack's own launcher
(:class:`~checkout_stack.components.platform_services.PlatformServices`) from a run directory,
ports, database, topic prefix and Kafka consumer groups of their own, against the shared
PostgreSQL and Kafka. Nothing here imports a service package: the suite sees the platform as a
client and an operator would — HTTP, Kafka and the databases' rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from checkout_stack.processes import owned_processes
from checkout_stack.settings import REPO_ROOT, SERVICE_NAMES, ServicesSettings, StackSettings
from checkout_stack.stack import Stack

T = TypeVar("T")
TERMINAL: Final = ("COMPLETED", "FAILED")
CURRENCY: Final = "EUR"

SHORT_DEADLINES: Final = {
    "SAGA__STEP_TIMEOUT_S": "2",
    "SAGA__MAX_ATTEMPTS": "2",
    "SAGA__COMPENSATION_TIMEOUT_S": "2",
    "SAGA__MAX_COMPENSATION_ATTEMPTS": "5",
}
"""Deadlines short enough that a hung step is retried and compensated within seconds.

Too short for load: with a step's queueing delay above 2 s (a hundred checkouts at once on a
small machine), every saga runs out of attempts and compensates."""
DEFAULT_DEADLINES: Final[dict[str, str]] = {}
"""The orchestrator's own defaults (10 s a step, 3 attempts; 10 s a compensation, 30 attempts)."""
DEADLINE_BUDGET_S: Final = 3 * 10 * 3 + 2 * 10 * 30 + 30
"""Longest a saga may take under either policy: forward steps x attempts x timeout, the same for
the two compensations, plus slack."""

STOCK: Final = {
    "E2E-HAPPY": (50, 1_999),
    "E2E-SCARCE": (2, 4_500),
    "E2E-DECLINE": (10, 1_250),
    "E2E-ORDERFAIL": (10, 3_000),
    "E2E-TIMEOUT": (10, 990),
    "E2E-CART-A": (10, 700),
    "E2E-CART-B": (10, 1_100),
    "E2E-IDEM": (10, 500),
    "E2E-LAST5": (5, 2_500),
    "E2E-KILL": (50, 800),
    "E2E-POISON": (10, 600),
    "E2E-SINGLE": (50, 1_000),
    "E2E-BULK": (200, 150),
}
"""SKU → (units, unit price in cents), seeded before the stock snapshot; one SKU per scenario."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open until every one is chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class ScenarioRecord:
    """One row of the scenario table."""

    scenario: str
    outcome: str
    seconds: float


@dataclass
class SagaPlatform:
    """A running, isolated instance of the platform."""

    stack: Stack
    bootstrap_servers: str
    name: str
    """Instance name: run directory ``.run/<name>``, topic prefix ``<name>``."""
    started: list[str] = field(default_factory=list)
    """Every saga id the gateway accepted during the run (for the invariant checker)."""
    scenarios: list[ScenarioRecord] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    stock_before: dict[str, int] = field(default_factory=dict)

    @property
    def settings(self) -> ServicesSettings:
        """The services' settings of this instance."""
        return self.stack.settings.services

    @property
    def run_dir(self) -> Path:
        """Logs, pid files and ``timings.json`` of this instance."""
        return self.stack.settings.run_dir

    @property
    def prefix(self) -> str:
        """The topic prefix."""
        return self.settings.topic_prefix

    @property
    def dsn(self) -> str:
        """Superuser DSN of this instance's database (every service's schema lives there)."""
        return self.stack.services.database_url()

    def url(self, service: str) -> str:
        """Base URL of a service by its launcher name (``gateway-bff``, ``inventory`` …)."""
        return self.stack.services.url(self.stack.services.by_name(service))

    @property
    def bff_url(self) -> str:
        """The public API."""
        return self.url("gateway-bff")

    def topic(self, name: str) -> str:
        """``<prefix>.<name>``."""
        return f"{self.prefix}.{name}"

    def record(self, scenario: str, outcome: str, seconds: float) -> None:
        """Add a row to the scenario table (printed at the session's end, written to timings.json)."""
        self.scenarios.append(ScenarioRecord(scenario, outcome, seconds))

    def write_timings(self) -> Path:
        """``.run/<instance>/timings.json``: the measured wall times and the scenario table."""
        path = self.run_dir / "timings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "instance": self.name,
            **self.timings,
            "scenarios": [{"scenario": r.scenario, "outcome": r.outcome, "seconds": r.seconds} for r in self.scenarios],
        }
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return path

    # --- processes ----------------------------------------------------------------------------

    def kill_service(self, service: str) -> int:
        """SIGKILL a service's process group (a crash: no drain, no commit); return the dead pid."""
        process = self.stack.services.process(self.stack.services.by_name(service))
        pid = process.pid()
        assert pid is not None, f"{service} is not running"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.running():
            assert time.monotonic() < deadline, f"{service} (pid {pid}) survived SIGKILL for 10 s"
            time.sleep(0.05)
        return pid

    def restart_services(self) -> None:
        """`checkout-stack services up` on this instance: starts what is down, waits for /readyz."""
        self.stack.up([self.stack.services.name])

    @property
    def deadlines(self) -> dict[str, str]:
        """The ``SAGA__*`` variables the orchestrator runs with."""
        env = self.settings.extra_env.get(ORCHESTRATOR, {})
        return {key: value for key, value in env.items() if key.startswith("SAGA__")}

    def set_env(self, service: str, updates: Mapping[str, str | None]) -> None:
        """Change a service's extra environment (``None`` removes a variable) and (re)start it with it.

        A running service is stopped first (SIGTERM and drain); a dead one (killed by a test) is only
        started (without migrations). Waits for its /readyz.
        """
        env = dict(self.settings.extra_env.get(service, {}))
        for key, value in updates.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        extra_env = {**self.settings.extra_env, service: env}
        settings = self.stack.settings.model_copy(
            update={"services": self.settings.model_copy(update={"extra_env": extra_env})}
        )
        self.stop_service(service)
        self.stack = Stack(settings)
        self.start_again(service)

    def start_again(self, *services: str) -> None:
        """Start these services if they are down (no migrations: a kubelet restarting a crashed container)."""
        self.stack.services.start_again(services)

    def stop_service(self, service: str) -> None:
        """`checkout-stack services down <service>` on this instance: SIGTERM, drain, wait for the exit."""
        only = self.stack.settings.model_copy(
            update={"services": self.settings.model_copy(update={"enabled": [service]})}
        )
        Stack(only).down([self.stack.services.name])

    def use_deadlines(self, deadlines: Mapping[str, str]) -> None:
        """Run the orchestrator with these ``SAGA__*`` variables, restarting it through the launcher if needed.

        What `checkout-stack services down|up checkout-orchestrator` does (SIGTERM and drain, then
        start and wait for /readyz), with the new environment.
        """
        if self.deadlines == dict(deadlines):
            return
        kept = {k: v for k, v in self.settings.extra_env.get(ORCHESTRATOR, {}).items() if not k.startswith("SAGA__")}
        extra_env = {**self.settings.extra_env, ORCHESTRATOR: {**kept, **orchestrator_env(self.name, deadlines)}}
        settings = self.stack.settings.model_copy(
            update={"services": self.settings.model_copy(update={"extra_env": extra_env})}
        )
        only = settings.model_copy(
            update={"services": settings.services.model_copy(update={"enabled": [ORCHESTRATOR]})}
        )
        Stack(only).down([self.stack.services.name])
        Stack(only).up([self.stack.services.name])
        self.stack = Stack(settings)


# --- the instance's lifecycle ----------------------------------------------------------------


ORCHESTRATOR: Final = "checkout-orchestrator"


def orchestrator_env(name: str, deadlines: Mapping[str, str]) -> dict[str, str]:
    """The orchestrator's extra environment: its deadlines (its consumer group is ``<prefix>.<service>``, the
    instance's own, since the prefix is the instance's name)."""
    return dict(deadlines)


def telemetry_env(name: str, otel: Mapping[str, str] | None) -> dict[str, dict[str, str]]:
    """Per service: the standard OTEL_* variables, as the chart sets them (``OTEL_SERVICE_NAME`` its own name).

    ``otel`` None leaves the services' tracing as their environment has it (the SDK's defaults).
    """
    if otel is None:
        return {}
    resource = f"service.namespace=checkout-platform,deployment.environment={name}"
    return {
        service: {"OTEL_SERVICE_NAME": service, "OTEL_RESOURCE_ATTRIBUTES": resource, **otel}
        for service in ("gateway-bff", ORCHESTRATOR, "inventory", "payment", "order", "cart")
    }


def instance_settings(
    shared: StackSettings,
    name: str,
    database: str,
    otel: Mapping[str, str] | None = None,
    every_service: Mapping[str, str] | None = None,
) -> StackSettings:
    """Settings of an isolated instance next to the shared stack's PostgreSQL and Kafka.

    ``otel``: OTEL_* variables every service gets (see :func:`telemetry_env`). ``every_service``:
    more variables for every service, last (e.g. ``DATABASE__URL`` through a fault-injection proxy);
    ``{database}`` in a value becomes the instance's database name.
    """
    ports = free_ports(6)
    telemetry = telemetry_env(name, otel)
    if every_service:
        more = {key: value.replace("{database}", database) for key, value in every_service.items()}
        telemetry = {service: {**telemetry.get(service, {}), **more} for service in SERVICE_NAMES}
    return StackSettings(
        cache_dir=shared.cache_dir,
        run_dir=REPO_ROOT / ".run" / name,
        postgres=shared.postgres,
        kafka=shared.kafka,
        start_timeout_s=120,
        services=ServicesSettings(
            gateway_port=ports[0],
            orchestrator_port=ports[1],
            inventory_port=ports[2],
            payment_port=ports[3],
            order_port=ports[4],
            cart_port=ports[5],
            topic_prefix=name,
            database=database,
            stop_timeout_s=30,
            extra_env={
                # Consumer groups are <prefix>.<service>: with the instance's own prefix they never join
                # (and rebalance) the groups of a dev stack running against the same Kafka.
                **telemetry,
                ORCHESTRATOR: {**telemetry.get(ORCHESTRATOR, {}), **orchestrator_env(name, SHORT_DEADLINES)},
            },
        ),
    )


@contextlib.contextmanager
def launched(
    shared: Stack,
    superuser_dsn: str,
    bootstrap_servers: str,
    *,
    otel: Mapping[str, str] | None = None,
    every_service: Mapping[str, str] | None = None,
) -> Iterator[SagaPlatform]:
    """Start an isolated instance, yield it, then stop it and remove its database and topics.

    Leaves ``.run/<instance>/`` (logs and ``timings.json``) for inspection; raises at the end if
    any process of the instance outlived the stop. ``otel``: OTEL_* variables for every service;
    ``every_service``: more variables for every service (see :func:`instance_settings`).
    """
    suffix = uuid.uuid4().hex[:8]
    name = f"e2e-saga-{suffix}"
    stack = Stack(instance_settings(shared.settings, name, f"e2e_saga_{suffix}", otel, every_service))
    secret = stack.postgres.password_file
    secret.parent.mkdir(parents=True, mode=0o700)
    shutil.copyfile(shared.postgres.password_file, secret)  # reach the shared server as its superuser
    platform = SagaPlatform(stack, bootstrap_servers, name)
    leftovers: list[str] = []
    try:
        platform.restart_services()
        scrape_targets(shared, platform)
        yield platform
    finally:
        try:
            forget_scrape_targets(shared, platform)
            platform.stack.down([stack.services.name])
        finally:
            leftovers = stack.leftover_processes()
            _kill(leftovers)
            platform.write_timings()
            stack.services.purge()
            shutil.rmtree(secret.parent, ignore_errors=True)
            shutil.rmtree(stack.settings.run_dir / "pids", ignore_errors=True)
    assert leftovers == [], "processes of the instance outlived `services down`:\n" + "\n".join(leftovers)


def scrape_targets(shared: Stack, platform: SagaPlatform) -> None:
    """Have the stack's Prometheus scrape every service of the instance as ``job=<service name>``.

    Each service is listed in a file of its own instance (``<instance>.<service>``), labelled
    ``platform=<instance>``, so instances side by side do not replace each other's targets.
    """
    services = platform.stack.services
    for service in services.enabled:
        shared.prometheus.add_targets(
            service.name,
            [f"127.0.0.1:{services.port(service)}"],
            {"platform": platform.name},
            name=f"{platform.name}.{service.name}",
        )


def forget_scrape_targets(shared: Stack, platform: SagaPlatform) -> None:
    """Stop scraping the instance's services."""
    for service in platform.stack.services.enabled:
        shared.prometheus.remove_targets(f"{platform.name}.{service.name}")


def _kill(leftovers: Sequence[str]) -> None:
    for line in leftovers:
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def prune_old_instances(keep: int = 3) -> None:
    """Remove the run directories of earlier e2e-saga runs but the newest ``keep`` (none still running)."""
    runs = sorted((REPO_ROOT / ".run").glob("e2e-saga-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for run_dir in runs[keep:]:
        if not owned_processes(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)


# --- the client's view: gateway and participants over HTTP -----------------------------------


def seed_stock(platform: Reachable, stock: Mapping[str, tuple[int, int]] = STOCK) -> None:
    """``PUT /inventory/{sku}`` for every SKU of the run."""
    with httpx.Client(base_url=platform.url("inventory"), timeout=10) as inventory:
        for sku, (units, price) in stock.items():
            response = inventory.put(
                f"/inventory/{sku}", json={"available": units, "unit_price_minor": price, "currency": CURRENCY}
            )
            assert response.status_code == 200, response.text


def checkout_body(items: Mapping[str, int], *, card: str = "tok_visa", customer: str = "cust_e2e") -> dict[str, Any]:
    """A ``POST /api/checkout/initiate`` body; ``card`` is the payment token (``tok_visa``, ``tok_timeout`` …)."""
    return {
        "customer_id": customer,
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items.items()],
        "currency": CURRENCY,
        "payment_token": card,
    }


class Reachable(Protocol):
    """A running platform as a client reaches it: its services' URLs, and the sagas it accepted."""

    started: list[str]

    def url(self, service: str) -> str:
        """Base URL of a service (``gateway-bff``, ``inventory`` …)."""
        ...

    @property
    def bff_url(self) -> str:
        """The public API."""
        ...


class Client:
    """What a client and an operator see: the gateway, and each participant's read API."""

    def __init__(self, platform: Reachable) -> None:
        self.platform = platform
        # Idle connections are dropped before uvicorn's 5 s keep-alive closes them server-side,
        # so a reused connection is never one the server is closing (that race is a ReadError).
        self.http = httpx.Client(timeout=15, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S))

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def initiate(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> httpx.Response:
        """``POST /api/checkout/initiate``; a 202's saga id is registered for the invariant check."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self.http.post(f"{self.platform.bff_url}/api/checkout/initiate", json=body, headers=headers)
        if response.status_code == 202:
            self.platform.started.append(response.json()["saga_id"])
        return response

    def start(self, body: Mapping[str, Any]) -> str:
        """Initiate and return the saga id (fails the test unless 202)."""
        response = self.initiate(body)
        assert response.status_code == 202, response.text
        saga_id: str = response.json()["saga_id"]
        return saga_id

    def status(self, saga_id: str) -> httpx.Response:
        """``GET /api/checkout/{saga_id}``."""
        return self.http.get(f"{self.platform.bff_url}/api/checkout/{saga_id}")

    def wait(self, saga_id: str, timeout_s: float = 30, *, until: Sequence[str] = TERMINAL) -> dict[str, Any]:
        """Poll the gateway until the saga's status (or state) is one of ``until``; fail after ``timeout_s``.

        While the orchestrator is down the gateway answers 502/503/504: that is waited out too.
        """
        deadline = time.monotonic() + timeout_s
        last: object = None
        while True:
            response = self.status(saga_id)
            if response.status_code == 200:
                last = response.json()
                assert isinstance(last, dict)
                if last["status"] in until or last["state"] in until:
                    return last
            elif response.status_code in (502, 503, 504):
                last = f"{response.status_code} {response.text}"
            else:
                raise AssertionError(f"GET /api/checkout/{saga_id}: {response.status_code} {response.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"saga {saga_id} not {'/'.join(until)} after {timeout_s:.0f}s; last: {last}")
            time.sleep(0.05)

    def stock(self, sku: str) -> dict[str, Any]:
        """``GET /inventory/{sku}``."""
        return self._get("inventory", f"/inventory/{sku}")

    def reservations(self, saga_id: str) -> list[dict[str, Any]]:
        """``GET /reservations?saga_id=``."""
        return self._get("inventory", "/reservations", saga_id=saga_id)

    def payments(self, saga_id: str) -> list[dict[str, Any]]:
        """``GET /payments?saga_id=``."""
        return self._get("payment", "/payments", saga_id=saga_id)

    def orders(self, saga_id: str) -> list[dict[str, Any]]:
        """``GET /orders?saga_id=``."""
        return self._get("order", "/orders", saga_id=saga_id)

    def _get(self, service: str, path: str, **params: str) -> Any:
        response = self.http.get(f"{self.platform.url(service)}{path}", params=params)
        assert response.status_code == 200, f"{service} {path}: {response.status_code} {response.text}"
        return response.json()


def outcome(final: Mapping[str, Any]) -> str:
    """``COMPLETED`` or ``FAILED (OUT_OF_STOCK)``: a row of the scenario table."""
    code = final.get("failure_code")
    return f"{final['status']} ({str(code).removeprefix('FAILURE_CODE_')})" if code else str(final["status"])


def net_charge(payments: Sequence[Mapping[str, Any]]) -> int:
    """Money the customer is out of for a saga (the payment service's own ``net_amount_minor``)."""
    return sum(int(p["net_amount_minor"]) for p in payments)


KEEPALIVE_EXPIRY_S = 2.0
"""Below uvicorn's keep-alive timeout (5 s)."""


async def initiate_with_retries(http: httpx.AsyncClient, body: Mapping[str, Any], attempts: int = 3) -> httpx.Response:
    """POST an initiate with an Idempotency-Key, retrying transport errors: the key makes a retry safe."""
    headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    for attempt in range(1, attempts + 1):
        try:
            return await http.post("/api/checkout/initiate", json=body, headers=headers)
        except httpx.TransportError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


async def run_concurrently(
    platform: Reachable, bodies: Sequence[Mapping[str, Any]], timeout_s: float, *, poll_interval_s: float = 0.1
) -> tuple[list[dict[str, Any]], float]:
    """Initiate every checkout at once, then poll until all are terminal; return them and the wall time.

    The polls go in rounds over the sagas still pending (at most 20 requests in flight), so
    watching does not load the platform more than the checkouts themselves.
    """
    limits = httpx.Limits(max_connections=len(bodies) + 10, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    async with httpx.AsyncClient(base_url=platform.bff_url, timeout=30, limits=limits) as http:
        began = time.monotonic()
        responses = await asyncio.gather(*(initiate_with_retries(http, body) for body in bodies))
        for response in responses:
            assert response.status_code == 202, response.text
        saga_ids = [r.json()["saga_id"] for r in responses]
        platform.started.extend(saga_ids)
        final: dict[str, dict[str, Any]] = {}
        gate = asyncio.Semaphore(20)

        async def poll(saga_id: str) -> None:
            async with gate:
                try:
                    response = await http.get(f"/api/checkout/{saga_id}")
                except httpx.TransportError:
                    return  # a GET is safe to repeat: the next round asks again
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                final[saga_id] = response.json()
            elif response.status_code not in (200, 502, 503, 504):
                raise AssertionError(f"GET /api/checkout/{saga_id}: {response.status_code} {response.text}")

        deadline = began + timeout_s
        while len(final) < len(saga_ids):
            await asyncio.gather(*(poll(s) for s in saga_ids if s not in final))
            if len(final) == len(saga_ids):
                break
            if time.monotonic() > deadline:
                pending = [s for s in saga_ids if s not in final]
                raise AssertionError(f"{len(pending)} of {len(saga_ids)} sagas not terminal after {timeout_s:.0f}s")
            await asyncio.sleep(poll_interval_s)
        elapsed = time.monotonic() - began
    return [final[s] for s in saga_ids], elapsed


# --- Kafka: the poison scenario ----------------------------------------------------------------


async def publish_raw(
    bootstrap_servers: str, topic: str, records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Produce each ``(key, value, headers)`` to every partition of ``topic`` (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for partition in partitions:
            for key, value, headers in records:
                await producer.send_and_wait(topic, value, key=key, headers=headers, partition=partition)
    finally:
        await producer.stop()


async def read_dead_letters(
    bootstrap_servers: str, topic: str, partitions: int, keys: set[bytes], per_key: int, timeout_s: float
) -> dict[bytes, list[dict[str, str]]]:
    """The headers of the dead letters carrying ``keys`` (read from the start of every partition, no
    consumer group); waits until each key has ``per_key`` of them or ``timeout_s`` has passed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    found: dict[bytes, list[dict[str, str]]] = {key: [] for key in keys}
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + timeout_s
        while any(len(v) < per_key for v in found.values()) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key in found:
                        found[record.key].append({k: v.decode(errors="replace") for k, v in record.headers})
    finally:
        await consumer.stop()
    return found


class DirectoryScoped:
    """What a directory's session fixture runs, stopped right after that directory's last test.

    pytest keeps session fixtures until the session ends, so each e2e directory's platform would go on
    running (and loading the two cores) through every directory after it. The fixture enters its context
    managers here; the directory's conftest calls :meth:`after` from ``pytest_runtest_teardown``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stack = contextlib.ExitStack()

    def enter(self, manager: contextlib.AbstractContextManager[T]) -> T:
        """Enter ``manager``; it exits when the directory is done (or at :meth:`close`)."""
        return self.stack.enter_context(manager)

    def close(self) -> None:
        """Exit everything entered (idempotent)."""
        self.stack.close()

    def after(self, item: Any, nextitem: Any) -> None:
        """Close once the next test (if any) is outside the directory."""
        if item.path.parent == self.directory and (nextitem is None or nextitem.path.parent != self.directory):
            self.close()
