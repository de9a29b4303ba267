"""What every component of the local stack offers the CLI and the test fixtures."""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

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
