"""What the saga benchmark drives: one engine running the checkout saga (or the floor's empty pipeline).

``run.py`` measures every target the same way, one after the other in the same run: the same open-loop
generator calls :meth:`Target.start`, latency comes from :meth:`Target.outcomes` (the engine's own
timestamps of a saga's start and end), CPU from the process groups in :meth:`Target.pgids`, commits from
``pg_stat_database`` of :attr:`Target.database`, Kafka records from the topics under
:attr:`Target.topic_prefix`. A target is launched by a context manager ``launch(stack, mode)`` in its
module, which starts its processes on the shared local stack and removes everything it made on exit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import asyncpg

TERMINAL = ("COMPLETED", "FAILED")


@dataclass(frozen=True)
class Outcome:
    """One saga as the engine recorded it."""

    saga_id: str
    state: str
    """``COMPLETED``, ``FAILED``, or anything else while it runs."""
    created_at: dt.datetime
    """When the engine first recorded the saga (timezone-aware)."""
    finished_at: dt.datetime | None
    """When it reached its terminal state (timezone-aware), ``None`` while it runs."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL and self.finished_at is not None


class Target(Protocol):
    """One engine under load."""

    name: str
    """Short name in reports: ``checkout``, ``floor``, ``dbos``."""
    entry: str
    """How a saga starts, in words (``HTTP to the gateway``, ``Kafka record``, ...)."""
    dsn: str
    """A PostgreSQL DSN of the target's database (commits are counted for the whole database)."""
    database: str
    topic_prefix: str | None
    """Kafka records are counted on topics starting with ``<topic_prefix>.``; ``None``: no Kafka."""

    def pgids(self) -> dict[str, int]:
        """Process name -> process group id of every process the target runs (CPU is summed per group)."""
        ...

    async def open(self) -> None:
        """Open the entry clients (HTTP client, Kafka producer) on the benchmark's event loop."""
        ...

    async def close(self) -> None:
        """Close what :meth:`open` opened."""
        ...

    async def start(self, index: int) -> str:
        """Start checkout number ``index`` (one unit of SKU ``BENCH-SAGA``); return its saga id, raise if refused."""
        ...

    async def outcomes(self, saga_ids: list[str]) -> list[Outcome]:
        """The engine's record of these sagas (missing ones are left out)."""
        ...

    async def verdict(self, saga_ids: list[str]) -> str:
        """After the run: the target's consistency check over these sagas, in one line (``all invariants hold``...)."""
        ...


async def saga_outcomes(dsn: str, saga_ids: list[str]) -> list[Outcome]:
    """Outcomes from an ``orchestrator.sagas`` table (``saga_id uuid, state, created_at, finished_at``).

    The platform's orchestrator and the floor's both keep their sagas in that shape.
    """
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT saga_id::text AS saga_id, state, created_at, finished_at FROM orchestrator.sagas "
            "WHERE saga_id = ANY($1::uuid[])",
            saga_ids,
        )
    finally:
        await connection.close()
    return [Outcome(r["saga_id"], r["state"], r["created_at"], r["finished_at"]) for r in rows]
