"""The whole local stack: its components in start order, and what to do with all of them."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from checkout_stack.components.base import Component, Status
from checkout_stack.components.buf import Buf
from checkout_stack.components.jaeger import Jaeger
from checkout_stack.components.kafka import Kafka
from checkout_stack.components.kubernetes import Kubernetes
from checkout_stack.components.platform_services import PlatformServices
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.prometheus import Prometheus
from checkout_stack.components.toxiproxy import Toxiproxy
from checkout_stack.console import console, info, step
from checkout_stack.processes import ManagedProcess, owned_processes
from checkout_stack.settings import StackSettings

NODE_AGENT_MODULE = "checkout_stack.kubelet"
"""What a node agent runs (``python -m``): how `down` recognises one, whatever its name."""
NODE_AGENT_STOP_TIMEOUT_S = 60.0
"""How long a node agent may take to stop its Pods' processes after SIGTERM (as ``NodeAgentProcess``)."""


class Stack:
    """Every component, built from one settings object.

    :attr:`components` is the infrastructure a plain `up`, `status` and `test` work on;
    :attr:`services` (the platform's own services, `make services`) runs on top of it and is
    started only when named. A plain `down` stops the node agents first (`make demo`'s platform, an
    e2e run's), then the services, then the infrastructure.
    """

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.postgres = Postgres(self.settings)
        self.kafka = Kafka(self.settings)
        self.kubernetes = Kubernetes(self.settings)
        self.jaeger = Jaeger(self.settings)
        self.prometheus = Prometheus(self.settings)
        self.toxiproxy = Toxiproxy(self.settings)
        self.buf = Buf(self.settings)
        self.services = PlatformServices(self.settings, needs=(self.postgres, self.kafka))

    @property
    def components(self) -> tuple[Component, ...]:
        """In start order."""
        return (self.postgres, self.kafka, self.kubernetes, self.jaeger, self.prometheus, self.toxiproxy, self.buf)

    @property
    def all_components(self) -> tuple[Component, ...]:
        """The infrastructure, then the services that run on it."""
        return (*self.components, self.services)

    def select(self, names: Sequence[str]) -> list[Component]:
        """The named components (the infrastructure when ``names`` is empty), in start order."""
        known = {c.name: c for c in self.all_components}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if not names:
            return list(self.components)
        return [c for c in self.all_components if c.name in names]

    @property
    def bin_dir(self) -> Path:
        """Symlinks to every tool of the stack (kubectl, helm, …) — what `make env` adds to PATH."""
        return self.settings.run_dir / "bin"

    def setup(self, names: Sequence[str] = ()) -> None:
        """Install every selected component that is not cached yet."""
        started = time.monotonic()
        for component in self.select(names):
            if component.installed():
                info(f"{component.name} {component.version}: cached")
                continue
            with step(f"install {component.name} {component.version}"):
                component.install()
        self.link_tools()
        console.print(f"setup done in {time.monotonic() - started:.1f}s")

    def link_tools(self) -> None:
        """Refresh the symlinks in :attr:`bin_dir`."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for component in self.components:
            if not component.installed():
                continue
            for name, target in component.tools().items():
                link = self.bin_dir / name
                link.unlink(missing_ok=True)
                link.symlink_to(target)

    def up(self, names: Sequence[str] = ()) -> list[Component]:
        """Install what is missing, then start the selected components in parallel.

        Returns the components that were not running before (so a caller can stop just those).
        """
        selected = self.select(names)
        if not all(c.installed() for c in selected):
            self.setup(names)
        self.link_tools()
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        newly = [c for c in selected if not c.healthy()]
        for component in selected:
            if component not in newly:
                info(f"{component.name}: already running and healthy")
        started = time.monotonic()

        def start(component: Component) -> None:
            with step(f"start {component.name}"):
                component.start()

        failures = []
        infrastructure = [c for c in newly if c is not self.services]
        with ThreadPoolExecutor(max_workers=len(infrastructure) or 1) as pool:
            for component, future in [(c, pool.submit(start, c)) for c in infrastructure]:
                try:
                    future.result()
                except Exception as error:
                    failures.append(f"{component.name}: {error}")
        # The services need PostgreSQL and Kafka: they start once the infrastructure is up.
        if self.services in newly and not failures:
            try:
                start(self.services)
            except Exception as error:
                failures.append(f"{self.services.name}: {error}")
        if failures:
            raise SystemExit("the stack did not come up:\n" + "\n".join(failures))
        console.print(f"stack up in {time.monotonic() - started:.1f}s (logs in {self.settings.logs_dir})")
        return newly

    def down(self, names: Sequence[str] = ()) -> None:
        """Stop the selected components in reverse start order, then check for leftovers.

        Without names everything stops: first every node agent (SIGTERM: it stops the processes of the
        Pods it runs — the operator, the platform's services — within their grace periods, then exits),
        then the services, then the infrastructure they all run on.
        """
        selected = self.select(names) if names else list(self.all_components)
        if not names:
            for agent in self.node_agents():
                with step(f"stop node agent {agent.name} (its Pods' processes first)"):
                    agent.stop()
        for component in reversed(selected):
            with step(f"stop {component.name}"):
                component.stop()
        if not names:
            leftovers = self.leftover_processes()
            if leftovers:
                raise SystemExit("processes of the stack are still running:\n" + "\n".join(leftovers))

    def node_agents(self) -> list[ManagedProcess]:
        """Running node agents started from this run directory (`make demo`'s ``kubelet``, the e2e suite's)."""
        agents = []
        for pid_file in sorted((self.settings.run_dir / "pids").glob("*.pid")):
            process = ManagedProcess(pid_file.stem, [], self.settings.run_dir, stop_timeout_s=NODE_AGENT_STOP_TIMEOUT_S)
            pid = process.pid()
            if pid is None:
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if NODE_AGENT_MODULE.encode() in argv:
                agents.append(process)
        return agents

    def leftover_processes(self) -> list[str]:
        """Processes this stack started (or their children) that are still alive."""
        return owned_processes(self.settings.run_dir)

    def statuses(self) -> list[Status]:
        """Every row of `make status`."""
        return [row for component in self.components for row in component.statuses()]

    def env(self) -> dict[str, str]:
        """Environment variables reaching the running stack."""
        values: dict[str, str] = {}
        for component in self.all_components:
            values.update(component.env())
        values["PATH"] = f"{self.bin_dir}:{os.environ.get('PATH', '')}"
        return values
