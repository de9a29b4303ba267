"""Where the e2e suite runs: the local control plane (``E2E_TARGET=local``, the default) or kind.

A target gives the suite a :class:`~checkout_stack.platform_install.Cluster` (kubectl + helm on a
kubeconfig our tooling created — anything else is refused), the backends a CheckoutPlatform spec
points at (as seen from inside the cluster), what the tests on this host use to look at them
(PostgreSQL, Kafka, the trace backend, Prometheus), and a way to reach a Service.

* local: the stack of ``make up``; the operator and the services run as processes launched by the
  node agent from the Pods the cluster holds (:mod:`checkout_stack.kubelet`), Services answer on
  its local proxies.
* kind: ``e2e/kind/run.sh`` created the cluster, installed Kafka, PostgreSQL, Jaeger and
  Prometheus in it, loaded the images and exported ``E2E_*`` (see ``e2e/kind/README.md``);
  Services are reached with ``kubectl port-forward``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from checkout_stack.platform_install import Cluster, NodeAgentProcess
from checkout_stack.stack import Stack


@dataclass(frozen=True)
class Backends:
    """What a CheckoutPlatform's spec names, as the cluster reaches it."""

    bootstrap_servers: list[str]
    postgres_host: str
    postgres_port: int
    admin_user: str
    admin_password: str
    otlp_endpoint: str | None


@dataclass(frozen=True)
class HostAccess:
    """What the tests on this machine read to check the platform's effects."""

    postgres_dsn: str
    """Superuser DSN (any database; the suite swaps the path)."""
    kafka_bootstrap: str
    traces_query_url: str
    prometheus_url: str


class Target(Protocol):
    """One place the suite can run."""

    name: str
    cluster: Cluster
    backends: Backends
    host: HostAccess
    owner_token: str

    def operator_values(self) -> dict[str, Any]:
        """Chart values the target needs (images, …) under the suite's own."""
        ...

    def serve(self, namespaces: Sequence[str], run_dir: Path) -> None:
        """Begin running the Pods of these namespaces (local: start the node agent)."""
        ...

    def stop_serving(self) -> None:
        """Stop what :meth:`serve` started."""
        ...

    def service_url(self, namespace: str, service: str, port: int) -> str:
        """``http://host:port`` where a Service port answers from here."""
        ...

    def wait_workloads(self, namespace: str, timeout_s: float = 180) -> dict[str, int]:
        """Wait until every Deployment of the namespace runs exactly its replicas, ready."""
        ...

    def processes(self, namespace: str) -> dict[str, dict[str, Any]] | None:
        """Per Pod: its containers' pids, ports and readiness — None where processes are not visible."""
        ...


@dataclass
class LocalTarget:
    """The local stack's control plane, Kafka, PostgreSQL, Jaeger and Prometheus."""

    stack: Stack
    name: str = "local"
    agent: NodeAgentProcess | None = None

    def __post_init__(self) -> None:
        kubernetes = self.stack.kubernetes
        self.cluster = Cluster(kubernetes.tool("kubectl"), kubernetes.tool("helm"), kubernetes.kubeconfig)
        # The stack's own cluster (it generated the CA the kubeconfig trusts): mark it, then check the mark
        # like any target's.
        kubernetes.ensure_owner_marker()
        self.owner_token = kubernetes.owner_token_file.read_text().strip()
        dsn = self.stack.postgres.env()["DATABASE_URL"]
        parts = urlsplit(dsn)
        kafka = self.stack.kafka.env()["KAFKA_BOOTSTRAP_SERVERS"]
        self.backends = Backends(
            bootstrap_servers=kafka.split(","),
            postgres_host=parts.hostname or "127.0.0.1",
            postgres_port=parts.port or 5432,
            admin_user=parts.username or "postgres",
            admin_password=parts.password or "",
            otlp_endpoint=self.stack.jaeger.env()["OTEL_EXPORTER_OTLP_ENDPOINT"],
        )
        self.host = HostAccess(
            postgres_dsn=dsn,
            kafka_bootstrap=kafka,
            traces_query_url=self.stack.jaeger.env()["TRACES_QUERY_URL"],
            prometheus_url=self.stack.prometheus.env()["PROMETHEUS_URL"],
        )

    def operator_values(self) -> dict[str, Any]:
        """Nothing: the chart's default images (``checkout-platform/<name>``) are what the node agent runs."""
        return {}

    def serve(self, namespaces: Sequence[str], run_dir: Path) -> None:
        self.agent = NodeAgentProcess(
            f"kubelet-{run_dir.name}", list(namespaces), self.stack.settings.run_dir, run_dir / "node"
        )
        self.agent.start()

    def stop_serving(self) -> None:
        if self.agent is not None:
            self.agent.stop()

    def _agent(self) -> NodeAgentProcess:
        assert self.agent is not None, "serve() first"
        return self.agent

    def service_url(self, namespace: str, service: str, port: int) -> str:
        deadline = time.monotonic() + 30
        while (address := self._agent().service_address(namespace, service, port)) is None:
            assert time.monotonic() < deadline, f"the node agent has no proxy for {namespace}/{service}:{port}"
            time.sleep(0.2)
        return f"http://{address}"

    def wait_workloads(self, namespace: str, timeout_s: float = 180) -> dict[str, int]:
        return self._agent().wait_workloads(self.cluster, namespace, timeout_s=timeout_s)

    def processes(self, namespace: str) -> dict[str, dict[str, Any]] | None:
        return self._agent().pods(namespace)


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"E2E_TARGET=kind needs {name} (exported by e2e/kind/run.sh; see e2e/kind/README.md)")
    return value


@dataclass
class KindTarget:
    """A kind cluster prepared by ``e2e/kind/run.sh``; everything comes from its ``E2E_*`` exports."""

    name: str = "kind"
    forwards: list[subprocess.Popen[str]] = field(default_factory=list)
    urls: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kubectl = shutil.which("kubectl")
        helm = shutil.which("helm")
        if kubectl is None or helm is None:
            raise RuntimeError("E2E_TARGET=kind needs kubectl and helm on PATH")
        self.cluster = Cluster(Path(kubectl), Path(helm), Path(_required("KUBECONFIG")))
        self.owner_token = Path(_required("E2E_CLUSTER_TOKEN_FILE")).read_text().strip()
        self.backends = Backends(
            bootstrap_servers=_required("E2E_KAFKA_BOOTSTRAP").split(","),
            postgres_host=_required("E2E_POSTGRES_HOST"),
            postgres_port=int(_required("E2E_POSTGRES_PORT")),
            admin_user=_required("E2E_POSTGRES_USER"),
            admin_password=_required("E2E_POSTGRES_PASSWORD"),
            otlp_endpoint=os.environ.get("E2E_OTLP_ENDPOINT") or None,
        )
        self.host = HostAccess(
            postgres_dsn=_required("E2E_POSTGRES_HOST_DSN"),
            kafka_bootstrap=_required("E2E_KAFKA_HOST_BOOTSTRAP"),
            traces_query_url=_required("E2E_JAEGER_QUERY_URL"),
            prometheus_url=_required("E2E_PROMETHEUS_URL"),
        )

    def operator_values(self) -> dict[str, Any]:
        """The images run.sh built and loaded, for the operator and (``workloads.images``) every service."""
        tag = os.environ.get("E2E_IMAGE_TAG", "e2e")
        services = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
        return {
            "image": {"repository": "checkout-platform/checkout-operator", "tag": tag},
            "workloads": {"images": {s: {"repository": f"checkout-platform/{s}", "tag": tag} for s in services}},
        }

    def serve(self, namespaces: Sequence[str], run_dir: Path) -> None:
        """The kubelets of the kind nodes run the Pods."""

    def stop_serving(self) -> None:
        for forward in self.forwards:
            forward.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                forward.wait(timeout=5)

    def service_url(self, namespace: str, service: str, port: int) -> str:
        key = (namespace, service, port)
        if key not in self.urls:
            forward = subprocess.Popen(
                [str(self.cluster.kubectl), f"--kubeconfig={self.cluster.kubeconfig}", "-n", namespace,
                 "port-forward", f"svc/{service}", f":{port}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            self.forwards.append(forward)
            assert forward.stdout is not None
            line = forward.stdout.readline()
            match = re.search(r"127\.0\.0\.1:(\d+)", line)
            assert match, f"kubectl port-forward svc/{service}: {line}"
            self.urls[key] = f"http://127.0.0.1:{match.group(1)}"
        return self.urls[key]

    def wait_workloads(self, namespace: str, timeout_s: float = 180) -> dict[str, int]:
        counts = {}
        for deployment in self.cluster.list("deployments", namespace):
            name = deployment["metadata"]["name"]
            self.cluster.run(
                "-n", namespace, "rollout", "status", f"deployment/{name}", f"--timeout={int(timeout_s)}s",
                timeout=timeout_s + 10,
            )  # fmt: skip
            counts[name] = int(deployment["spec"].get("replicas", 1))
        return counts

    def processes(self, namespace: str) -> dict[str, dict[str, Any]] | None:
        return None


def make_target() -> Target:
    """The target ``E2E_TARGET`` names (``local`` unless set)."""
    name = os.environ.get("E2E_TARGET", "local")
    if name == "local":
        return LocalTarget(Stack())
    if name == "kind":
        return KindTarget()
    raise RuntimeError(f"E2E_TARGET={name!r}: expected local or kind")


@contextlib.contextmanager
def serving(target: Target, namespaces: Sequence[str], run_dir: Path) -> Iterator[Target]:
    """``target.serve`` … ``target.stop_serving``."""
    target.serve(namespaces, run_dir)
    try:
        yield target
    finally:
        target.stop_serving()
