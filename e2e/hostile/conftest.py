"""One isolated platform for the hostile-input suite, stopped right after this directory's last test.

The six services run as real processes through the stack's launcher (the saga suite's harness,
``saga_platform.launched``) against the shared PostgreSQL and Kafka, with their own run directory,
ports, database and topic prefix. Everything here speaks to them as an attacker would: HTTP to each
service's port, raw records on their Kafka topics. What is measured is written to the reliability
ledger (``chaos_ledger.record_check``, section ``hostile-input``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from saga_platform import Client, DirectoryScoped, SagaPlatform, launched, prune_old_instances, seed_stock

from checkout_stack.stack import Stack

HERE = Path(__file__).parent
SCOPE = DirectoryScoped(HERE)

HOSTILE_STOCK: Final = {
    "HOSTILE-OK": (100, 1_000),
    "HOSTILE-AFTER-POISON": (20, 700),
}
"""SKU → (units, unit price in cents) of the checkouts this suite runs for real."""


@pytest.fixture(scope="session")
def platform(local_stack: Stack, postgres_dsn: str, kafka_bootstrap_servers: str) -> Iterator[SagaPlatform]:
    """The six services as processes with their own run dir, ports, database, topics and groups."""
    prune_old_instances()
    running = SCOPE.enter(launched(local_stack, postgres_dsn, kafka_bootstrap_servers))
    try:
        seed_stock(running, HOSTILE_STOCK)
    except BaseException:
        SCOPE.close()
        raise
    yield running
    SCOPE.close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the instance once this directory's last test has run."""
    SCOPE.after(item, nextitem)


@pytest.fixture
def client(platform: SagaPlatform) -> Iterator[Client]:
    """HTTP to the gateway and the participants."""
    http = Client(platform)
    yield http
    http.close()


@pytest.fixture(scope="session")
def rss(platform: SagaPlatform) -> Callable[[str], int]:
    """Resident memory of a service's process in bytes, by launcher name."""
    return lambda service: rss_bytes(platform, service)


@pytest.fixture(scope="session")
def count_tables(platform: SagaPlatform) -> Callable[[], TableCounts]:
    """Every table of the instance's database with its row count, read as the superuser."""
    return lambda: table_counts(platform)


def rss_bytes(platform: SagaPlatform, service: str) -> int:
    """Resident memory of a service's process (``VmRSS`` in ``/proc/<pid>/status``)."""
    services = platform.stack.services
    pid = services.process(services.by_name(service)).pid()
    assert pid is not None, f"{service} is not running"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


@dataclass(frozen=True)
class TableCounts:
    """Every table of the instance's service schemas with its row count."""

    rows: dict[str, int]

    def lost(self, later: TableCounts) -> dict[str, tuple[int, int | None]]:
        """Tables that vanished or hold fewer rows in ``later``: ``{table: (before, after or None)}``."""
        return {
            table: (count, later.rows.get(table))
            for table, count in self.rows.items()
            if later.rows.get(table) is None or later.rows[table] < count
        }


async def _table_counts(dsn: str) -> TableCounts:
    connection = await asyncpg.connect(dsn)
    try:
        tables = await connection.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, 2"
        )
        rows: dict[str, int] = {}
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            rows[f"{table['table_schema']}.{table['table_name']}"] = await connection.fetchval(
                f"SELECT count(*) FROM {name}"  # noqa: S608 - names read from the catalog, quoted
            )
        return TableCounts(rows)
    finally:
        await connection.close()


def table_counts(platform: SagaPlatform) -> TableCounts:
    """Read every table of the instance's database as the superuser."""
    return asyncio.run(_table_counts(platform.dsn))
