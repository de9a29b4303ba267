"""One CheckoutPlatform per session, installed with helm + kubectl; scenario table and timings at the end.

The files run in their numbered order (pytest collects a directory alphabetically): install, checkouts,
observability, scaling, operator restart, operator upgrade, the invariant check over every saga of the
run, and last the deletion that must leave nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployed import DeployedPlatform, deployed
from platform_target import Target, make_target
from saga_platform import Client, DirectoryScoped

PLATFORM_KEY = pytest.StashKey[DeployedPlatform]()
SCOPE = DirectoryScoped(Path(__file__).parent)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """Where the suite runs (``E2E_TARGET``: local, the default, or kind)."""
    if os.environ.get("E2E_TARGET", "local") == "local":
        # The stack's fixtures start what is not running (PostgreSQL, Kafka, the control plane, Jaeger, Prometheus).
        for fixture in ("postgres_dsn", "kafka_bootstrap_servers", "kubeconfig", "otlp_endpoint", "prometheus_url"):
            request.getfixturevalue(fixture)
    return make_target()


@pytest.fixture(scope="session")
def platform(request: pytest.FixtureRequest, target: Target) -> Iterator[DeployedPlatform]:
    """The installed, Ready platform with its processes running and stock seeded (removed after the last test here)."""
    running = SCOPE.enter(deployed(target))
    request.config.stash[PLATFORM_KEY] = running
    yield running
    SCOPE.close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Remove the platform once this directory's last test has run."""
    SCOPE.after(item, nextitem)


@pytest.fixture
def client(platform: DeployedPlatform) -> Iterator[Client]:
    """HTTP to the gateway and the participants, through their Services."""
    http = Client(platform)
    yield http
    http.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The install timings and the scenario table (measured, never asserted)."""
    running = config.stash.get(PLATFORM_KEY, None)
    if running is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"platform e2e on {running.target.name}: install and scenarios")
    for key in ("helm_install_s", "apply_to_ready_s", "apply_to_processes_ready_s", "install_to_processes_ready_s"):
        if key in running.timings:
            write(f"{key.removesuffix('_s').replace('_', ' '):<32} {running.timings[key]:7.2f} s")
    if running.scenarios:
        width = max(len(r.scenario) for r in running.scenarios)
        for row in running.scenarios:
            write(f"{row.scenario:<{width}}  {row.outcome:<48}  {row.seconds:7.2f} s")
    write(f"written to {running.run_dir / 'timings.json'}")
