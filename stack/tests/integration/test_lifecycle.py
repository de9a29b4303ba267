"""A second, isolated PostgreSQL and Kafka start from nothing and stop leaving no process behind.

They run from a run directory and ports of their own, so the shared stack the other tests use is
not disturbed; the cached binaries are shared.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from checkout_stack.settings import REPO_ROOT, KafkaPorts, PostgresPorts, StackSettings
from checkout_stack.stack import Stack

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def isolated_stack(local_stack: Stack) -> Iterator[Stack]:
    # Under the repository, not /tmp: the postgres user must be able to reach the data directory.
    run_dir = REPO_ROOT / ".run" / f"lifecycle-{uuid.uuid4().hex[:8]}"
    settings = StackSettings(
        cache_dir=local_stack.settings.cache_dir,
        run_dir=run_dir,
        postgres=PostgresPorts(port=free_port()),
        kafka=KafkaPorts(
            port=free_port(),
            controller_port=free_port(),
            proxied_port=free_port(),
            proxied_advertised_port=free_port(),
            heap="256m",
        ),
    )
    stack = Stack(settings)
    yield stack
    stack.down(["postgres", "kafka"])
    shutil.rmtree(run_dir, ignore_errors=True)


async def test_start_from_nothing_then_stop_leaves_no_process(isolated_stack: Stack) -> None:
    assert isolated_stack.leftover_processes() == []
    assert [c.name for c in isolated_stack.up(["postgres", "kafka"])] == ["postgres", "kafka"]
    assert isolated_stack.postgres.healthy()
    assert isolated_stack.kafka.healthy()
    # PostgreSQL runs as several processes (postmaster, checkpointer, walwriter, ...).
    assert len(isolated_stack.leftover_processes()) >= 3

    connection = await asyncpg.connect(isolated_stack.postgres.dsn())
    try:
        assert await connection.fetchval("SELECT 1") == 1
    finally:
        await connection.close()

    # A second `up` finds both healthy and starts nothing.
    assert isolated_stack.up(["postgres", "kafka"]) == []

    isolated_stack.down(["postgres", "kafka"])
    assert isolated_stack.leftover_processes() == []
    assert not isolated_stack.postgres.healthy()
    assert not isolated_stack.kafka.healthy()

    # Data survives a restart: the superuser password and the cluster still work.
    isolated_stack.up(["postgres"])
    connection = await asyncpg.connect(isolated_stack.postgres.dsn())
    await connection.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the data directory to the postgres user")
async def test_postgres_runs_from_a_checkout_the_postgres_user_cannot_reach(local_stack: Stack) -> None:
    # CI may clone into a private (0700) folder: the cluster then lives under the postgres user's home.
    private = REPO_ROOT / ".run" / f"private-{uuid.uuid4().hex[:8]}"
    private.mkdir(mode=0o700, parents=True)
    stack = Stack(
        StackSettings(
            cache_dir=local_stack.settings.cache_dir, run_dir=private / "run", postgres=PostgresPorts(port=free_port())
        )
    )
    try:
        stack.up(["postgres"])
        assert not stack.postgres.home.is_relative_to(private)
        connection = await asyncpg.connect(stack.postgres.dsn())
        await connection.close()
    finally:
        stack.down(["postgres"])
        shutil.rmtree(stack.postgres.home, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    assert stack.leftover_processes() == []
