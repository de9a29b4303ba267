"""One isolated platform whose every Kafka and PostgreSQL connection goes through toxiproxy.

The services reach Kafka on its PROXIED listener through the proxy ``chaos-kafka`` (the broker
advertises the proxy's port there, so every later broker connection goes through it too) and
PostgreSQL through ``chaos-postgres``. The harness itself (checker, offsets, seeding) talks to both
directly. The orchestrator runs with its own default deadlines: the load queues behind a fault, and
2 s steps would fail sagas that only waited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_matrix import KAFKA_PROXY, PLATFORM_FAULTS, POSTGRES_PROXY, Chaos, row_sku
from saga_platform import DEFAULT_DEADLINES, DirectoryScoped, launched, prune_old_instances, seed_stock
from toxiproxy_api import Proxy, Toxiproxy

from checkout_invariants import snapshot_stock
from checkout_stack.settings import HOST
from checkout_stack.stack import Stack

HERE = Path(__file__).parent
SCOPE = DirectoryScoped(HERE)
STOCK_PER_ROW = 2_000
"""Units of each row's SKU: more than any row's load can sell."""


@pytest.fixture(scope="session")
def chaos(local_stack: Stack, postgres_dsn: str, kafka_bootstrap_servers: str) -> Iterator[Chaos]:
    """The proxied instance, its stock seeded and snapshotted."""
    if not local_stack.toxiproxy.healthy():
        local_stack.up(["toxiproxy"])
    prune_old_instances()
    kafka, postgres = local_stack.settings.kafka, local_stack.settings.postgres
    toxiproxy = Toxiproxy(local_stack.toxiproxy.url)
    proxied_pg_port = postgres.port + 1
    toxiproxy.ensure(Proxy(KAFKA_PROXY, f"{HOST}:{kafka.proxied_advertised_port}", f"{HOST}:{kafka.proxied_port}"))
    toxiproxy.ensure(Proxy(POSTGRES_PROXY, f"{HOST}:{proxied_pg_port}", f"{HOST}:{postgres.port}"))
    server = postgres_dsn.rsplit("/", 1)[0].replace(f":{postgres.port}", f":{proxied_pg_port}")
    every_service = {
        "DATABASE__URL": f"{server}/{{database}}",
        "KAFKA__BOOTSTRAP_SERVERS": f"{HOST}:{kafka.proxied_advertised_port}",
    }
    try:
        platform = SCOPE.enter(
            launched(local_stack, postgres_dsn, kafka_bootstrap_servers, every_service=every_service)
        )
        platform.use_deadlines(DEFAULT_DEADLINES)
        stock = {row_sku(i): (STOCK_PER_ROW, 500) for i in range(len(PLATFORM_FAULTS))}
        seed_stock(platform, stock)
        platform.stock_before = asyncio.run(snapshot_stock(platform.dsn))
        yield Chaos(platform, local_stack, toxiproxy, {})
    finally:
        SCOPE.close()
        toxiproxy.remove(KAFKA_PROXY)
        toxiproxy.remove(POSTGRES_PROXY)
        toxiproxy.close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the instance once this directory's last test has run."""
    SCOPE.after(item, nextitem)
