"""Prometheus (and promtool) from Debian's package, scraping targets listed in files.

Besides itself, Prometheus scrapes whatever is listed in ``<run_dir>/prometheus/targets/*.json``
(file-based service discovery, re-read every few seconds), so the services, the operator and the
tests register what they expose by writing one file per job with :meth:`Prometheus.add_targets`;
no reload is needed. The Debian package's systemd unit is never used: the server runs as our
process on loopback with its data under the run directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Final

import yaml

from checkout_stack import debian
from checkout_stack.components.base import ProcessComponent, Status, http_ok
from checkout_stack.console import info
from checkout_stack.processes import ManagedProcess, validate
from checkout_stack.settings import HOST, StackSettings

PACKAGES: Final = ("prometheus",)
"""Debian package shipping both ``prometheus`` and ``promtool``."""

BIN_DIR: Final = Path("/usr/bin")
"""Where the Debian package puts ``prometheus`` and ``promtool``."""

FILE_SD_JOB: Final = "checkout"
"""Scrape job whose targets come from the files under ``targets/``."""

FILE_SD_REFRESH: Final = "5s"
"""How often Prometheus re-reads the target files."""

RETENTION: Final = ("--storage.tsdb.retention.time=1d", "--storage.tsdb.retention.size=512MB")
"""A local stack needs minutes of history, not the default fifteen days."""

_JOB_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class Prometheus(ProcessComponent):
    """One Prometheus server with file-based target discovery."""

    name = "prometheus"
    version = "Debian"
    health_description = "Prometheus to be ready"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.home = settings.run_dir / "prometheus"

    @property
    def config_path(self) -> Path:
        """The configuration written (and checked with promtool) on every start."""
        return self.home / "prometheus.yml"

    @property
    def targets_dir(self) -> Path:
        """One JSON file of targets per job (file_sd format)."""
        return self.home / "targets"

    @property
    def data_dir(self) -> Path:
        """The TSDB."""
        return self.home / "data"

    @property
    def url(self) -> str:
        """Base URL of the web UI and the HTTP API."""
        return f"http://{HOST}:{self.settings.prometheus.port}"

    def installed(self) -> bool:
        """Whether the Debian package is installed."""
        return (BIN_DIR / "prometheus").exists() and not debian.missing(PACKAGES)

    def install(self) -> None:
        """Install the Debian package if missing (its service is not started: policy-rc.d)."""
        added = debian.ensure(PACKAGES, self.settings.logs_dir / "setup-debian.log")
        if added:
            info(f"installed Debian packages: {' '.join(added)}")

    def package_version(self) -> str:
        """The installed Debian package version, e.g. ``2.42.0+ds-5+deb12u1``."""
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", PACKAGES[0]],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or "not installed"

    def config(self) -> dict[str, Any]:
        """Scrape Prometheus itself and every target listed under ``targets/``."""
        interval = self.settings.prometheus.scrape_interval
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"{HOST}:{self.settings.prometheus.port}"]}],
                },
                {
                    "job_name": FILE_SD_JOB,
                    "file_sd_configs": [
                        {
                            "files": [str(self.targets_dir / "*.json")],
                            "refresh_interval": FILE_SD_REFRESH,
                        }
                    ],
                },
            ],
        }

    def target_file(self, job_name: str) -> Path:
        """The file listing the targets of ``job_name``."""
        if not _JOB_NAME.fullmatch(job_name):
            raise ValueError(f"job name {job_name!r} must match {_JOB_NAME.pattern} (it names a file)")
        return self.targets_dir / f"{job_name}.json"

    def add_targets(
        self, job_name: str, targets: list[str], labels: dict[str, str], *, name: str | None = None
    ) -> Path:
        """List ``targets`` (``host:port``) to be scraped as job ``job_name``; return the file.

        The ``job`` label is set to ``job_name`` (target labels win over the scrape job's name).
        The file is named after ``name`` (default: the job), so two platforms on one stack can
        each register their ``gateway-bff`` without replacing the other's; ``remove_targets(name)``
        forgets them.
        The file is replaced atomically, so Prometheus never reads half of it; it picks the
        change up within the refresh interval and scrapes the targets from then on.
        """
        path = self.target_file(name or job_name)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        groups = [{"targets": targets, "labels": {**labels, "job": job_name}}]
        content = json.dumps(groups, indent=2)
        # The temporary name does not match *.json, so discovery never sees it.
        fd, tmp = tempfile.mkstemp(dir=self.targets_dir, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(content + "\n")
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def remove_targets(self, name: str) -> None:
        """Stop scraping what was added as ``name`` (the job, unless named otherwise; within the refresh interval)."""
        self.target_file(name).unlink(missing_ok=True)

    def check_config(self) -> None:
        """Validate the written configuration (and the target files) with promtool."""
        validate(
            [str(BIN_DIR / "promtool"), "check", "config", str(self.config_path)],
            tool="promtool",
            subject=self.config_path,
        )

    def process(self) -> ManagedProcess:
        """The server; stopping it flushes its head block, and data and target files are kept."""
        return ManagedProcess(
            name=self.name,
            argv=[
                str(BIN_DIR / "prometheus"),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address={HOST}:{self.settings.prometheus.port}",
                f"--web.external-url={self.url}/",
                "--web.enable-lifecycle",
                # Exemplars (trace ids on latency histograms) are part of the design.
                "--enable-feature=exemplar-storage",
                *RETENTION,
            ],
            run_dir=self.settings.run_dir,
            cwd=self.home,
        )

    def prepare(self) -> None:
        """Write the configuration and check it with promtool."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.check_config()

    def healthy(self) -> bool:
        """``/-/ready`` answers 200."""
        return http_ok(f"{self.url}/-/ready")

    def status(self) -> Status:
        """Version, address, health, and how many target files are registered."""
        jobs = sorted(path.stem for path in self.targets_dir.glob("*.json"))
        return self._status_row(
            f"Prometheus {self.package_version()} (Debian)",
            f"{HOST}:{self.settings.prometheus.port}",
            f"file_sd jobs: {', '.join(jobs) or 'none'}",
        )

    def tools(self) -> dict[str, Path]:
        """``promtool`` (already on PATH from the package; listed so `make env` shows it)."""
        return {"promtool": BIN_DIR / "promtool"}

    def env(self) -> dict[str, str]:
        """PROMETHEUS_URL: base URL of the HTTP API."""
        return {"PROMETHEUS_URL": self.url}
