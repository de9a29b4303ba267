"""toxiproxy: a TCP proxy whose faults (latency, resets, timeouts) are set over an HTTP API.

The reliability suite creates proxies in front of Kafka and PostgreSQL through the API and adds
"toxics" to them; the server itself holds no state worth keeping. The server and the CLI are
installed with ``go install`` from the module at the pinned version, with the version variable set
as the release build sets it, so ``GET /version`` tells the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from checkout_stack import golang, versions
from checkout_stack.cache import CacheEntry
from checkout_stack.components.base import ProcessComponent, Status, http_ok
from checkout_stack.console import info
from checkout_stack.processes import ManagedProcess
from checkout_stack.settings import HOST, StackSettings

MODULE: Final = "github.com/Shopify/toxiproxy/v2"

PROGRAMS: Final = {"server": "toxiproxy-server", "cli": "toxiproxy-cli"}
"""Package under ``cmd/`` → the release's binary name (go install names it after the folder)."""

LDFLAGS: Final = f"-s -w -X {MODULE}.Version=v{versions.TOXIPROXY}"
"""What the release build (.goreleaser.yml) passes; without it the server reports version "git"."""


class Toxiproxy(ProcessComponent):
    """One toxiproxy server; proxies and toxics are created through its API (and go when it stops)."""

    name = "toxiproxy"
    version = versions.TOXIPROXY
    health_description = "the toxiproxy API to answer"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.entry = CacheEntry(settings.cache_dir, self.name, self.version)

    @property
    def server_binary(self) -> Path:
        """The ``toxiproxy-server`` executable."""
        return self.entry.bin / PROGRAMS["server"]

    @property
    def cli_binary(self) -> Path:
        """The ``toxiproxy-cli`` executable (handy for poking at a running stack by hand)."""
        return self.entry.bin / PROGRAMS["cli"]

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://{HOST}:{self.settings.toxiproxy.port}"

    def installed(self) -> bool:
        """Whether both binaries of this version are in the cache."""
        return self.entry.complete and self.server_binary.exists() and self.cli_binary.exists()

    def install(self) -> None:
        """``go install`` the server and the CLI into the cache entry, named as in the release."""
        if self.installed():
            return
        log = self.settings.logs_dir / "setup-toxiproxy.log"
        info(f"installing toxiproxy v{self.version} with go install; log: {log}")
        packages = [f"{MODULE}/cmd/{program}" for program in PROGRAMS]
        golang.install(self.entry, packages=packages, version=self.version, ldflags=LDFLAGS, log=log)
        for program, release_name in PROGRAMS.items():
            (self.entry.bin / program).replace(self.entry.bin / release_name)

    def process(self) -> ManagedProcess:
        """The server, logging at info level."""
        return ManagedProcess(
            name=self.name,
            argv=[
                str(self.server_binary),
                "-host",
                HOST,
                "-port",
                str(self.settings.toxiproxy.port),
            ],
            run_dir=self.settings.run_dir,
            # The default (debug) logs every API call, health probes included.
            env={"LOG_LEVEL": "info"},
        )

    def healthy(self) -> bool:
        """``GET /version`` answers 200."""
        return http_ok(f"{self.url}/version")

    def status(self) -> Status:
        """Version, address, health."""
        return self._status_row(f"toxiproxy v{self.version}", f"{HOST}:{self.settings.toxiproxy.port}")

    def tools(self) -> dict[str, Path]:
        """``toxiproxy-cli`` (``toxiproxy-cli -h $TOXIPROXY_URL list``)."""
        return {PROGRAMS["cli"]: self.cli_binary}

    def env(self) -> dict[str, str]:
        """TOXIPROXY_URL: base URL of the API."""
        return {"TOXIPROXY_URL": self.url}
