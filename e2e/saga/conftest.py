"""One isolated platform per session; the invariant check runs after every scenario; timings at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from saga_platform import (
    DEFAULT_DEADLINES,
    SHORT_DEADLINES,
    Client,
    DirectoryScoped,
    SagaPlatform,
    launched,
    prune_old_instances,
    seed_stock,
)

from checkout_invariants import snapshot_stock
from checkout_stack.stack import Stack

PLATFORM_KEY = pytest.StashKey[SagaPlatform]()
HERE = Path(__file__).parent
SCOPE = DirectoryScoped(HERE)
LAST = HERE / "test_invariants.py"
"""Checks the sagas of every other scenario, so it runs after them all."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order this directory's tests: short deadlines, then default deadlines, then the invariant check.

    Grouping by the orchestrator's deadlines restarts it once, not at every switch; the invariant
    check reads the sagas of every other scenario. Tests elsewhere keep their places.
    """

    def phase(item: pytest.Item) -> int:
        if item.path == LAST:
            return 2
        return 1 if "default_deadlines" in getattr(item, "fixturenames", ()) else 0

    ours = [index for index, item in enumerate(items) if item.path.parent == HERE]
    ordered = sorted((items[index] for index in ours), key=phase)  # stable: file order within a phase
    for index, item in zip(ours, ordered, strict=True):
        items[index] = item


@pytest.fixture(scope="session")
def platform(
    request: pytest.FixtureRequest, local_stack: Stack, postgres_dsn: str, kafka_bootstrap_servers: str
) -> Iterator[SagaPlatform]:
    """The six services as processes with their own run dir, ports, database, topics and groups."""
    prune_old_instances()
    running = SCOPE.enter(launched(local_stack, postgres_dsn, kafka_bootstrap_servers))
    try:
        seed_stock(running)
        running.stock_before = asyncio.run(snapshot_stock(running.dsn))
    except BaseException:
        SCOPE.close()
        raise
    request.config.stash[PLATFORM_KEY] = running
    yield running
    SCOPE.close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the instance once this directory's last test has run."""
    SCOPE.after(item, nextitem)


@pytest.fixture
def short_deadlines(platform: SagaPlatform) -> None:
    """The orchestrator gives a step 2 s and 2 attempts (what the session starts with)."""
    platform.use_deadlines(SHORT_DEADLINES)


@pytest.fixture
def default_deadlines(platform: SagaPlatform) -> None:
    """The orchestrator's own deadlines: for load, where queueing alone takes longer than 2 s a step."""
    platform.use_deadlines(DEFAULT_DEADLINES)


@pytest.fixture
def client(platform: SagaPlatform) -> Iterator[Client]:
    """HTTP to the gateway and the participants."""
    http = Client(platform)
    yield http
    http.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The scenario table and the measured wall times (measured, not asserted)."""
    running = config.stash.get(PLATFORM_KEY, None)
    if running is None or not running.scenarios:
        return
    write = terminalreporter.write_line
    terminalreporter.section("checkout saga e2e: scenarios and wall times")
    width = max(len(r.scenario) for r in running.scenarios)
    for row in running.scenarios:
        write(f"{row.scenario:<{width}}  {row.outcome:<44}  {row.seconds:7.2f} s")
    single = running.timings.get("single_checkout")
    if single:
        write(
            f"one checkout end to end: median {single['median_s']:.3f} s "
            f"(min {single['min_s']:.3f}, max {single['max_s']:.3f}, {len(single['runs_s'])} runs)"
        )
    bulk = running.timings.get("concurrent_100")
    if bulk:
        write(f"100 concurrent checkouts, initiate all → all terminal: {bulk['seconds']:.2f} s ({bulk['outcomes']})")
    write(f"written to {running.run_dir / 'timings.json'}")
