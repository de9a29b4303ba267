"""The node agent's loop: Pods on the kwok nodes ↔ running processes, Services ↔ local proxies.

Every second it lists the Pods and Services of the namespaces it serves, starts the Pods that are
new, stops those deleted or terminating, points each Service's proxy at the ready Pods its selector
matches, registers each Pod's ``http``/``metrics`` port with the stack's Prometheus (labels
``namespace``, ``pod``; ``job`` = the Pod's ``app.kubernetes.io/component``, or its name label), and
writes what it knows to ``<state dir>/state.json`` — the file tests, ``make demo`` and ``make env``
read to find the gateway. Events it posts on Pods (``Started``, ``Killing``, ``BackOff``,
``Unhealthy``, ``Failed``) show in ``kubectl describe pod``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client, config

from checkout_stack.kubelet.containers import Sources, service_aliases
from checkout_stack.kubelet.images import ImageError, LocalImage, load_image
from checkout_stack.kubelet.pods import Emit, Node, PodRunner
from checkout_stack.kubelet.proxy import ServiceProxy

log = logging.getLogger(__name__)

KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
COMPONENT = "checkout-local-kubelet"
TOKEN_LIFETIME_S = 24 * 3600
SYNC_INTERVAL_S = 1.0
SCRAPED_PORT_NAMES = ("http", "metrics")


class Targets(Protocol):
    """The stack's Prometheus file discovery (``Prometheus.add_targets`` / ``remove_targets``)."""

    def add_targets(
        self, job_name: str, targets: list[str], labels: dict[str, str], *, name: str | None = None
    ) -> Path:
        """Scrape ``targets`` as ``job_name``."""
        ...

    def remove_targets(self, name: str) -> None:
        """Stop scraping what was added as ``name``."""
        ...


@dataclass
class AgentConfig:
    """Where the agent works and what it serves."""

    kubeconfig: Path
    namespaces: list[str]
    state_dir: Path
    repo_root: Path
    venv: Path
    tools: Mapping[str, Path]
    base_env: Mapping[str, str]
    prefer_service_ports: bool = False
    """Give a Service's proxy the Service's own port number when it is free (``make demo``: the
    gateway at 127.0.0.1:8100, as with ``make services``); tests leave it off and get free ports."""


@dataclass
class _ServiceEntry:
    proxy: ServiceProxy
    namespace: str
    name: str
    port: int
    target: int | str
    selector: dict[str, str] = field(default_factory=dict)


class NodeAgent:
    """Runs the Pods bound to kwok nodes in ``config.namespaces`` as processes."""

    def __init__(self, settings: AgentConfig, targets: Targets | None = None) -> None:
        self.settings = settings
        self.targets = targets
        self.api_client = config.new_client_from_config(config_file=str(settings.kubeconfig))  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(self.api_client)
        self.runners: dict[str, PodRunner] = {}
        self.services: dict[str, _ServiceEntry] = {}
        self.skipped: dict[str, str] = {}
        self._images: dict[str, LocalImage] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._registered: set[str] = set()
        self._state_text = ""
        self.node = Node(
            sources=Sources(config_map=self._config_map, secret=self._secret),
            image=self._image,
            services=self._aliases,
            token=self._token,
            pods_dir=settings.state_dir / "pods",
            base_env=settings.base_env,
        )

    # --- the API --------------------------------------------------------------------------------

    async def _get(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            try:
                response = call(*args, _preload_content=False, **kwargs)
            except client.ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return json.loads(response.data)  # type: ignore[no-any-return]

        return await asyncio.to_thread(run)

    async def _config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = await self._get(self.core.read_namespaced_config_map, name, namespace)
        return None if obj is None else dict(obj.get("data") or {})

    async def _secret(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = await self._get(self.core.read_namespaced_secret, name, namespace)
        if obj is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        data.update(obj.get("stringData") or {})
        return data

    def _image(self, image: str) -> LocalImage:
        if image not in self._images:
            self._images[image] = load_image(
                image,
                repo_root=self.settings.repo_root,
                venv=self.settings.venv,
                tools=self.settings.tools,
                host_path=self.settings.base_env.get("PATH", "/usr/bin:/bin"),
            )
        return self._images[image]

    async def _token(self, pod: Mapping[str, Any], pod_dir: Path) -> Path | None:
        """A kubeconfig with a token bound to the Pod, for its ServiceAccount (if the Pod mounts one)."""
        spec = pod["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return None
        meta = pod["metadata"]
        account = spec.get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_LIFETIME_S,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        create: Callable[..., Any] = self.core.create_namespaced_service_account_token
        result = await asyncio.to_thread(create, account, meta["namespace"], body, _preload_content=False)
        token = json.loads(result.data)["status"]["token"]
        admin = yaml.safe_load(self.settings.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": account, "namespace": meta["namespace"]},
                }
            ],
            "current-context": "in-cluster",
        }
        path = pod_dir / "serviceaccount.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        path.chmod(0o600)
        return path

    async def emit(self, pod: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """An Event on the Pod, as the kubelet would post it."""
        meta = pod["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT, "host": pod["spec"].get("nodeName", "")},
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        log.info("%s/%s %s %s: %s", meta["namespace"], meta["name"], type_, reason, message)
        try:
            create: Callable[..., Any] = self.core.create_namespaced_event
            await asyncio.to_thread(create, meta["namespace"], body)
        except Exception as exc:  # an Event is best effort: the namespace may be going away
            log.debug("event not posted: %s", exc)

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sync every second until ``stop`` is set, then stop every Pod and proxy."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        while not stop.is_set():
            try:
                await self.sync()
            except Exception as exc:  # the API server may be restarting; the next round retries
                log.warning("sync failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SYNC_INTERVAL_S)
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every Pod and proxy; forget the scrape targets."""
        await asyncio.gather(*(runner.stop() for runner in self.runners.values()), *self._stopping)
        for key in list(self.runners):
            self._forget_targets(key)
        self.runners.clear()
        for entry in self.services.values():
            await entry.proxy.close()
        self.services.clear()
        self._write_state()

    async def sync(self) -> None:
        """One round: Pods, then Services, then scrape targets and the state file."""
        nodes = await self._get(self.core.list_node)
        kwok_nodes = {
            n["metadata"]["name"]
            for n in (nodes or {}).get("items", [])
            if (n["metadata"].get("annotations") or {}).get(KWOK_ANNOTATION[0]) == KWOK_ANNOTATION[1]
        }
        pods: dict[str, dict[str, Any]] = {}
        services: list[dict[str, Any]] = []
        for namespace in self.settings.namespaces:
            listed = await self._get(self.core.list_namespaced_pod, namespace)
            for pod in (listed or {}).get("items", []):
                if self._wanted(pod, kwok_nodes):
                    pods[str(pod["metadata"]["uid"])] = pod
            listed = await self._get(self.core.list_namespaced_service, namespace)
            services.extend((listed or {}).get("items", []))
        for uid in [uid for uid in self.runners if uid not in pods]:
            self._forget_targets(uid)  # while the runner still says which Pod it was
            runner = self.runners.pop(uid)
            task = asyncio.create_task(runner.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        await self._sync_services(services)
        for uid, pod in pods.items():
            if uid not in self.runners:
                runner = PodRunner(pod, self.node, self._emitter(pod))
                self.runners[uid] = runner
                runner.start()
        self._route()
        self._register_targets()
        self._write_state()

    def _emitter(self, pod: Mapping[str, Any]) -> Emit:
        async def emit(type_: str, reason: str, message: str) -> None:
            await self.emit(pod, type_, reason, message)

        return emit

    def _wanted(self, pod: Mapping[str, Any], kwok_nodes: set[str]) -> bool:
        meta, spec = pod["metadata"], pod["spec"]
        key = f"{meta['namespace']}/{meta['name']}"
        if spec.get("nodeName") not in kwok_nodes or meta.get("deletionTimestamp"):
            return False
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return False
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            try:
                self._image(str(container.get("image", "")))
            except ImageError as exc:
                if self.skipped.get(key) != str(exc):
                    log.info("not running %s: %s", key, exc)
                self.skipped[key] = str(exc)
                return False
        return True

    async def _sync_services(self, services: list[dict[str, Any]]) -> None:
        wanted: dict[str, dict[str, Any]] = {}
        for service in services:
            meta, spec = service["metadata"], service["spec"]
            if not spec.get("selector") or spec.get("type") == "ExternalName":
                continue
            for port in spec.get("ports") or []:
                key = f"{meta['namespace']}/{meta['name']}:{port['port']}"
                wanted[key] = {
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "port": int(port["port"]),
                    "target": port.get("targetPort", port["port"]),
                    "selector": dict(spec["selector"]),
                }
        for key in [k for k in self.services if k not in wanted]:
            await self.services.pop(key).proxy.close()
        for key, want in wanted.items():
            entry = self.services.get(key)
            if entry is None:
                preferred = want["port"] if self.settings.prefer_service_ports else None
                proxy = ServiceProxy(key, preferred)
                await proxy.start()
                entry = self.services[key] = _ServiceEntry(proxy, want["namespace"], want["name"], want["port"], 0)
            entry.target, entry.selector = want["target"], want["selector"]

    def _route(self) -> None:
        for entry in self.services.values():
            backends = []
            for runner in self.runners.values():
                meta = runner.pod["metadata"]
                if meta["namespace"] != entry.namespace or not runner.ready:
                    continue
                if any(runner.labels.get(k) != v for k, v in entry.selector.items()):
                    continue
                target = entry.target
                container_port = runner.named_port(target) if isinstance(target, str) else int(target)
                local = runner.local_port(container_port) if container_port is not None else None
                if local is not None:
                    backends.append(local)
            entry.proxy.set_backends(backends)

    def _aliases(self, namespace: str) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for entry in self.services.values():
            aliases.update(
                service_aliases(
                    entry.name,
                    entry.namespace,
                    entry.port,
                    entry.proxy.address,
                    same_namespace=entry.namespace == namespace,
                )
            )
        return aliases

    # --- what others read -----------------------------------------------------------------------

    def _register_targets(self) -> None:
        if self.targets is None:
            return
        for uid, runner in self.runners.items():
            if uid in self._registered:
                continue
            meta = runner.pod["metadata"]
            labels = runner.labels
            job = labels.get("app.kubernetes.io/component") or labels.get("app.kubernetes.io/name") or meta["name"]
            addresses = []
            for name in SCRAPED_PORT_NAMES:
                container_port = runner.named_port(name)
                if container_port is not None:
                    addresses.append(f"127.0.0.1:{runner.local_port(container_port)}")
            if addresses:
                self.targets.add_targets(
                    job,
                    addresses,
                    {"namespace": meta["namespace"], "pod": meta["name"]},
                    name=f"kubelet.{meta['namespace']}.{meta['name']}",
                )
                self._registered.add(uid)

    def _forget_targets(self, uid: str) -> None:
        runner = self.runners.get(uid)
        if self.targets is not None and uid in self._registered and runner is not None:
            meta = runner.pod["metadata"]
            self.targets.remove_targets(f"kubelet.{meta['namespace']}.{meta['name']}")
        self._registered.discard(uid)

    def state(self) -> dict[str, Any]:
        """Pods, their containers and ports; Services and their local addresses."""
        return {
            "pid": os.getpid(),
            "namespaces": self.settings.namespaces,
            "pods": {
                runner.key: {
                    "uid": uid,
                    "ready": runner.ready,
                    "labels": dict(runner.labels),
                    "dir": str(runner.dir),
                    "containers": {name: state.as_dict() for name, state in runner.states.items()},
                }
                for uid, runner in self.runners.items()
            },
            "services": {
                key: {"address": entry.proxy.address, "backends": entry.proxy.backends}
                for key, entry in self.services.items()
            },
            "skipped": self.skipped,
        }

    def _write_state(self) -> None:
        text = json.dumps(self.state(), indent=2, sort_keys=True)
        if text == self._state_text:
            return
        self._state_text = text
        path = self.settings.state_dir / "state.json"
        fd, tmp = tempfile.mkstemp(dir=self.settings.state_dir, prefix=".state.", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
        Path(tmp).replace(path)
