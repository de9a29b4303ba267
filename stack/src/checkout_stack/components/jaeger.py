"""Jaeger all-in-one (v2, built on the OpenTelemetry Collector) with in-memory trace storage.

The binary is built from the wrapper module ``stack/go/jaeger``, which pins Jaeger as a Go tool.
The configuration is written by us rather than taken from the embedded all-in-one defaults,
because those bind several extra listeners (Jaeger Thrift, Zipkin, remote sampling, zpages) that
the platform does not use; ours binds only OTLP in, the query API out, the health check and
Jaeger's own metrics, all on loopback. Its schema follows ``cmd/jaeger/internal/all-in-one.yaml``
of the pinned release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from checkout_stack import golang, versions
from checkout_stack.cache import CacheEntry, recipe_digest
from checkout_stack.components.base import ProcessComponent, Status, http_ok, port_open
from checkout_stack.console import info
from checkout_stack.processes import ManagedProcess, validate
from checkout_stack.settings import HOST, REPO_ROOT, StackSettings

MODULE_DIR: Final = REPO_ROOT / "stack" / "go" / "jaeger"
"""Wrapper module pinning the release (``tool github.com/jaegertracing/jaeger/cmd/jaeger``)."""

PACKAGE: Final = "github.com/jaegertracing/jaeger/cmd/jaeger"

V2_VERSION: Final = versions.JAEGER_V2
RELEASE_DATE: Final = versions.JAEGER_RELEASE_DATE

_VERSION_PKG: Final = "github.com/jaegertracing/jaeger/internal/version"
LDFLAGS: Final = f"-s -w -X {_VERSION_PKG}.latestVersion=v{V2_VERSION} -X {_VERSION_PKG}.date={RELEASE_DATE}"
"""Strip symbols and set the version variables Jaeger's Makefile sets (there is no commit here)."""

MAX_TRACES: Final = 100_000
"""The in-memory store drops the oldest traces beyond this many."""

STORE: Final = "memstore"
"""Name of the (only) trace storage backend in the configuration."""


class Jaeger(ProcessComponent):
    """One Jaeger v2 process: OTLP receivers, memory storage, query API."""

    name = "jaeger"
    version = versions.JAEGER
    health_description = "the Jaeger query API to answer"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.home = settings.run_dir / "jaeger"
        self.entry = CacheEntry(
            settings.cache_dir,
            self.name,
            self.version,
            recipe_digest([MODULE_DIR / "go.mod", MODULE_DIR / "go.sum"], LDFLAGS),
        )

    @property
    def binary(self) -> Path:
        """The built ``jaeger`` executable."""
        return self.entry.bin / "jaeger"

    @property
    def config_path(self) -> Path:
        """The collector configuration written on every start."""
        return self.home / "config.yaml"

    @property
    def query_url(self) -> str:
        """Base URL of the query API (``/api/services``, ``/api/traces``) and UI."""
        return f"http://{HOST}:{self.settings.jaeger.query_port}"

    @property
    def otlp_http_url(self) -> str:
        """Base URL of the OTLP/HTTP receiver (the SDK appends ``/v1/traces``)."""
        return f"http://{HOST}:{self.settings.jaeger.otlp_http_port}"

    def installed(self) -> bool:
        """Whether the binary for this version and wrapper module is in the cache."""
        return self.entry.complete and self.binary.exists()

    def install(self) -> None:
        """Build the binary from the wrapper module (several minutes the first time)."""
        if self.installed():
            return
        log = self.settings.logs_dir / "setup-jaeger.log"
        info(f"building Jaeger v{self.version} (v{V2_VERSION}) with go build; log: {log}")
        golang.build(self.entry, module_dir=MODULE_DIR, packages=[PACKAGE], ldflags=LDFLAGS, log=log)

    def config(self) -> dict[str, Any]:
        """The collector configuration: every listener on loopback, traces kept in memory."""
        ports = self.settings.jaeger
        own_metrics = {"prometheus": {"host": HOST, "port": ports.metrics_port}}
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    },
                },
                "telemetry": {
                    "resource": {"service.name": "jaeger"},
                    "metrics": {
                        "level": "normal",
                        "readers": [{"pull": {"exporter": own_metrics}}],
                    },
                    "logs": {"level": "info"},
                },
            },
            "extensions": {
                "jaeger_storage": {"backends": {STORE: {"memory": {"max_traces": MAX_TRACES}}}},
                "jaeger_query": {
                    "storage": {"traces": STORE},
                    # Traces of Jaeger's own queries would show up next to the platform's services.
                    "enable_tracing": False,
                    "http": {"endpoint": f"{HOST}:{ports.query_port}"},
                    "grpc": {"endpoint": f"{HOST}:{ports.query_grpc_port}"},
                },
                "healthcheckv2": {
                    "use_v2": True,
                    "http": {"endpoint": f"{HOST}:{ports.health_port}"},
                },
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"{HOST}:{ports.otlp_grpc_port}"},
                        "http": {"endpoint": f"{HOST}:{ports.otlp_http_port}"},
                    },
                },
            },
            "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": STORE}},
        }

    def check_config(self) -> None:
        """Validate the written configuration with ``jaeger validate`` (fails with its message)."""
        validate(
            [str(self.binary), "validate", "--config", str(self.config_path)], tool="jaeger", subject=self.config_path
        )

    def process(self) -> ManagedProcess:
        """The all-in-one process; the in-memory traces are gone when it stops."""
        return ManagedProcess(
            name=self.name,
            argv=[str(self.binary), "--config", str(self.config_path)],
            run_dir=self.settings.run_dir,
            cwd=self.home,
        )

    def prepare(self) -> None:
        """Write the configuration and check it with ``jaeger validate``."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.check_config()

    def healthy(self) -> bool:
        """The query API lists services and both OTLP receivers accept connections.

        The query extension starts before the receivers, so the API alone answering does not
        yet mean spans can be sent.
        """
        ports = self.settings.jaeger
        if not (port_open(ports.otlp_http_port) and port_open(ports.otlp_grpc_port)):
            return False
        return http_ok(f"{self.query_url}/api/services")

    def status(self) -> Status:
        """Version, query address, health, and where OTLP goes in."""
        ports = self.settings.jaeger
        return self._status_row(
            f"Jaeger v{self.version} / v{V2_VERSION}",
            f"{HOST}:{ports.query_port}",
            f"OTLP gRPC :{ports.otlp_grpc_port}, HTTP :{ports.otlp_http_port}",
        )

    def tools(self) -> dict[str, Path]:
        """``jaeger`` (``jaeger version``, ``jaeger validate --config …``)."""
        return {"jaeger": self.binary}

    def env(self) -> dict[str, str]:
        """The standard OTLP exporter variables, and where tests read traces back."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_http_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "TRACES_QUERY_URL": self.query_url,
        }
