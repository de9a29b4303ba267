"""One CheckoutPlatform installed the way a user installs it, and what the suite needs to look at it.

:func:`deployed` takes a fresh run id and: creates the database the spec names, has the target run
the Pods of two namespaces (``e2e-<id>-system`` for the operator, ``e2e-<id>`` for the platform),
``helm upgrade --install``s ``charts/checkout-operator`` watching ``e2e-<id>``, creates the
PostgreSQL admin Secret, ``kubectl apply``s a CheckoutPlatform built from
``examples/checkoutplatform.yaml`` (topic prefix ``e2e-<id>``, every service enabled, the
orchestrator on short deadlines), and waits for ``Ready=True`` and for every Deployment's processes.
At the end it removes everything it made, whatever the tests did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import asyncpg
import httpx
from platform_target import Target
from saga_platform import CURRENCY, Client, ScenarioRecord, checkout_body

from checkout_invariants import Schemas, snapshot_stock
from checkout_stack.platform_install import platform_manifest
from checkout_stack.settings import REPO_ROOT

NAME: Final = "shop"
ADMIN_SECRET: Final = "checkout-postgres-admin"  # noqa: S105 - the Secret's name
DEADLINES: Final = {
    "SAGA__STEP_TIMEOUT_S": "10",
    "SAGA__MAX_ATTEMPTS": "2",
    "SAGA__COMPENSATION_TIMEOUT_S": "10",
    "SAGA__MAX_COMPENSATION_ATTEMPTS": "10",
}
"""The orchestrator's deadlines in this suite: its default 10 s a step (50 checkouts at once on two cores,
with every span exported, queue for several seconds a step: 5 s deadlines expired under that load), but
two attempts instead of three, so a hung payment is compensated after ~20 s."""
DEADLINE_BUDGET_S: Final = 3 * 10 * 2 + 2 * 10 * 10 + 30
SERVICES: Final[dict[str, dict[str, Any]]] = {
    "gateway-bff": {"replicas": 2, "env": [{"name": "LOG_LEVEL", "value": "info"}]},
    "checkout-orchestrator": {"replicas": 1, "env": [{"name": k, "value": v} for k, v in DEADLINES.items()]},
    "inventory": {},
    "payment": {},
    "order": {},
    "cart": {"enabled": True},
}
"""The example's services block, with the cart on and the orchestrator's deadlines set."""
STOCK: Final = {
    "PE2E-HAPPY": (200, 1_999),
    "PE2E-SCARCE": (1, 4_500),
    "PE2E-DECLINE": (10, 1_250),
    "PE2E-TIMEOUT": (10, 990),
    "PE2E-CART": (10, 700),
    "PE2E-TRACE": (10, 1_000),
    "PE2E-SCALE": (100, 800),
    "PE2E-TRAFFIC": (1_000, 300),
}
"""SKU → (units, unit price in cents)."""
KEEP_RUNS: Final = 3


@dataclass
class DeployedPlatform:
    """A CheckoutPlatform ``shop`` in ``e2e-<id>``, its operator in ``e2e-<id>-system``."""

    target: Target
    run_id: str
    run_dir: Path
    started: list[str] = field(default_factory=list)
    """Every saga id the gateway accepted (for the invariant checker)."""
    scenarios: list[ScenarioRecord] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    stock_before: dict[str, int] = field(default_factory=dict)
    _urls: dict[str, str] = field(default_factory=dict)

    name: str = NAME

    @property
    def namespace(self) -> str:
        """Where the CheckoutPlatform and its workloads live."""
        return f"e2e-{self.run_id}"

    @property
    def system_namespace(self) -> str:
        """Where the operator chart is installed."""
        return f"e2e-{self.run_id}-system"

    @property
    def release(self) -> str:
        """The operator chart's release (and its Deployment's name): cluster-scoped RBAC objects are named
        after it, so each run (and ``make demo``) needs its own."""
        return f"checkout-operator-{self.run_id}"

    @property
    def database(self) -> str:
        """The PostgreSQL database the spec names."""
        return f"e2e_{self.run_id}"

    @property
    def prefix(self) -> str:
        """The topic prefix."""
        return f"e2e-{self.run_id}"

    @property
    def cluster(self) -> Any:
        """kubectl and helm."""
        return self.target.cluster

    @property
    def dsn(self) -> str:
        """Superuser DSN of the platform's database, from this host."""
        return urlsplit(self.target.host.postgres_dsn)._replace(path=f"/{self.database}").geturl()

    def workload(self, service: str) -> str:
        """``<platform>-<service>``: the Deployment and Service of a service."""
        return f"{self.name}-{service}"

    def url(self, service: str) -> str:
        """Base URL of a service's Service (its first port), from this host."""
        if service not in self._urls:
            svc = self.cluster.get("service", self.workload(service), self.namespace)
            assert svc is not None, f"no Service {self.namespace}/{self.workload(service)}"
            port = int(svc["spec"]["ports"][0]["port"])
            self._urls[service] = self.target.service_url(self.namespace, self.workload(service), port)
        return self._urls[service]

    @property
    def bff_url(self) -> str:
        """The public API."""
        return self.url("gateway-bff")

    def manifest(self, **changes: Any) -> dict[str, Any]:
        """The CheckoutPlatform this suite applies."""
        backends = self.target.backends
        return platform_manifest(
            self.name,
            bootstrap_servers=backends.bootstrap_servers,
            topic_prefix=self.prefix,
            postgres_host=backends.postgres_host,
            postgres_port=backends.postgres_port,
            database=self.database,
            admin_secret=ADMIN_SECRET,
            otlp_endpoint=backends.otlp_endpoint,
            sampling_ratio=1.0,
            services=SERVICES,
            **changes,
        )

    def resource(self) -> dict[str, Any]:
        """The CheckoutPlatform as the API server has it."""
        obj = self.cluster.platform(self.namespace, self.name)
        assert obj is not None, f"{self.namespace}/{self.name} is gone"
        return dict(obj)

    def patch(self, patch: Mapping[str, Any]) -> None:
        """``kubectl patch cop shop --type merge``: what a user's edit does."""
        self.cluster.run(
            "-n", self.namespace, "patch", "checkoutplatform", self.name, "--type", "merge", "-p", json.dumps(patch)
        )

    def wait_ready(self, timeout_s: float = 180) -> dict[str, Any]:
        """``Ready=True`` at the current generation."""
        return dict(self.cluster.wait_ready(self.namespace, self.name, timeout_s=timeout_s))

    def schemas(self) -> Schemas:
        """The services' schemas, as the resource's status reports them."""
        by_service = {s["name"]: s["schema"] for s in self.resource()["status"]["services"]}
        return Schemas(
            orchestrator=by_service["checkout-orchestrator"],
            inventory=by_service["inventory"],
            payment=by_service["payment"],
            orders=by_service["order"],
        )

    def operator_pods(self) -> list[dict[str, Any]]:
        """The operator's Pods (not terminating)."""
        pods = self.cluster.list("pods", self.system_namespace, "app.kubernetes.io/name=checkout-operator")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def wait_new_operator(self, old: set[str], timeout_s: float = 120) -> str:
        """Wait until one operator Pod runs that is not one of ``old``, ready (its process, where visible)."""
        deadline = time.monotonic() + timeout_s
        seen: object = None
        while time.monotonic() < deadline:
            pods = [p for p in self.operator_pods() if p["metadata"]["name"] not in old]
            if len(pods) == 1 and len(self.operator_pods()) == 1:
                name = str(pods[0]["metadata"]["name"])
                processes = self.target.processes(self.system_namespace)
                ready = processes.get(name, {}).get("ready") if processes is not None else _pod_ready(pods[0])
                if ready:
                    return name
                seen = processes.get(name) if processes is not None else pods[0].get("status")
            else:
                seen = [p["metadata"]["name"] for p in self.operator_pods()]
            time.sleep(0.5)
        raise AssertionError(f"no new operator Pod ready after {timeout_s:.0f} s; last seen: {seen}")

    def install_operator(self, **values: Any) -> float:
        """``helm upgrade --install`` the operator chart (watching the platform's namespace); seconds taken."""
        began = time.monotonic()
        base = {"watchNamespaces": [self.namespace], "reconcile": {"intervalS": 10}, **self.target.operator_values()}
        self.cluster.install_operator(self.release, self.system_namespace, {**base, **values})
        return time.monotonic() - began

    def record(self, scenario: str, outcome: str, seconds: float) -> None:
        """A row of the scenario table."""
        self.scenarios.append(ScenarioRecord(scenario, outcome, seconds))

    def write_timings(self) -> Path:
        """``<run dir>/timings.json``."""
        path = self.run_dir / "timings.json"
        body = {
            "run": self.run_id,
            "target": self.target.name,
            **self.timings,
            "scenarios": [{"scenario": r.scenario, "outcome": r.outcome, "seconds": r.seconds} for r in self.scenarios],
        }
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class Traffic:
    """Checkouts started at a steady pace in a background thread while something happens to the platform.

    Each initiate carries an Idempotency-Key and is retried with the same key on a transport error or a
    5xx, as a well-behaved client does, so a hiccup never starts a checkout twice. Every accepted saga is
    registered with the platform for the invariant check.
    """

    def __init__(self, platform: DeployedPlatform, sku: str, interval_s: float = 0.25) -> None:
        self.platform = platform
        self.sku = sku
        self.interval_s = interval_s
        self.saga_ids: list[str] = []
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.platform.bff_url, timeout=15) as http:
            index = 0
            while not self._stop.is_set():
                index += 1
                body = checkout_body({self.sku: 1}, customer=f"cust_traffic_{index}")
                key = f"traffic-{uuid.uuid4()}"
                for attempt in range(6):
                    try:
                        response = http.post("/api/checkout/initiate", json=body, headers={"Idempotency-Key": key})
                    except httpx.TransportError as exc:
                        said = f"{type(exc).__name__}"
                    else:
                        if response.status_code == 202:
                            saga_id = response.json()["saga_id"]
                            self.saga_ids.append(saga_id)
                            self.platform.started.append(saga_id)
                            break
                        said = f"{response.status_code} {response.text[:200]}"
                        if response.status_code < 500:
                            self.refused.append(said)
                            break
                    time.sleep(0.5 * (attempt + 1))
                else:
                    self.refused.append(said)
                self._stop.wait(self.interval_s)

    def settle(self, client: Client, timeout_s: float = 120) -> list[dict[str, Any]]:
        """Every accepted saga once terminal."""
        return [client.wait(saga_id, timeout_s=timeout_s) for saga_id in self.saga_ids]


async def admin_sql(dsn: str, *statements: str) -> None:
    """Run each statement as the superuser (outside a transaction: CREATE/DROP DATABASE need that)."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def seed_stock(platform: DeployedPlatform) -> None:
    """``PUT /inventory/{sku}`` through the inventory's Service."""
    with httpx.Client(base_url=platform.url("inventory"), timeout=15) as inventory:
        for sku, (units, price) in STOCK.items():
            response = inventory.put(
                f"/inventory/{sku}", json={"available": units, "unit_price_minor": price, "currency": CURRENCY}
            )
            assert response.status_code == 200, response.text


def prune_old_runs(keep: int = KEEP_RUNS) -> None:
    """Keep the newest ``keep`` run directories (logs of the Pods' processes live there)."""
    import shutil

    runs = sorted((REPO_ROOT / ".run").glob("e2e-platform-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for run_dir in runs[keep:]:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def deployed(target: Target) -> Iterator[DeployedPlatform]:
    """Install, apply, wait — yield — then remove every trace of the run."""
    prune_old_runs(KEEP_RUNS - 1)
    run_id = uuid.uuid4().hex[:8]
    run_dir = REPO_ROOT / ".run" / f"e2e-platform-{run_id}"
    run_dir.mkdir(parents=True)
    platform = DeployedPlatform(target, run_id, run_dir)
    target.cluster.verify_ours(target.owner_token)
    asyncio.run(admin_sql(target.host.postgres_dsn, f'CREATE DATABASE "{platform.database}"'))
    roles: list[str] = []
    target.serve([platform.system_namespace, platform.namespace], run_dir)
    try:
        cluster = target.cluster
        cluster.ensure_namespace(platform.namespace)  # the chart's Role for it goes there
        began = time.monotonic()
        platform.timings["helm_install_s"] = round(platform.install_operator(), 2)
        backends = target.backends
        cluster.admin_secret(platform.namespace, ADMIN_SECRET, backends.admin_user, backends.admin_password)
        applied = time.monotonic()
        cluster.apply(platform.manifest(), platform.namespace)
        platform.wait_ready()
        platform.timings["apply_to_ready_s"] = round(time.monotonic() - applied, 2)
        roles = [s["role"] for s in platform.resource()["status"]["services"]]
        target.wait_workloads(platform.namespace)
        platform.timings["apply_to_processes_ready_s"] = round(time.monotonic() - applied, 2)
        platform.timings["install_to_processes_ready_s"] = round(time.monotonic() - began, 2)
        seed_stock(platform)
        platform.stock_before = asyncio.run(snapshot_stock(platform.dsn, platform.schemas()))
        yield platform
    finally:
        platform.write_timings()
        _teardown(platform, roles)


def _teardown(platform: DeployedPlatform, roles: list[str]) -> None:
    """Delete the resource (releasing it if the operator cannot), uninstall, stop the Pods, drop the rest."""
    cluster, target = platform.cluster, platform.target
    with contextlib.suppress(Exception):
        if cluster.platform(platform.namespace, platform.name) is not None:
            cluster.run(
                "-n", platform.namespace, "annotate", "checkoutplatform", platform.name,
                "checkout.platform.io/release-finalizer=true", "--overwrite",
            )  # fmt: skip
            cluster.run("-n", platform.namespace, "delete", "checkoutplatform", platform.name, "--timeout=60s")
    with contextlib.suppress(Exception):
        cluster.helm_run(
            "uninstall", platform.release, "--namespace", platform.system_namespace, "--wait", "--timeout", "2m"
        )
    for namespace in (platform.namespace, platform.system_namespace):
        cluster.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
    target.stop_serving()
    statements = [f'DROP DATABASE IF EXISTS "{platform.database}" WITH (FORCE)']
    statements += [f'DROP ROLE IF EXISTS "{role}"' for role in roles]
    asyncio.run(admin_sql(target.host.postgres_dsn, *statements))
    asyncio.run(_delete_topics(target.host.kafka_bootstrap, platform.prefix))


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def topics(bootstrap: str, prefix: str) -> dict[str, int]:
    """Topics of a prefix on the broker → partition counts."""

    async def read() -> dict[str, int]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
            if not names:
                return {}
            described = await admin.describe_topics(names)
            return {d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0}
        finally:
            await admin.close()

    return asyncio.run(read())


def consumer_group_members(bootstrap: str, group: str, *, expected: int, timeout_s: float = 60) -> list[str]:
    """The member ids of a consumer group once it has ``expected`` members in a stable state (or at the timeout)."""

    async def describe() -> tuple[str, list[str]]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([group])
            (described,) = response.groups
            # (error_code, group_id, state, protocol_type, protocol, members)
            state, members = described[2], described[5]
            return str(state), [str(member[0]) for member in members]
        finally:
            await admin.close()

    deadline = time.monotonic() + timeout_s
    while True:
        state, members = asyncio.run(describe())
        if (state == "Stable" and len(members) == expected) or time.monotonic() > deadline:
            return members
        time.sleep(1)


def topic_config(bootstrap: str, topic: str, key: str) -> str | None:
    """One config value of a topic as the broker reports it."""

    async def read() -> str | None:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            for resource in response.resources:
                # (error_code, error_message, resource_type, resource_name, config_entries)
                for entry in resource[4]:
                    if entry[0] == key:
                        return str(entry[1])
            return None
        finally:
            await admin.close()

    return asyncio.run(read())
