"""Run the real operator as a process against the local stack, and observe what it does.

The operator is started exactly as a developer starts it (``python -m checkout_operator``), watching one
test namespace, authenticated either as cluster-admin or as the chart's ServiceAccount (so RBAC is the
chart's, not ours). Everything is observed through the API server, Kafka and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "checkoutplatforms.checkout.platform.io.yaml"
EXAMPLE = ROOT / "examples" / "checkoutplatform.yaml"
CHART = ROOT / "charts" / "checkout-service"
LOG_DIR = ROOT / ".run" / "operator-tests"
ADMIN_SECRET = "checkout-postgres-admin"
GROUP, VERSION, PLURAL = "checkout.platform.io", "v1alpha1", "checkoutplatforms"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")


@dataclass
class Kube:
    """kubectl against the local API server (cluster-admin)."""

    kubectl: Path
    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
        return result

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        result = self.run("-n", namespace, "get", kind, name, "-o", "json", "--show-managed-fields", check=False)
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def apply(self, obj: dict[str, Any], namespace: str) -> subprocess.CompletedProcess[str]:
        return self.run("-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(obj), check=False)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        out = self.run(
            "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        ).stdout
        return list(json.loads(out)["items"])


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return None


def is_ready(obj: dict[str, Any] | None) -> bool:
    """Ready=True for the object's current generation."""
    if obj is None:
        return False
    ready = condition(obj, "Ready")
    return bool(
        ready and ready["status"] == "True" and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
    )


class NotYet:
    """A falsy probe result that still says what was seen (for the timeout message)."""

    def __init__(self, seen: object) -> None:
        self.seen = seen

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return repr(self.seen)


def ready_condition(obj: dict[str, Any] | None) -> NotYet:
    """What a not-yet-ready object says about itself."""
    return NotYet(condition(obj, "Ready") if obj else "no such object")


@dataclass
class Postgres:
    """The local PostgreSQL as its superuser: a throwaway database for the platforms under test."""

    dsn: str

    @property
    def host(self) -> str:
        return urlsplit(self.dsn).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.dsn).port or 5432

    @property
    def user(self) -> str:
        return urlsplit(self.dsn).username or "postgres"

    @property
    def password(self) -> str:
        return urlsplit(self.dsn).password or ""

    def query(self, sql: str, *args: Any, database: str | None = None) -> list[dict[str, Any]]:
        return asyncio.run(self._query(sql, args, database))

    async def _query(self, sql: str, args: tuple[Any, ...], database: str | None) -> list[dict[str, Any]]:
        import asyncpg

        dsn = self.dsn if database is None else urlsplit(self.dsn)._replace(path=f"/{database}").geturl()
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return [dict(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()


@dataclass
class OperatorProcess:
    """``python -m checkout_operator`` as a child process with its own ports and log file."""

    env: dict[str, str]
    log_path: Path
    metrics_port: int
    health_port: int
    process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    def start(self) -> OperatorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "checkout_operator"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self.healthy():
            assert time.monotonic() < deadline, f"the operator's /healthz never answered; log: {self.log_path}"
            time.sleep(0.3)
        return self

    def healthy(self) -> bool:
        import httpx

        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}; log:\n{self.log()[-4000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class OperatorFactory:
    """Builds operator processes for one test namespace."""

    namespace: str
    kubeconfig: Path
    helm: Path
    started: list[OperatorProcess] = field(default_factory=list)

    def start(self, *, standalone: bool = True, priority: int = 0, **extra: str) -> OperatorProcess:
        metrics_port, health_port = free_port(), free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(ROOT / ".run")),
            "KUBECONFIG": str(self.kubeconfig),
            "NAMESPACES": json.dumps([self.namespace]),
            "METRICS_PORT": str(metrics_port),
            "HEALTH_PORT": str(health_port),
            "LOG_LEVEL": "INFO",
            "PEERING__STANDALONE": "true" if standalone else "false",
            "PEERING__PRIORITY": str(priority),
            "POD_ID": f"{self.namespace}-operator-{len(self.started)}",  # kopf's peer identity, as in a Pod
            "WORKLOADS__HELM_BINARY": str(self.helm),
            "WORKLOADS__CHART_DIR": str(CHART),
            "RECONCILE__INTERVAL_S": "3",
            "RECONCILE__RETRY_BACKOFF_S": "1",
            "RECONCILE__RETRY_BACKOFF_MAX_S": "4",
            "KAFKA__TIMEOUT_S": "5",
            "POSTGRES__TIMEOUT_S": "5",
            **extra,
        }
        log_path = LOG_DIR / f"{self.namespace}-{len(self.started)}.log"
        operator = OperatorProcess(env, log_path, metrics_port, health_port)
        self.started.append(operator)
        return operator.start()

    def stop_all(self) -> None:
        for operator in self.started:
            operator.stop()


def platform_manifest(
    name: str, prefix: str, kafka: str, postgres: Postgres, database: str, admin_secret: str
) -> dict[str, Any]:
    """The annotated example, pointed at the local stack and this test's prefix and database."""
    example = yaml.safe_load(EXAMPLE.read_text())
    obj = copy.deepcopy(example)
    obj["metadata"] = {"name": name}
    spec = obj["spec"]
    spec["kafka"]["bootstrapServers"] = [kafka]
    spec["kafka"]["topicPrefix"] = prefix
    spec["postgres"].update(host=postgres.host, port=postgres.port, database=database)
    spec["postgres"]["adminSecretRef"]["name"] = admin_secret
    spec["tracing"].pop("otlpEndpoint", None)
    return dict(obj)


def secret_value(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started


def kafka_topics(bootstrap: str, prefix: str) -> dict[str, int]:
    """Topics of a prefix on the real broker → partition counts."""
    return asyncio.run(_kafka_topics(bootstrap, prefix))


async def _kafka_topics(bootstrap: str, prefix: str) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
        if not names:
            return {}
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0}
    finally:
        await admin.close()
