"""What every component of the local stack offers the CLI and the test fixtures."""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import httpx

from checkout_stack.processes import ManagedProcess, wait_until
from checkout_stack.settings import HOST, StackSettings


@dataclass(frozen=True)
class Status:
    """One row of `make status`."""

    name: str
    version: str
    address: str
    running: bool
    healthy: bool
    detail: str = ""


def port_open(port: int, host: str = HOST, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 within ``timeout_s``; any HTTP error is a no."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == httpx.codes.OK


class Component(ABC):
    """A server of the local stack: installed once per version, started and stopped at will."""

    name: str
    version: str

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @abstractmethod
    def installed(self) -> bool:
        """Whether everything needed to start is in place (a cheap check, no network)."""

    @abstractmethod
    def install(self) -> None:
        """Install or build the component into the cache; idempotent."""

    @abstractmethod
    def start(self) -> None:
        """Start the component's processes unless running, and wait until healthy."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the component's processes, leaving no orphans; data is kept."""

    @abstractmethod
    def healthy(self) -> bool:
        """Whether the component answers as it should right now."""

    @abstractmethod
    def status(self) -> Status:
        """Version, address and health for `make status`."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """Environment variables that reach the running component (`make env`)."""

    def statuses(self) -> list[Status]:
        """Rows for `make status`; components with several processes return one per process."""
        return [self.status()]

    def tools(self) -> dict[str, Path]:
        """Command-line tools worth putting on PATH (`make env`), by name."""
        return {}


class ProcessComponent(Component):
    """A component that is one managed process: prepared, started, then waited on until healthy."""

    @property
    def health_description(self) -> str:
        """What :meth:`start` waits for, e.g. "PostgreSQL to accept connections" (override it)."""
        return f"{self.name} to become healthy"

    @abstractmethod
    def process(self) -> ManagedProcess:
        """The server process (building it starts nothing; stop and status find it by pid file)."""

    def prepare(self) -> None:
        """Get ready to start, on every start: write configuration, initialise storage (default: nothing)."""

    def start(self) -> None:
        """Prepare, start the process unless it runs, and wait until healthy."""
        self.prepare()
        process = self.process()
        process.start()
        self._wait_healthy(process)

    def stop(self) -> None:
        """Stop the process group, gracefully then forcibly; data on disk is kept."""
        self.process().stop()

    def running(self) -> bool:
        """Whether the process is alive (healthy or not)."""
        return self.process().running()

    def _wait_healthy(self, process: ManagedProcess) -> None:
        """Wait until :meth:`healthy`, failing with the process log if it dies or times out."""
        wait_until(
            self.healthy,
            what=self.health_description,
            timeout_s=self.settings.start_timeout_s,
            process=process,
        )

    def _status_row(self, version: str, address: str, detail: str = "") -> Status:
        """The `make status` row: ``version`` and ``address`` as shown, liveness and health probed now."""
        return Status(self.name, version, address, self.running(), self.healthy(), detail)
