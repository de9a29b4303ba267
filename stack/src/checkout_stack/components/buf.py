"""buf, the protobuf linter and breaking-change checker: a tool the suite runs, not a server."""

from __future__ import annotations

from pathlib import Path

from checkout_stack import golang, versions
from checkout_stack.cache import CacheEntry
from checkout_stack.components.base import Component, Status
from checkout_stack.settings import StackSettings

PACKAGE = "github.com/bufbuild/buf/cmd/buf"


class Buf(Component):
    """``buf`` at the pinned version; start and stop have nothing to do."""

    name = "buf"
    version = versions.BUF

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.entry = CacheEntry(settings.cache_dir, self.name, f"v{self.version}")

    @property
    def binary(self) -> Path:
        """The buf executable."""
        return self.entry.bin / "buf"

    def installed(self) -> bool:
        """Whether this version is cached."""
        return self.entry.complete

    def install(self) -> None:
        """``go install`` buf into the cache."""
        golang.install(
            self.entry, packages=[PACKAGE], version=self.version, log=self.settings.logs_dir / "setup-buf.log"
        )

    def start(self) -> None:
        """A tool runs when called; nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def healthy(self) -> bool:
        """A tool is healthy when it is installed."""
        return self.installed()

    def status(self) -> Status:
        """Version and where it is."""
        return Status(self.name, f"v{self.version}", "(tool)", self.installed(), self.installed())

    def tools(self) -> dict[str, Path]:
        """``buf`` on PATH."""
        return {"buf": self.binary}

    def env(self) -> dict[str, str]:
        """Nothing to reach."""
        return {}
