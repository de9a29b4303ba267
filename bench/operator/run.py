"""How the operator scales: apply → Ready for one platform, then 10, 50, 100 platforms applied at once.

The operator runs as it does in a cluster (``python -m checkout_operator``, production defaults: 30 s
drift interval, backoff, its own process) against the local stack, watching one namespace of its own.
Every platform is the example (``examples/checkoutplatform.yaml`` on the stack's addresses) with one
partition per topic and every service at 0 replicas — the operator still creates 5 topics, 5 schemas
and 5 roles, 5 Secrets and renders, applies and watches 5 Deployments, Services, ConfigMaps and
ServiceAccounts per platform; nothing runs them.

Measured, never asserted:

- ``single``: ``kubectl apply`` → ``Ready=True`` for one fresh platform, repeated (p50, p95, max);
- ``burst N``: N platforms applied in one ``kubectl apply`` → every one Ready; the operator's CPU
  seconds (user + system, from /proc) and peak RSS (VmHWM) over the burst, from a fresh operator;
- ``edit N``: a spec change on all N (topic partitions 1 → 2) → every one Ready at the new generation;
- ``delete N``: ``deletionPolicy: Delete`` and ``kubectl delete`` of all N → all gone (topics, schemas
  and roles dropped).

    uv run python bench/operator/run.py                    # single x10, bursts 10, 50, 100
    uv run python bench/operator/run.py --bursts 10 --repeats 3

Needs the local stack (``make up``). Writes ``bench/results/operator-scale.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform as host
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import asyncpg
import httpx
import yaml

from checkout_stack.platform_install import Cluster, is_ready, platform_manifest
from checkout_stack.stack import Stack

ROOT: Final = Path(__file__).resolve().parents[2]
ADMIN_SECRET: Final = "checkout-postgres-admin"  # noqa: S105 - the Secret's name
RESULTS: Final = ROOT / "bench" / "results" / "operator-scale"
KIND: Final = "checkoutplatforms.checkout.platform.io"
SERVICES: Final = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Operator:
    """``python -m checkout_operator`` as a child process, with /proc readings of its cost."""

    namespace: str
    kubeconfig: Path
    helm: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    health_port: int = field(default_factory=_free_port)

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
            "KUBECONFIG": str(self.kubeconfig),
            "NAMESPACES": json.dumps([self.namespace]),
            "METRICS_PORT": str(_free_port()),
            "HEALTH_PORT": str(self.health_port),
            "LOG_LEVEL": "WARNING",
            "PEERING__STANDALONE": "true",
            "POD_ID": f"bench-{self.namespace}",
            "WORKLOADS__HELM_BINARY": str(self.helm),
            "WORKLOADS__CHART_DIR": str(ROOT / "charts" / "checkout-service"),
            "OTEL_SDK_DISABLED": "true",
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "checkout_operator"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, f"the operator exited; see {self.log}"
            assert time.monotonic() < deadline, f"the operator never became healthy; see {self.log}"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def cpu_seconds(self) -> float:
        """User + system CPU of the operator and its reaped children (``helm template``)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime are fields 14-17 (1-based), i.e. 11-14 after the state field.
        return sum(int(v) for v in fields[11:15]) / CLK_TCK

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


@dataclass
class Bench:
    """The stack, one namespace and database, and the platforms in them."""

    stack: Stack
    cluster: Cluster
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def namespace(self) -> str:
        return f"bench-op-{self.run_id}"

    @property
    def database(self) -> str:
        return f"bench_op_{self.run_id}"

    def manifest(self, name: str, partitions: int = 1) -> dict[str, Any]:
        dsn = urlsplit(self.stack.postgres.env()["DATABASE_URL"])
        obj = platform_manifest(
            name,
            bootstrap_servers=self.stack.kafka.env()["KAFKA_BOOTSTRAP_SERVERS"].split(","),
            topic_prefix=f"{self.namespace}.{name}",
            postgres_host=dsn.hostname or "127.0.0.1",
            postgres_port=dsn.port or 5432,
            database=self.database,
            admin_secret=ADMIN_SECRET,
            otlp_endpoint=None,
            services={service: {"replicas": 0} for service in SERVICES},
            deletion_policy="Delete",
        )
        obj["spec"]["kafka"]["defaults"]["partitions"] = partitions
        obj["spec"]["kafka"]["topics"] = {}
        obj["metadata"]["namespace"] = self.namespace
        return obj

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        self.cluster.run("apply", "-f", "-", stdin=yaml.safe_dump_all(objects), timeout=300)

    def ready_names(self, generation_at_least: int = 1) -> set[str]:
        items = json.loads(self.cluster.run("-n", self.namespace, "get", KIND, "-o", "json").stdout)["items"]
        return {
            o["metadata"]["name"]
            for o in items
            if is_ready(o) and o["metadata"].get("generation", 0) >= generation_at_least
        }

    def wait_all_ready(self, names: set[str], generation_at_least: int = 1, timeout_s: float = 1800) -> float:
        began = time.monotonic()
        while not names <= self.ready_names(generation_at_least):
            assert time.monotonic() - began < timeout_s, f"not all Ready after {timeout_s:.0f} s"
            time.sleep(0.25)
        return time.monotonic() - began

    def delete_all(self, names: Sequence[str]) -> float:
        began = time.monotonic()
        if names:
            self.cluster.run("-n", self.namespace, "delete", KIND, *names, "--timeout=1800s", timeout=1900)
        return time.monotonic() - began


def _admin(dsn: str, statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(bursts: Sequence[int], repeats: int) -> dict[str, Any]:
    stack = Stack()
    kube = stack.kubernetes
    cluster = Cluster(kube.tool("kubectl"), kube.tool("helm"), kube.kubeconfig)
    bench = Bench(stack, cluster)
    dsn = stack.postgres.env()["DATABASE_URL"]
    parts = urlsplit(dsn)
    cluster.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.ensure_namespace(bench.namespace)
    cluster.admin_secret(bench.namespace, ADMIN_SECRET, parts.username or "", parts.password or "")
    _admin(dsn, f'CREATE DATABASE "{bench.database}"')
    log_dir = ROOT / ".run" / "bench-operator" / bench.run_id
    results: dict[str, Any] = {"single": [], "bursts": []}
    try:
        operator = Operator(bench.namespace, kube.kubeconfig, kube.tool("helm"), log_dir / "single.log")
        operator.start()
        try:
            for index in range(repeats):
                name = f"single-{index}"
                began = time.monotonic()
                bench.apply([bench.manifest(name)])
                bench.wait_all_ready({name})
                results["single"].append(round(time.monotonic() - began, 3))
                bench.delete_all([name])
                print(f"single {index + 1}/{repeats}: {results['single'][-1]:.2f} s", flush=True)
        finally:
            operator.stop()
        for n in bursts:
            operator = Operator(bench.namespace, kube.kubeconfig, kube.tool("helm"), log_dir / f"burst-{n}.log")
            operator.start()
            try:
                names = [f"p{n}-{i:03d}" for i in range(n)]
                cpu_before = operator.cpu_seconds()
                bench.apply([bench.manifest(name) for name in names])
                all_ready = bench.wait_all_ready(set(names))
                ready_cpu = operator.cpu_seconds() - cpu_before
                ready_rss = operator.peak_rss_mib()
                bench.apply([bench.manifest(name, partitions=2) for name in names])
                edited = bench.wait_all_ready(set(names), generation_at_least=2)
                cpu_before_delete = operator.cpu_seconds()
                deleted = bench.delete_all(names)
                row = {
                    "platforms": n,
                    "apply_to_all_ready_s": round(all_ready, 2),
                    "operator_cpu_s_to_ready": round(ready_cpu, 2),
                    "cpu_s_per_platform": round(ready_cpu / n, 3),
                    "operator_peak_rss_mib": round(ready_rss, 1),
                    "edit_to_all_ready_s": round(edited, 2),
                    "delete_all_s": round(deleted, 2),
                    "delete_cpu_s": round(operator.cpu_seconds() - cpu_before_delete, 2),
                    "operator_peak_rss_mib_end": round(operator.peak_rss_mib(), 1),
                }
                results["bursts"].append(row)
                print(json.dumps(row), flush=True)
            finally:
                operator.stop()
    finally:
        # A platform left behind (a burst that failed) keeps its finalizer with no operator to remove it, and its
        # namespace would stay Terminating for ever: release them first.
        for name in cluster.run("get", KIND, "-n", bench.namespace, "-o", "name", check=False).stdout.split():
            cluster.run("patch", "-n", bench.namespace, name, "--type=merge", "-p", '{"metadata":{"finalizers":[]}}',
                        check=False)  # fmt: skip
        cluster.run("delete", "namespace", bench.namespace, "--wait=false", check=False)
        _admin(dsn, f'DROP DATABASE IF EXISTS "{bench.database}" WITH (FORCE)')
    return results


def write(results: dict[str, Any], repeats: int, out: Path = RESULTS) -> Path:
    single = results["single"]
    lines = [
        "# Operator scale",
        "",
        f"Recorded by `bench/operator/run.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{host.machine()} with {os.cpu_count()} CPUs, against the local stack (real API server, Kafka "
        "4.1.1, PostgreSQL 15). One operator process, production defaults; each platform: 5 topics of "
        "1 partition, 5 schemas + roles + Secrets, 5 Deployments at 0 replicas (+ Services, ConfigMaps, "
        "ServiceAccounts). Measured, not asserted.",
        "",
        "## One platform: `kubectl apply` → Ready",
        "",
        f"{len(single)} runs: p50 {statistics.median(single):.2f} s, p95 {_percentile(single, 0.95):.2f} s, "
        f"min {min(single):.2f} s, max {max(single):.2f} s.",
        "",
        "## N platforms applied at once",
        "",
        "| N | apply → all Ready | operator CPU to Ready | CPU per platform | peak RSS | edit → all Ready "
        "| delete all |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["bursts"]:
        lines.append(
            f"| {row['platforms']} | {row['apply_to_all_ready_s']:.1f} s | {row['operator_cpu_s_to_ready']:.1f} s "
            f"| {row['cpu_s_per_platform']:.2f} s | {row['operator_peak_rss_mib_end']:.0f} MiB "
            f"| {row['edit_to_all_ready_s']:.1f} s | {row['delete_all_s']:.1f} s |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"repeats": repeats, **results}, indent=2) + "\n")
    path = out.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, nargs="*", default=[10, 50, 100])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results path without suffix (.json and .md)")
    args = parser.parse_args(argv)
    results = run(args.bursts, args.repeats)
    print(f"written to {write(results, args.repeats, args.out)}")


if __name__ == "__main__":
    main()
