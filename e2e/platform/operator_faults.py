"""The operator rows of the fault matrix: what test_06b and test_06c share.

Each row runs a steady checkout load (``deployed.Traffic``, ~4 checkouts/s through the gateway's
Service, on a SKU of its own) while a fault hits the operator, then waits for every saga of the load
to be terminal, runs the invariant checker over them, waits for every consumer group of the platform
to drain (committed offsets equal to the end offsets) and records a row in the reliability ledger
(``group="operator"``). The row is recorded before the test asserts, so a failing row is in the ledger
too.

Also here: the operator's process as the node agent runs it (its pid, to SIGKILL it), a small second
platform with an operator and a node agent of its own (rows 3 and 4 must not disturb the main one),
and a client of toxiproxy's HTTP API (row 4 stalls the operator's connection to the API server).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg
import httpx
import yaml
from chaos_ledger import FaultRow, record_fault
from deployed import ADMIN_SECRET, DEADLINE_BUDGET_S, DeployedPlatform, admin_sql
from saga_platform import CURRENCY

from checkout_invariants import Report, check
from checkout_stack.platform_install import NodeAgentProcess, platform_manifest

T = TypeVar("T")

FAULT_SKU: Final = "PE2E-OPFAULTS"
FAULT_STOCK: Final = (5_000, 250)
"""Units and unit price of the rows' SKU: enough for every row's load, so none fails for stock."""
SETTLE_S: Final = 150.0
"""How long a row waits for the sagas of its load to be terminal (two deadlines of 10 s with two attempts
each, plus the compensation, fit well within)."""
LAG_DRAIN_S: Final = 60.0
DUPLICATES: Final = ("double-charge", "double-refund")
STOCK_VIOLATIONS: Final = ("stock-not-conserved", "reserved-mismatch")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # a probe racing a restart or a deletion: look again
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s:.0f} s; last seen: {last!r}")
        time.sleep(interval_s)


# --- the load and its verdict ---------------------------------------------------------------------


def seed_fault_stock(platform: DeployedPlatform) -> None:
    """Stock the rows' SKU once per session and add it to the snapshot the invariant check compares with."""
    if FAULT_SKU in platform.stock_before:
        return
    units, price = FAULT_STOCK
    with httpx.Client(base_url=platform.url("inventory"), timeout=15) as inventory:
        response = inventory.put(
            f"/inventory/{FAULT_SKU}", json={"available": units, "unit_price_minor": price, "currency": CURRENCY}
        )
    assert response.status_code == 200, response.text
    platform.stock_before[FAULT_SKU] = units


async def _terminal(dsn: str, schema: str, saga_ids: Sequence[str]) -> int:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        count = await connection.fetchval(
            f"SELECT count(*) FROM {schema}.sagas WHERE saga_id::text = ANY($1::text[]) "  # noqa: S608 - a plain identifier
            "AND state = ANY($2::text[])",
            list(saga_ids),
            ["COMPLETED", "FAILED"],
        )
    finally:
        await connection.close()
    return int(count)


def in_flight(platform: DeployedPlatform, saga_ids: Sequence[str]) -> int:
    """Sagas accepted so far that are not terminal (no row yet counts too)."""
    ids = list(saga_ids)
    if not ids:
        return 0
    return len(ids) - asyncio.run(_terminal(platform.dsn, platform.schemas().orchestrator, ids))


@dataclass
class Verdict:
    """What the checker and the brokers say after a row's load."""

    report: Report
    started: int
    lost: int
    duplicated: int
    stuck: int
    stock_conserved: bool
    lag: dict[str, int]
    lag_drained: bool
    settle_s: float

    @property
    def holds(self) -> bool:
        """The row's criterion: nothing lost, duplicated or stuck, stock conserved, lag back to 0."""
        return (
            self.report.ok
            and self.lost == 0
            and self.duplicated == 0
            and self.stuck == 0
            and self.stock_conserved
            and self.lag_drained
        )

    def summary(self) -> str:
        """One line for the ledger's detail and for failure messages."""
        return (
            f"{self.report.summary()}; lost {self.lost}, duplicated {self.duplicated}, stuck {self.stuck}; "
            f"consumer lag {self.lag}; terminal {self.settle_s:.1f} s after the load stopped"
        )


async def _settled(platform: DeployedPlatform, saga_ids: list[str], stock_before: Mapping[str, int]) -> Report:
    give_up = time.monotonic() + SETTLE_S
    while True:
        report = await check(
            platform.dsn,
            stock_before=stock_before,
            deadline_budget=dt.timedelta(seconds=DEADLINE_BUDGET_S),
            schemas=platform.schemas(),
            saga_ids=saga_ids,
        )
        terminal = report.sagas.get("COMPLETED", 0) + report.sagas.get("FAILED", 0)
        if terminal == len(saga_ids) or time.monotonic() > give_up:
            return report
        await asyncio.sleep(1.0)


def verdict(platform: DeployedPlatform, saga_ids: Sequence[str], *, lag_of: DeployedPlatform | None = None) -> Verdict:
    """Wait (bounded) for every saga of the load to be terminal and the platform's consumers to drain; check."""
    ids = sorted(set(saga_ids))
    began = time.monotonic()
    report = asyncio.run(_settled(platform, ids, dict(platform.stock_before)))
    settle_s = time.monotonic() - began
    lag, drained = wait_lag_drained((lag_of or platform).target.host.kafka_bootstrap, (lag_of or platform).prefix)
    terminal = report.sagas.get("COMPLETED", 0) + report.sagas.get("FAILED", 0)
    return Verdict(
        report=report,
        started=len(ids),
        lost=len(ids) - terminal,
        duplicated=sum(1 for v in report.violations if v.invariant in DUPLICATES)
        + sum(
            1
            for v in report.violations
            if v.invariant == "completed-without-one-order" and not v.detail.startswith(("0 ", "1 "))
        ),
        stuck=sum(1 for v in report.violations if v.invariant == "stuck-saga"),
        stock_conserved=not any(v.invariant in STOCK_VIOLATIONS for v in report.violations),
        lag=lag,
        lag_drained=drained,
        settle_s=settle_s,
    )


def record_row(
    fault: str,
    load: str,
    in_flight_sagas: int,
    result: Verdict,
    recovery_s: float | None,
    detail: str,
    *,
    recovered: bool = True,
) -> FaultRow:
    """Append the row to the reliability ledger (group ``operator``) and return it.

    ``recovered``: the system came back as the row demands (a row that did not never holds, whatever the
    checker says about the sagas).
    """
    row = FaultRow(
        fault=fault,
        load=load,
        in_flight=in_flight_sagas,
        started=result.started,
        lost=result.lost,
        duplicated=result.duplicated,
        stuck=result.stuck,
        stock_conserved=result.stock_conserved,
        lag_drained=result.lag_drained,
        recovery_s=None if recovery_s is None else round(recovery_s, 2),
        holds=result.holds and recovered,
        detail=f"{detail}; {result.summary()}",
        group="operator",
    )
    record_fault(row)
    return row


def load_rate(saga_ids: Sequence[str], seconds: float) -> str:
    """``~3.6 checkouts/s`` over the load's duration."""
    return f"~{len(saga_ids) / max(seconds, 0.001):.1f} checkouts/s through the gateway's Service ({len(saga_ids)})"


# --- consumer lag ---------------------------------------------------------------------------------


async def _lag(bootstrap: str, prefix: str) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000)
    await admin.start()
    await consumer.start()
    try:
        groups = sorted(str(g[0]) for g in await admin.list_consumer_groups() if str(g[0]).startswith(f"{prefix}."))
        lag: dict[str, int] = {}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            topics = sorted({tp.topic for tp in committed})
            if not topics:
                continue
            partitions = [
                TopicPartition(d["topic"], p["partition"])
                for d in await admin.describe_topics(topics)
                for p in d["partitions"]
            ]
            ends = await consumer.end_offsets(partitions)
            behind = 0
            for tp in partitions:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                behind += max(int(ends[tp]) - done, 0)
            lag[group] = behind
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def consumer_lag(bootstrap: str, prefix: str) -> dict[str, int]:
    """Per consumer group of the platform (``<prefix>.<service>``): end offsets minus committed offsets."""
    return asyncio.run(_lag(bootstrap, prefix))


def wait_lag_drained(bootstrap: str, prefix: str, timeout_s: float = LAG_DRAIN_S) -> tuple[dict[str, int], bool]:
    """The lag once every group is at 0 (True), or the last one seen after ``timeout_s`` (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = consumer_lag(bootstrap, prefix)
        if lag and not any(lag.values()):
            return lag, True
        if time.monotonic() > deadline:
            return lag, False
        time.sleep(1.0)


# --- the operator's process -------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorContainer:
    """The operator's container as the node agent runs it."""

    pod: str
    pid: int | None
    restarts: int
    ready: bool


def operator_container(agent_pods: Mapping[str, Mapping[str, Any]]) -> OperatorContainer | None:
    """The one operator container of a system namespace (from the agent's ``state.json``), if any runs."""
    found = [
        OperatorContainer(pod, c.get("pid"), int(c.get("restarts") or 0), bool(c.get("ready")))
        for pod, state in agent_pods.items()
        if state.get("labels", {}).get("app.kubernetes.io/name") == "checkout-operator"
        for name, c in state.get("containers", {}).items()
        if name == "operator" and not c.get("init")
    ]
    assert len(found) <= 1, f"more than one operator container runs: {found}"
    return found[0] if found else None


def process_alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def process_env(pid: int) -> dict[str, str]:
    """The environment a process was started with (``/proc/<pid>/environ``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


async def _connects(url: str) -> str | None:
    try:
        connection = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


def database_logins(agent_pods: Mapping[str, Mapping[str, Any]]) -> dict[str, str | None]:
    """Per running container: whether the ``DATABASE__URL`` it was started with logs in now (None) or why not.

    A role whose password was reset under a running process breaks that process at its next connection
    (a pool refill, a PostgreSQL restart): this asks the server with exactly what the process holds.
    """
    results: dict[str, str | None] = {}
    for pod, state in agent_pods.items():
        for name, container in state.get("containers", {}).items():
            pid = container.get("pid")
            if container.get("init") or not pid:
                continue
            try:
                url = process_env(int(pid)).get("DATABASE__URL")
            except OSError:
                continue  # it exited meanwhile: its replacement is looked at next time
            if url:
                results[f"{pod}/{name}"] = asyncio.run(_connects(url))
    return results


# --- a second, small platform ---------------------------------------------------------------------

SMALL_SERVICES: Final = {
    s: {"enabled": s == "inventory"}
    for s in ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
}
"""Only the inventory runs: one process besides the operator's."""


@dataclass
class SmallPlatform:
    """A CheckoutPlatform of its own (namespace, prefix, database, operator release, node agent).

    ``deletionPolicy: Delete``, so deleting it must leave nothing. Its names follow the main platform's
    with an ``f`` appended (``e2e-<id>f``), so the main run's teardown patterns do not reach it and
    its own teardown does not reach the main platform.
    """

    platform: DeployedPlatform
    agent: NodeAgentProcess
    roles: list[str] = field(default_factory=list)

    @property
    def cluster(self) -> Any:
        """kubectl and helm."""
        return self.platform.cluster

    def manifest(self) -> dict[str, Any]:
        """The CheckoutPlatform (inventory only, ``deletionPolicy: Delete``)."""
        backends = self.platform.target.backends
        return platform_manifest(
            self.platform.name,
            bootstrap_servers=backends.bootstrap_servers,
            topic_prefix=self.platform.prefix,
            postgres_host=backends.postgres_host,
            postgres_port=backends.postgres_port,
            database=self.platform.database,
            admin_secret=ADMIN_SECRET,
            otlp_endpoint=None,
            services=SMALL_SERVICES,
            deletion_policy="Delete",
        )

    def operator(self) -> OperatorContainer | None:
        """The chart operator's container, if its Pod runs."""
        return operator_container(self.agent.pods(self.platform.system_namespace))

    def scale_operator(self, replicas: int) -> None:
        """``kubectl scale`` the operator's Deployment."""
        p = self.platform
        p.cluster.run("-n", p.system_namespace, "scale", "deployment", p.release, f"--replicas={replicas}")

    def stop_operator(self, timeout_s: float = 60) -> None:
        """Scale the operator to 0 and wait until neither its Pod nor its process is left."""
        self.scale_operator(0)
        wait_for(
            "the operator's Pod and process gone",
            lambda: not self.platform.operator_pods() and self.operator() is None,
            timeout_s,
        )

    def start_operator(self, timeout_s: float = 90) -> OperatorContainer:
        """Scale the operator to 1 and wait for its process to be ready."""
        self.scale_operator(1)
        return wait_for(
            "the operator's process ready",
            lambda: (c := self.operator()) is not None and c.ready and c.pid is not None and c,
            timeout_s,
        )

    def processes(self) -> dict[str, dict[str, Any]]:
        """The platform's Pods the agent runs."""
        return self.agent.pods(self.platform.namespace)


@contextlib.contextmanager
def small_platform(main: DeployedPlatform) -> Iterator[SmallPlatform]:
    """Install a second platform (its operator chart release, its node agent), yield it Ready, remove it all."""
    from deployed import _delete_topics
    from platform_target import LocalTarget

    target = main.target
    assert isinstance(target, LocalTarget), "the small platform runs on the local control plane only"
    run_dir = main.run_dir / "small"
    run_dir.mkdir(parents=True, exist_ok=True)
    platform = DeployedPlatform(target, f"{main.run_id}f", run_dir)
    agent = NodeAgentProcess(
        f"kubelet-e2e-platform-{platform.run_id}",
        [platform.system_namespace, platform.namespace],
        target.stack.settings.run_dir,
        run_dir / "node",
    )
    small = SmallPlatform(platform, agent)
    asyncio.run(admin_sql(target.host.postgres_dsn, f'CREATE DATABASE "{platform.database}"'))
    agent.start()
    try:
        cluster = platform.cluster
        cluster.ensure_namespace(platform.namespace)
        platform.install_operator(reconcile={"intervalS": 10})
        backends = target.backends
        cluster.admin_secret(platform.namespace, ADMIN_SECRET, backends.admin_user, backends.admin_password)
        cluster.apply(small.manifest(), platform.namespace)
        platform.wait_ready(timeout_s=120)
        small.roles = [s["role"] for s in platform.resource()["status"]["services"] if s.get("role")]
        agent.wait_workloads(cluster, platform.namespace, timeout_s=120)
        yield small
    finally:
        cluster = platform.cluster
        with contextlib.suppress(Exception):
            if cluster.platform(platform.namespace, platform.name) is not None:
                cluster.run(
                    "-n", platform.namespace, "annotate", "checkoutplatform", platform.name,
                    "checkout.platform.io/release-finalizer=true", "--overwrite",
                )  # fmt: skip
                small.scale_operator(1)
                cluster.run("-n", platform.namespace, "delete", "checkoutplatform", platform.name, "--timeout=60s")
        with contextlib.suppress(Exception):
            cluster.helm_run("uninstall", platform.release, "--namespace", platform.system_namespace, "--wait")
        for namespace in (platform.namespace, platform.system_namespace):
            cluster.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
        agent.stop()
        statements = [f'DROP DATABASE IF EXISTS "{platform.database}" WITH (FORCE)']
        statements += [f'DROP ROLE IF EXISTS "{role}"' for role in small.roles]
        asyncio.run(admin_sql(target.host.postgres_dsn, *statements))
        asyncio.run(_delete_topics(target.host.kafka_bootstrap, platform.prefix))


# --- toxiproxy --------------------------------------------------------------------------------------


@dataclass
class Toxiproxy:
    """toxiproxy's HTTP API: a proxy in front of one upstream, and a stall (both directions) on it."""

    url: str
    name: str
    upstream: str
    listen: str = ""

    def __enter__(self) -> Toxiproxy:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            http.delete(f"/proxies/{self.name}")  # a leftover of an interrupted run
            response = http.post(
                "/proxies",
                json={"name": self.name, "listen": "127.0.0.1:0", "upstream": self.upstream, "enabled": True},
            )
        assert response.status_code in (200, 201), response.text
        self.listen = str(response.json()["listen"])
        return self

    def __exit__(self, *exc: object) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            http.delete(f"/proxies/{self.name}")

    def stall(self) -> None:
        """A ``timeout`` toxic with timeout 0 each way: nothing passes, no connection is closed.

        toxiproxy drops what arrives meanwhile (it does not hold it), so a connection that carried
        bytes during the stall is broken afterwards (TLS fails), and one whose request was dropped waits
        for an answer that never comes: a client without its own timeout waits forever.
        """
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for stream in ("downstream", "upstream"):
                response = http.post(
                    f"/proxies/{self.name}/toxics",
                    json={"name": f"stall-{stream}", "type": "timeout", "stream": stream, "attributes": {"timeout": 0}},
                )
                assert response.status_code in (200, 201), response.text

    def lift(self) -> None:
        """Let data flow again without closing any connection: the toxics' toxicity goes to 0.

        Removing a ``timeout`` toxic would close every connection it stalled, which rescues a client
        waiting on one. A stall that ends silently is the harder case: what was dropped stays lost, a
        connection whose request was dropped stays open and never gets its answer, and only the client's
        own timeouts get it out.
        """
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for stream in ("downstream", "upstream"):
                response = http.post(f"/proxies/{self.name}/toxics/stall-{stream}", json={"toxicity": 0.0})
                assert response.status_code == 200, response.text


def kubeconfig_via(kubeconfig: Path, address: str, path: Path) -> Path:
    """A copy of ``kubeconfig`` whose server is ``https://<address>`` (the API server's certificate is valid for
    127.0.0.1, whatever the port, so TLS passes the TCP proxy unchanged)."""
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{address}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def api_server_address(kubeconfig: Path) -> str:
    """``host:port`` of the kubeconfig's (first) server."""
    server = str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    return server.removeprefix("https://").rstrip("/")


def objects(platform: DeployedPlatform, kind: str) -> list[dict[str, Any]]:
    """The platform's objects of a kind (by its platform label)."""
    return platform.cluster.list(kind, platform.namespace, f"checkout.platform.io/platform={platform.name}")
