"""A real Kubernetes control plane without a kubelet, Pods made Running by kwok.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as processes; kwok makes
fake Nodes Ready and the Pods bound to them Running. The binaries are built from pinned Go
wrapper modules (stack/go/kubernetes, stack/go/etcd), kwok and helm with `go install`, each into
a cache entry keyed by version. kubectl is built at the control plane's version. The admin
kubeconfig (client certificate in system:masters) is written to ``<run_dir>/kubeconfig``.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from checkout_stack import golang, pki, versions
from checkout_stack.cache import CacheEntry, recipe_digest
from checkout_stack.components.base import Component, Status, port_open
from checkout_stack.console import info, step
from checkout_stack.processes import ManagedProcess, wait_until
from checkout_stack.settings import HOST, REPO_ROOT, StackSettings

GO_MODULES = REPO_ROOT / "stack" / "go"
SERVICE_CIDR = "10.0.0.0/24"
"""The API server's primary Service range (``--service-cluster-ip-range``; holds ``kubernetes`` at 10.0.0.1)."""
EXTRA_SERVICE_CIDR = ("checkout-local-services", "10.96.0.0/16")
"""A ServiceCIDR object (name, range) added at every start: 65,534 more ClusterIPs. The /24 alone ran out at
~43 platforms (six Services each), and a range flag cannot grow on an existing cluster; this object can."""
CLUSTER_NAME = "checkout-local"
"""The kube context name; the e2e suite refuses any other context."""
OWNER_MARKER = ("kube-system", "checkout-e2e-owner")
"""ConfigMap (namespace, name) marking a cluster as created by our tooling (this stack or e2e/kind/run.sh)."""
OWNER_CREATED_BY = "checkout-platform-e2e"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_STAGES = ("node/fast", "node/heartbeat", "pod/fast")
"""kwok's own stage sets (from its module at the pinned version): Nodes become Ready and keep a
heartbeat; Pods bound to them become Running, complete, and are removed when deleted."""
HELM_LDFLAGS = f"-s -w -X helm.sh/helm/v3/internal/version.version=v{versions.HELM}"
"""Without the version variable helm reports only "v3.22"."""


def _version_ldflags() -> str:
    major, minor, _ = versions.KUBERNETES.split(".")
    git_version = f"v{versions.KUBERNETES}"
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={git_version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


@dataclass(frozen=True)
class Binaries:
    """Cache entries of the control plane's programs."""

    kubernetes: CacheEntry
    etcd: CacheEntry
    kwok: CacheEntry
    helm: CacheEntry

    def all(self) -> tuple[CacheEntry, ...]:
        """Every entry."""
        return (self.kubernetes, self.etcd, self.kwok, self.helm)


class Kubernetes(Component):
    """The local control plane and its client tools."""

    name = "kubernetes"
    version = versions.KUBERNETES

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        cache = settings.cache_dir
        k8s_module, etcd_module = GO_MODULES / "kubernetes", GO_MODULES / "etcd"
        self.binaries = Binaries(
            kubernetes=CacheEntry(
                cache,
                "kubernetes",
                f"v{versions.KUBERNETES}",
                recipe_digest([*k8s_module.rglob("go.*"), *k8s_module.rglob("*.go")]),
            ),
            etcd=CacheEntry(cache, "etcd", f"v{versions.ETCD}", recipe_digest(etcd_module.rglob("go.*"))),
            kwok=CacheEntry(cache, "kwok", f"v{versions.KWOK}"),
            helm=CacheEntry(cache, "helm", f"v{versions.HELM}", recipe_digest([], HELM_LDFLAGS)),
        )
        self.home = settings.run_dir / "kubernetes"
        self.pki_dir = self.home / "pki"
        self.kubeconfig = settings.run_dir / "kubeconfig"
        self.ports = settings.kubernetes

    # -- installation ---------------------------------------------------------------------
    def installed(self) -> bool:
        """Whether every binary is cached."""
        return all(entry.complete for entry in self.binaries.all()) and self.kwok_stages.exists()

    def install(self) -> None:
        """Build whatever is missing (the first build takes many minutes on 2 cores)."""
        log = self.settings.logs_dir / "setup-kubernetes.log"
        b = self.binaries
        if not b.etcd.complete:
            with step(f"build etcd v{versions.ETCD}"):
                golang.build(b.etcd, module_dir=GO_MODULES / "etcd", packages=["./cmd/etcd"], log=log)
        if not b.kubernetes.complete:
            with step(f"build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v{versions.KUBERNETES}"):
                golang.build(
                    b.kubernetes,
                    module_dir=GO_MODULES / "kubernetes",
                    packages=[
                        "k8s.io/kubernetes/cmd/kube-apiserver",
                        "k8s.io/kubernetes/cmd/kube-controller-manager",
                        "k8s.io/kubernetes/cmd/kube-scheduler",
                        "./cmd/kubectl",
                    ],
                    ldflags=_version_ldflags(),
                    log=log,
                )
        if not b.kwok.complete or not self.kwok_stages.exists():
            with step(f"go install kwok v{versions.KWOK}"):
                golang.install(b.kwok, packages=["sigs.k8s.io/kwok/cmd/kwok"], version=versions.KWOK, log=log)
                self._write_kwok_stages()
        if not b.helm.complete:
            with step(f"go install helm v{versions.HELM}"):
                golang.install(
                    b.helm,
                    packages=["helm.sh/helm/v3/cmd/helm"],
                    version=versions.HELM,
                    ldflags=HELM_LDFLAGS,
                    log=log,
                )

    @property
    def kwok_stages(self) -> Path:
        """The Stage objects kwok runs with (multi-document YAML)."""
        return self.binaries.kwok.path / "stages.yaml"

    def _write_kwok_stages(self) -> None:
        source = golang.module_source("sigs.k8s.io/kwok", versions.KWOK) / "kustomize" / "stage"
        documents = [path.read_text() for stage in KWOK_STAGES for path in sorted((source / stage).glob("*.yaml"))]
        stages = [doc for doc in documents if "kind: Stage" in doc]
        self.kwok_stages.write_text("\n---\n".join(stages))

    def tool(self, name: str) -> Path:
        """Path of one of the binaries (kubectl, helm, kube-apiserver, etcd, kwok); it may not be built yet."""
        entries = {"etcd": self.binaries.etcd, "kwok": self.binaries.kwok, "helm": self.binaries.helm}
        return entries.get(name, self.binaries.kubernetes).bin / name

    def tools(self) -> dict[str, Path]:
        """Client tools users want on PATH."""
        return {name: self.tool(name) for name in ("kubectl", "helm", "kwok", "etcd")}

    # -- processes ------------------------------------------------------------------------
    @property
    def server(self) -> str:
        """The API server URL."""
        return f"https://{HOST}:{self.ports.apiserver_port}"

    def _component_argv(self, binary: str, identity: str, port: int) -> list[str]:
        """Flags shared by the controller manager and the scheduler: identity, loopback serving."""
        kubeconfig = self.home / f"{identity}.kubeconfig"
        return [
            str(self.tool(binary)),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={HOST}",
            f"--secure-port={port}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _processes(self) -> list[ManagedProcess]:
        pki_dir, run, p = self.pki_dir, self.settings.run_dir, self.ports
        ca = pki_dir / "ca.crt"
        etcd = ManagedProcess(
            name="etcd",
            argv=[
                str(self.tool("etcd")),
                "--name=checkout-local",
                f"--data-dir={self.home / 'etcd'}",
                f"--listen-client-urls=http://{HOST}:{p.etcd_port}",
                f"--advertise-client-urls=http://{HOST}:{p.etcd_port}",
                f"--listen-peer-urls=http://{HOST}:{p.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://{HOST}:{p.etcd_peer_port}",
                f"--initial-cluster=checkout-local=http://{HOST}:{p.etcd_peer_port}",
                f"--listen-metrics-urls=http://{HOST}:{p.etcd_port + 2}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
            run_dir=run,
        )
        apiserver = ManagedProcess(
            name="kube-apiserver",
            argv=[
                str(self.tool("kube-apiserver")),
                f"--etcd-servers=http://{HOST}:{p.etcd_port}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={p.apiserver_port}",
                f"--cert-dir={pki_dir}",
                f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
                f"--client-ca-file={ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=0",
            ],
            run_dir=run,
        )
        controller_manager = ManagedProcess(
            name="kube-controller-manager",
            argv=[
                *self._component_argv("kube-controller-manager", "controller-manager", p.controller_manager_port),
                f"--root-ca-file={ca}",
                f"--service-account-private-key-file={pki_dir / 'sa.key'}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={ca}",
                f"--cluster-signing-key-file={pki_dir / 'ca.key'}",
                f"--cluster-name={CLUSTER_NAME}",
            ],
            run_dir=run,
        )
        scheduler = ManagedProcess(
            name="kube-scheduler",
            argv=self._component_argv("kube-scheduler", "scheduler", p.scheduler_port),
            run_dir=run,
        )
        kwok = ManagedProcess(
            name="kwok",
            argv=[
                str(self.tool("kwok")),
                f"--kubeconfig={self.home / 'kwok.kubeconfig'}",
                f"--config={self.kwok_stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                "--cidr=10.244.0.1/16",
                "--node-ip=10.244.0.1",
                f"--server-address={HOST}:{p.kwok_port}",
            ],
            run_dir=run,
        )
        return [etcd, apiserver, controller_manager, scheduler, kwok]

    def _prepare_pki(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        ca = pki.CertificateAuthority(self.pki_dir, "checkout-local-ca")
        ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=(HOST, "10.0.0.1"),
        )
        pki.service_account_keys(self.pki_dir)
        identities = {
            "admin": ("checkout-local-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "kwok": ("kwok-controller", ("system:masters",)),
        }
        for name, (common_name, orgs) in identities.items():
            client = ca.issue(name, common_name=common_name, organizations=orgs)
            target = self.kubeconfig if name == "admin" else self.home / f"{name}.kubeconfig"
            pki.write_kubeconfig(
                target, server=self.server, ca=ca.files.cert, client=client, name=CLUSTER_NAME, user=common_name
            )

    def _client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return httpx.Client(base_url=self.server, verify=context, timeout=5.0)

    def _ready(self, path: str = "/readyz") -> bool:
        with self._client() as client:
            return client.get(path).status_code == 200

    def _https_healthz(self, port: int) -> bool:
        # Controller manager and scheduler serve /healthz with a self-signed cert; anonymous is allowed.
        with httpx.Client(verify=False, timeout=2.0) as client:  # noqa: S501 - loopback health probe
            return client.get(f"https://{HOST}:{port}/healthz").status_code == 200

    def _kwok_healthy(self) -> bool:
        with httpx.Client(timeout=2.0) as client:
            return client.get(f"http://{HOST}:{self.ports.kwok_port}/healthz").status_code == 200

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        """Run kubectl against the local cluster and return stdout (raises on failure)."""
        result = subprocess.run(
            [str(self.tool("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _fake_nodes(self) -> str:
        nodes = []
        for index in range(self.ports.fake_nodes):
            name = f"kwok-node-{index}"
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "node-role.kubernetes.io/agent": "",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    },
                }
            )
        return yaml.safe_dump_all(nodes)

    def _nodes_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "nodes",
            "-l",
            "type=kwok",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
        )
        states = out.split()
        return len(states) == self.ports.fake_nodes and all(s == "True" for s in states)

    def start(self) -> None:
        """Start etcd → API server → controller manager and scheduler → kwok, then fake Nodes."""
        self._prepare_pki()
        etcd, apiserver, controller_manager, scheduler, kwok = self._processes()
        timeout = self.settings.start_timeout_s
        etcd.start()
        wait_until(
            lambda: httpx.get(f"http://{HOST}:{self.ports.etcd_port}/health", timeout=2).json()["health"] == "true",
            what="etcd to be healthy",
            timeout_s=timeout,
            process=etcd,
        )
        apiserver.start()
        wait_until(self._ready, what="kube-apiserver /readyz", timeout_s=timeout, process=apiserver)
        controller_manager.start()
        scheduler.start()
        kwok.start()
        wait_until(
            lambda: self._https_healthz(self.ports.controller_manager_port),
            what="kube-controller-manager /healthz",
            timeout_s=timeout,
            process=controller_manager,
        )
        wait_until(
            lambda: self._https_healthz(self.ports.scheduler_port),
            what="kube-scheduler /healthz",
            timeout_s=timeout,
            process=scheduler,
        )
        wait_until(self._kwok_healthy, what="kwok /healthz", timeout_s=timeout, process=kwok)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=self._fake_nodes())
        wait_until(
            self._nodes_ready, what=f"{self.ports.fake_nodes} kwok Nodes to be Ready", timeout_s=timeout, process=kwok
        )
        self.ensure_owner_marker()
        self.ensure_service_range()
        info(f"KUBECONFIG={self.kubeconfig}")

    @property
    def owner_token_file(self) -> Path:
        """The token the cluster's owner marker (:data:`OWNER_MARKER`) carries; the e2e suite compares the two."""
        return self.home / "owner-token"

    def ensure_owner_marker(self) -> None:
        """Label the cluster as created by this stack, so the e2e suite can refuse any other cluster."""
        if not self.owner_token_file.exists():
            self.owner_token_file.write_text(secrets.token_hex(16) + "\n")
            self.owner_token_file.chmod(0o600)
        namespace, name = OWNER_MARKER
        marker = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"createdBy": OWNER_CREATED_BY, "token": self.owner_token_file.read_text().strip()},
        }
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=yaml.safe_dump(marker))

    def ensure_service_range(self) -> None:
        """Add :data:`EXTRA_SERVICE_CIDR` to the cluster's Service ranges (idempotent), and wait until it is Ready."""
        name, cidr = EXTRA_SERVICE_CIDR
        service_cidr = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": name},
            "spec": {"cidrs": [cidr]},
        }
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=yaml.safe_dump(service_cidr))
        jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
        wait_until(
            lambda: self.kubectl("get", "servicecidr", name, "-o", f"jsonpath={jsonpath}").strip() == "True",
            what=f"ServiceCIDR {name} ({cidr}) to be Ready",
            timeout_s=self.settings.start_timeout_s,
        )

    def stop(self) -> None:
        """Stop in reverse order of start."""
        for process in reversed(self._processes()):
            process.stop()

    def healthy(self) -> bool:
        """Every process answers its health endpoint and the Nodes are Ready."""
        try:
            return (
                self._ready()
                and self._https_healthz(self.ports.controller_manager_port)
                and self._https_healthz(self.ports.scheduler_port)
                and self._kwok_healthy()
            )
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False

    def status(self) -> Status:
        """The API server's row."""
        return self.statuses()[1]

    def statuses(self) -> list[Status]:
        """One row per process."""
        p = self.ports
        checks: dict[str, tuple[str, str, Callable[[], bool]]] = {
            "etcd": (f"v{versions.ETCD}", f"{HOST}:{p.etcd_port}", lambda: port_open(p.etcd_port)),
            "kube-apiserver": (f"v{versions.KUBERNETES}", self.server, self._ready),
            "kube-controller-manager": (
                f"v{versions.KUBERNETES}",
                f"{HOST}:{p.controller_manager_port}",
                lambda: self._https_healthz(p.controller_manager_port),
            ),
            "kube-scheduler": (
                f"v{versions.KUBERNETES}",
                f"{HOST}:{p.scheduler_port}",
                lambda: self._https_healthz(p.scheduler_port),
            ),
            "kwok": (f"v{versions.KWOK}", f"{HOST}:{p.kwok_port}", self._kwok_healthy),
        }
        rows = []
        for process in self._processes():
            version, address, check = checks[process.name]
            running = process.running()
            try:
                healthy = running and check()
            except (httpx.HTTPError, OSError, ssl.SSLError):
                healthy = False
            rows.append(Status(process.name, version, address, running, healthy))
        return rows

    def env(self) -> dict[str, str]:
        """KUBECONFIG of the cluster-admin identity."""
        return {"KUBECONFIG": str(self.kubeconfig)}
