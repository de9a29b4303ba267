"""One Pod as local processes: init containers in order, then every container kept running and probed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from checkout_stack.kubelet.containers import (
    ContainerConfigError,
    Network,
    Sources,
    command_line,
    container_ports,
    localize,
    probe_port,
    resolve_env,
)
from checkout_stack.kubelet.images import ImageError, LocalImage
from checkout_stack.kubelet.proxy import bind_port

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
"""Restart back-off (the kubelet's is 10 s doubling to 5 min; locally a crash is found sooner)."""
BACKOFF_RESET_S = 60.0
"""A container that ran this long restarts without back-off."""
STOP_GRACE_MAX_S = 30.0
"""Longest a stopping container is given after SIGTERM, whatever the Pod's grace period says."""

Emit = Callable[[str, str, str], Awaitable[None]]
"""(type, reason, message) → an Event on the Pod."""


@dataclass
class Node:
    """What every Pod on this node shares: where references resolve, images, Services, Events."""

    sources: Sources
    image: Callable[[str], LocalImage]
    services: Callable[[str], Mapping[str, str]]
    """namespace → the Service aliases (see :class:`~.containers.Network`) visible from it."""
    token: Callable[[Mapping[str, Any], Path], Awaitable[Path | None]]
    """(pod, pod dir) → a kubeconfig carrying the Pod's ServiceAccount token, or None if none is mounted."""
    pods_dir: Path
    base_env: Mapping[str, str]
    """Given to every process under the Pod's own env (PATH, the stack's owner marker)."""


@dataclass
class ContainerState:
    """What the node knows about one container (shown in the agent's state file)."""

    name: str
    init: bool = False
    pid: int | None = None
    restarts: int = 0
    ready: bool = False
    state: str = "waiting"
    reason: str = ""
    ports: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "init": self.init,
            "pid": self.pid,
            "restarts": self.restarts,
            "ready": self.ready,
            "state": self.state,
            "reason": self.reason,
            "ports": {str(k): v for k, v in self.ports.items()},
        }


class PodRunner:
    """Runs one Pod until told to stop."""

    def __init__(self, pod: Mapping[str, Any], node: Node, emit: Emit) -> None:
        self.pod = pod
        self.node = node
        self.emit = emit
        meta = pod["metadata"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.uid = str(meta["uid"])
        self.dir = node.pods_dir / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"
        spec = pod["spec"]
        self.init_specs: list[Mapping[str, Any]] = list(spec.get("initContainers") or [])
        self.specs: list[Mapping[str, Any]] = list(spec.get("containers") or [])
        self.states = {c["name"]: ContainerState(c["name"], init=True) for c in self.init_specs}
        self.states.update({c["name"]: ContainerState(c["name"]) for c in self.specs})
        self.ports = self._allocate_ports()
        self.grace_s = min(float(spec.get("terminationGracePeriodSeconds", 30)), STOP_GRACE_MAX_S)
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _allocate_ports(self) -> dict[int, int]:
        ports = {}
        for container_port in container_ports(self.specs):
            sock = bind_port(None)
            ports[container_port] = int(sock.getsockname()[1])
            sock.close()
        return ports

    @property
    def labels(self) -> Mapping[str, str]:
        return dict(self.pod["metadata"].get("labels") or {})

    @property
    def ready(self) -> bool:
        """Every container ready (init containers done)."""
        return all(s.ready for s in self.states.values() if not s.init) and not self._stopping

    def local_port(self, container_port: int) -> int | None:
        """Where a containerPort of this Pod listens on this host."""
        return self.ports.get(container_port)

    def named_port(self, name: str) -> int | None:
        """The containerPort called ``name``, if any."""
        for container in self.specs:
            for port in container.get("ports") or []:
                if port.get("name") == name:
                    return int(port["containerPort"])
        return None

    def start(self) -> None:
        """Begin running the Pod in the background."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name=f"pod {self.key}")

    async def stop(self) -> None:
        """SIGTERM every container, SIGKILL what is left after the grace period."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await asyncio.gather(*(self._terminate(name, proc) for name, proc in list(self._processes.items())))

    async def _terminate(self, name: str, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        await self.emit("Normal", "Killing", f"Stopping container {name}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        # Children that left the group are not ours to chase; the group is gone with its leader's session.
        state = self.states[name]
        state.pid, state.ready, state.state = None, False, "terminated"

    async def _run(self) -> None:
        try:
            for spec in self.init_specs:
                await self._run_init(spec)
            await asyncio.gather(*(self._keep_running(spec) for spec in self.specs))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the Pod stays as it is; the agent reports it
            log.exception("pod %s failed", self.key)
            await self.emit("Warning", "Failed", f"node agent error: {exc}")

    async def _prepare(self, spec: Mapping[str, Any]) -> tuple[list[str], dict[str, str], Path]:
        """Resolve one container into (argv, env, cwd); raise ContainerConfigError on bad references."""
        image = self.node.image(str(spec.get("image", "")))
        declared = await resolve_env(self.pod, spec, self.node.sources)
        network = Network(self.ports, self.node.services(self.pod["metadata"]["namespace"]))
        mounts = self._mounts(spec)
        env = {key: _local(value, image, mounts) for key, value in localize(declared, network).items()}
        argv = command_line(spec, {**image.env, **env})
        argv = [image.executable(argv[0]), *(_local(word, image, mounts) for word in argv[1:])]
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        process_env = {**self.node.base_env, "HOME": str(home), **image.env, **env}
        if "/tmp" not in mounts:  # noqa: S108 - the container path, mapped to the Pod's directory
            process_env.setdefault("TMPDIR", str(self._volume_dir("tmp")))
        else:
            process_env["TMPDIR"] = str(mounts["/tmp"])  # noqa: S108
        kubeconfig = await self.node.token(self.pod, self.dir)
        if kubeconfig is not None:
            process_env["KUBECONFIG"] = str(kubeconfig)
        cwd = self.dir / "cwd"
        cwd.mkdir(exist_ok=True)
        return argv, process_env, cwd

    def _mounts(self, spec: Mapping[str, Any]) -> dict[str, Path]:
        """Volume mounts of emptyDir volumes → directories of the Pod; other volume kinds are not mounted here."""
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        mounts = {}
        for mount in spec.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "emptyDir" in volume:
                mounts[str(mount["mountPath"])] = self._volume_dir(mount["name"])
        return mounts

    def _volume_dir(self, name: str) -> Path:
        path = self.dir / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _spawn(self, spec: Mapping[str, Any]) -> asyncio.subprocess.Process | None:
        name = spec["name"]
        state = self.states[name]
        try:
            argv, env, cwd = await self._prepare(spec)
        except (ContainerConfigError, ImageError) as exc:
            state.state, state.reason = "waiting", "CreateContainerConfigError"
            await self.emit("Warning", "Failed", f"Error: {exc}")
            return None
        log_path = self.dir / f"{name}.log"
        with log_path.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self._processes[name] = proc
        state.pid, state.state, state.reason = proc.pid, "running", ""
        state.ports = {p: self.ports[p] for p in container_ports([spec])}
        await self.emit("Normal", "Started", f"Started container {name} (pid {proc.pid}, log {log_path})")
        return proc

    async def _run_init(self, spec: Mapping[str, Any]) -> None:
        backoff = BACKOFF_START_S
        state = self.states[spec["name"]]
        while True:
            proc = await self._spawn(spec)
            if proc is not None:
                code = await proc.wait()
                state.pid = None
                if code == 0:
                    state.state, state.reason, state.ready = "terminated", "Completed", True
                    return
                state.restarts += 1
                state.state, state.reason = "waiting", f"exit code {code}"
                await self.emit("Warning", "BackOff", f"init container {spec['name']} exited with {code}; retrying")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _keep_running(self, spec: Mapping[str, Any]) -> None:
        backoff = BACKOFF_START_S
        state = self.states[spec["name"]]
        while True:
            proc = await self._spawn(spec)
            if proc is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            began = time.monotonic()
            probes = asyncio.create_task(self._probe(spec, proc))
            try:
                code = await proc.wait()
            finally:
                probes.cancel()
            state.pid, state.ready = None, False
            state.restarts += 1
            state.state, state.reason = "waiting", f"exit code {code}"
            if time.monotonic() - began > BACKOFF_RESET_S:
                backoff = BACKOFF_START_S
            await self.emit("Warning", "BackOff", f"container {spec['name']} exited with {code}; restarting")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _probe(self, spec: Mapping[str, Any], proc: asyncio.subprocess.Process) -> None:
        """Startup, liveness and readiness probes (httpGet), each on its own period and threshold."""
        state = self.states[spec["name"]]
        network = Network(self.ports, {})
        kinds = {k: spec[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if spec.get(k)}
        for probe in kinds.values():
            if "httpGet" not in probe:
                raise ContainerConfigError(f"container {spec['name']!r}: only httpGet probes are supported here")
        started = "startupProbe" not in kinds
        failures = dict.fromkeys(kinds, 0)
        born = time.monotonic()
        due = {k: born + float(p.get("initialDelaySeconds", 0)) for k, p in kinds.items()}
        if "readinessProbe" not in kinds:
            state.ready = True
        async with httpx.AsyncClient() as client:
            while proc.returncode is None:
                now = time.monotonic()
                for kind, probe in kinds.items():
                    if (
                        now < due[kind]
                        or (kind != "startupProbe" and not started)
                        or (kind == "startupProbe" and started)
                    ):
                        continue
                    due[kind] = now + float(probe.get("periodSeconds", 10))
                    ok = await _http_probe(client, probe, spec, network)
                    if ok:
                        failures[kind] = 0
                        if kind == "startupProbe":
                            started = True
                        elif kind == "readinessProbe" and not state.ready:
                            state.ready = True
                        continue
                    failures[kind] += 1
                    if failures[kind] < int(probe.get("failureThreshold", 3)):
                        continue
                    if kind == "readinessProbe":
                        if state.ready:
                            await self.emit("Warning", "Unhealthy", f"Readiness probe failed ({spec['name']})")
                        state.ready = False
                    else:
                        label = "Startup" if kind == "startupProbe" else "Liveness"
                        await self.emit("Warning", "Unhealthy", f"{label} probe failed; restarting {spec['name']}")
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        return
                await asyncio.sleep(0.25)


async def _http_probe(
    client: httpx.AsyncClient, probe: Mapping[str, Any], spec: Mapping[str, Any], network: Network
) -> bool:
    path, port = probe_port(probe, spec, network)
    try:
        response = await client.get(f"http://127.0.0.1:{port}{path}", timeout=float(probe.get("timeoutSeconds", 1)))
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 400


def _local(value: str, image: LocalImage, mounts: Mapping[str, Path]) -> str:
    """A container path → this host's: a volume mount first (it shadows the image), else the image's files.

    One mapping per value, from the container's view: a value already mapped to a local path is never
    mapped again (a checkout under /tmp is not the Pod's /tmp emptyDir).
    """
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")) :]
    return image.local_path(value)
