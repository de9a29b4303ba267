"""The two steps a platform team takes, and waiting for what they promise.

``helm upgrade --install`` of ``charts/checkout-operator`` and ``kubectl apply`` of a
``CheckoutPlatform`` (built from ``examples/checkoutplatform.yaml``), run with the real helm and
kubectl against any kubeconfig — the local control plane or a kind cluster. Then wait for the
resource's ``Ready`` condition. On the local control plane :class:`NodeAgentProcess` runs the
Pods (see :mod:`checkout_stack.kubelet`) and tells where each Service answers.

Used by ``make demo`` and the e2e suite (``e2e/platform``).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checkout_stack.components.kubernetes import OWNER_CREATED_BY, OWNER_MARKER
from checkout_stack.processes import ManagedProcess, tail
from checkout_stack.settings import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "checkoutplatform.yaml"
OPERATOR_CHART = REPO_ROOT / "charts" / "checkout-operator"
KIND = "checkoutplatforms.checkout.platform.io"


class InstallError(RuntimeError):
    """A step failed; the message says which, and what the tool said."""


class ForeignClusterError(InstallError):
    """The kubeconfig points at a cluster our tooling did not create."""


@dataclass(frozen=True)
class Cluster:
    """kubectl and helm bound to one kubeconfig."""

    kubectl: Path
    helm: Path
    kubeconfig: Path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl <args>``; raise :class:`InstallError` with stderr unless ``check`` is off."""
        return self._run([str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args], stdin, check, timeout)

    def helm_run(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        """``helm <args>``; stdout."""
        return self._run([str(self.helm), f"--kubeconfig={self.kubeconfig}", *args], stdin, True, timeout).stdout

    @staticmethod
    def _run(argv: list[str], stdin: str | None, check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            shown = " ".join(a for a in argv[1:] if not a.startswith("--kubeconfig="))
            raise InstallError(
                f"{Path(argv[0]).name} {shown} failed:\n{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object as JSON, or None if it does not exist."""
        args = ["get", kind, name, "-o", "json", *(["-n", namespace] if namespace else [])]
        result = self.run(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise InstallError(f"kubectl get {kind} {name} failed: {result.stderr.strip()}")
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace."""
        args = ["get", kind, "-n", namespace, "-o", "json", *(["-l", selector] if selector else [])]
        return list(json.loads(self.run(*args).stdout)["items"])

    def verify_ours(self, token: str) -> None:
        """Refuse a cluster whose owner marker is missing or carries another token."""
        namespace, name = OWNER_MARKER
        server = self._server()
        marker = self.get("configmap", name, namespace)
        if marker is None:
            raise ForeignClusterError(
                f"refusing to run against {server}: it has no ConfigMap {namespace}/{name}, so it was not created "
                "by `make up` or e2e/kind/run.sh (the e2e suite installs and deletes things; point it only at a "
                "cluster it made)"
            )
        data = marker.get("data") or {}
        if data.get("createdBy") != OWNER_CREATED_BY or data.get("token") != token.strip():
            raise ForeignClusterError(
                f"refusing to run against {server}: its {namespace}/{name} marker does not carry this checkout's "
                "token (another checkout's or someone's cluster)"
            )

    def _server(self) -> str:
        try:
            kubeconfig = yaml.safe_load(self.kubeconfig.read_text())
            return str(kubeconfig["clusters"][0]["cluster"]["server"])
        except (OSError, KeyError, IndexError, TypeError):
            return str(self.kubeconfig)

    def apply(self, obj: Mapping[str, Any], namespace: str | None = None) -> str:
        """``kubectl apply -f -`` of one object, as a user would."""
        args = ["apply", "-f", "-", *(["-n", namespace] if namespace else [])]
        return self.run(*args, stdin=yaml.safe_dump(dict(obj))).stdout.strip()

    def ensure_namespace(self, name: str) -> None:
        """Create the namespace unless it exists."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def admin_secret(self, namespace: str, name: str, username: str, password: str) -> None:
        """The PostgreSQL admin Secret a CheckoutPlatform's ``spec.postgres.adminSecretRef`` names."""
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque",
                "stringData": {"username": username, "password": password},
            }
        )

    def install_operator(
        self, release: str, namespace: str, values: Mapping[str, Any], *, chart: Path = OPERATOR_CHART
    ) -> str:
        """``helm upgrade --install`` the operator chart (waits until its Deployment is available)."""
        return self.helm_run(
            "upgrade",
            "--install",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            "3m",
            "--values",
            "-",
            stdin=yaml.safe_dump(dict(values)),
        )

    def platform(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The CheckoutPlatform, or None."""
        return self.get(KIND, name, namespace)

    def wait_ready(
        self,
        namespace: str,
        name: str,
        *,
        timeout_s: float = 180,
        on_change: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for ``Ready=True`` at the current generation; report each new Ready message on the way."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            obj = self.platform(namespace, name)
            ready = condition(obj, "Ready")
            said = f"{ready['reason']}: {ready['message']}" if ready else "no Ready condition yet"
            if on_change is not None and said != last:
                on_change(said)
            last = said
            if obj is not None and is_ready(obj):
                return obj
            if time.monotonic() > deadline:
                raise InstallError(f"{namespace}/{name} not Ready after {timeout_s:.0f} s; last: {said}")
            time.sleep(0.5)


def condition(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The named status condition of an object."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_ready(obj: Mapping[str, Any]) -> bool:
    """``Ready=True`` observed at the object's current generation."""
    ready = condition(obj, "Ready")
    status = obj.get("status") or {}
    return bool(
        ready and ready["status"] == "True" and status.get("observedGeneration") == obj["metadata"]["generation"]
    )


def platform_manifest(
    name: str,
    *,
    bootstrap_servers: Sequence[str],
    topic_prefix: str,
    postgres_host: str,
    postgres_port: int,
    database: str,
    admin_secret: str,
    otlp_endpoint: str | None,
    sampling_ratio: float = 1.0,
    services: Mapping[str, Mapping[str, Any]] | None = None,
    deletion_policy: str = "Retain",
) -> dict[str, Any]:
    """``examples/checkoutplatform.yaml`` pointed at these backends; ``services`` replaces its service blocks."""
    obj = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    obj["metadata"] = {"name": name}
    spec = obj["spec"]
    spec["kafka"]["bootstrapServers"] = list(bootstrap_servers)
    spec["kafka"]["topicPrefix"] = topic_prefix
    spec["postgres"].update(host=postgres_host, port=postgres_port, database=database)
    spec["postgres"]["adminSecretRef"]["name"] = admin_secret
    spec["tracing"] = {"samplingRatio": sampling_ratio, **({"otlpEndpoint": otlp_endpoint} if otlp_endpoint else {})}
    if services is not None:
        spec["services"] = {key: dict(value) for key, value in services.items()}
    spec["deletionPolicy"] = deletion_policy
    return dict(obj)


@dataclass
class NodeAgentProcess:
    """``python -m checkout_stack.kubelet`` as a managed background process, and what it reports."""

    name: str
    namespaces: Sequence[str]
    run_dir: Path
    """The stack's run directory (pid file and log go there, as for every stack process)."""
    state_dir: Path
    prefer_service_ports: bool = False
    _process: ManagedProcess | None = field(default=None, init=False, repr=False)

    @property
    def process(self) -> ManagedProcess:
        """The managed process (pid file ``<run_dir>/pids/<name>.pid``, log ``<run_dir>/logs/<name>.log``)."""
        if self._process is None:
            argv = [sys.executable, "-m", "checkout_stack.kubelet", "--state-dir", str(self.state_dir)]
            for namespace in self.namespaces:
                argv += ["--namespace", namespace]
            if self.prefer_service_ports:
                argv.append("--prefer-service-ports")
            self._process = ManagedProcess(self.name, argv, self.run_dir, cwd=REPO_ROOT, stop_timeout_s=60)
        return self._process

    def start(self) -> int:
        """Start it (a no-op if it runs) and wait for its first state file."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pid = self.process.start()
        deadline = time.monotonic() + 30
        while self.state().get("pid") != pid:
            if not self.process.running():
                raise InstallError(f"the node agent exited; last lines of {self.process.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise InstallError(f"the node agent wrote no state in 30 s; see {self.process.log_path}")
            time.sleep(0.2)
        return pid

    def stop(self) -> bool:
        """SIGTERM: it stops every Pod it runs (their grace periods), then exits."""
        return self.process.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of its log."""
        return tail(self.process.log_path, lines)

    def state(self) -> dict[str, Any]:
        """``state.json`` (empty before the first write)."""
        try:
            return json.loads((self.state_dir / "state.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def service_address(self, namespace: str, service: str, port: int) -> str | None:
        """``127.0.0.1:<port>`` where a Service port answers, or None if the agent has no proxy for it."""
        entry = self.state().get("services", {}).get(f"{namespace}/{service}:{port}")
        return None if entry is None else str(entry["address"])

    def pods(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The Pods of a namespace the agent runs, by name."""
        prefix = f"{namespace}/"
        return {k.removeprefix(prefix): v for k, v in self.state().get("pods", {}).items() if k.startswith(prefix)}

    def wait_workloads(
        self,
        cluster: Cluster,
        namespace: str,
        *,
        timeout_s: float = 180,
        on_change: Callable[[str], None] | None = None,
    ) -> dict[str, int]:
        """Wait until every Deployment of the namespace has exactly ``spec.replicas`` ready processes.

        Returns Deployment name → ready processes. "Exactly" matters after a scale-down or a rollout:
        processes of removed Pods must be gone too.
        """
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            pods = self.pods(namespace)
            counts: dict[str, int] = {}
            wanted: dict[str, int] = {}
            for deployment in cluster.list("deployments", namespace):
                name = deployment["metadata"]["name"]
                selector = deployment["spec"]["selector"].get("matchLabels", {})
                wanted[name] = int(deployment["spec"].get("replicas", 1))
                matching = [p for p in pods.values() if all(p["labels"].get(k) == v for k, v in selector.items())]
                counts[name] = sum(1 for p in matching if p["ready"]) if len(matching) == wanted[name] else -1
            said = ", ".join(f"{n} {max(counts[n], 0)}/{wanted[n]}" for n in sorted(wanted))
            if on_change is not None and said != last:
                on_change(said)
            last = said
            if wanted and counts == wanted:
                return counts
            if not self.process.running():
                raise InstallError(f"the node agent exited; last lines of {self.process.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise InstallError(f"processes of {namespace} not ready after {timeout_s:.0f} s: {said}")
            time.sleep(0.5)
