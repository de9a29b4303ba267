"""The floor as a benchmark target: the platform's Kafka path with no business logic, in aiokafka + asyncpg.

What the platform pays per saga in Kafka mode, hop by hop, is kept; everything else is taken out. Seven
records (``CheckoutInitiated``, then a command and its reply for inventory, payment and order); each
consumed record is one PostgreSQL transaction writing the consumer's inbox row, its state row and the next
record's outbox row; each produced record leaves through an outbox relay that marks it published in a
transaction of its own (one per batch, as the kit's relay). That is 7 + 6 = 13 commits and 7 records a saga
when every relay batch holds one row; fewer commits under load, as the platform's relay batches too. The
same four processes as the platform's path (:mod:`floor_process`: an orchestrator and three participants),
the same five topics with the stack's partition count, the kit's producer settings (``acks=all``,
idempotence, ``linger_ms=2``) and consumer settings (read_committed, offsets committed after the database).

Not kept, because they are the platform's business or its background work rather than the hop: payloads
(17 bytes here, protobuf in CloudEvents envelopes there), the saga timeline, optimistic versions, stock and
payment rows, tracing and metrics, the deadline scanner (a transaction every 0.25 s), the relays' idle polls
(one each a second) and ``LISTEN``/``NOTIFY``. Those time-driven transactions are why the platform counts a
commit or two more per saga at low rates (the platform idles at about 9 commits a second).

Where the floor goes as fast as the plain libraries let it, with the same guarantees: a hop's transaction is
one statement (one round trip; the kit's is a dozen with its pool pre-ping, BEGIN, reads, timeline and
NOTIFY), a partition's records are applied by a worker of its own while the next fetch is already out (the
kit applies one record at a time per process), the relay sends each row as soon as it is committed and marks
what was acknowledged meanwhile (the kit's relay waits for a batch's acknowledgements and mark before it
selects the next), and offsets are committed every 100 ms, not after each record.

Latency comes from the orchestrator's ``sagas.created_at`` (set when it applies step 0) and ``finished_at``
(set when it applies step 6), both ``now()`` in its own transactions, like the platform's saga row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from checkout_stack.settings import REPO_ROOT
from checkout_stack.stack import Stack

if TYPE_CHECKING:  # mypy sees bench/saga as the package it is; run.py puts bench/saga itself on sys.path
    from bench.saga.floor_process import EVENTS, ORCHESTRATOR, PARTICIPANTS, ROLES, SCHEMAS, TOPICS, schema_ddl
    from bench.saga.target import Outcome, saga_outcomes
else:
    from floor_process import EVENTS, ORCHESTRATOR, PARTICIPANTS, ROLES, SCHEMAS, TOPICS, schema_ddl
    from target import Outcome, saga_outcomes

PROCESS: Final = Path(__file__).with_name("floor_process.py")
READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 15.0
ADMIN_TIMEOUT_S: Final = 30.0
PER_SAGA: Final = {ORCHESTRATOR: (4, 3), **dict.fromkeys(PARTICIPANTS, (1, 1))}
"""Role -> (inbox rows, outbox rows) per completed saga: the orchestrator applies steps 0, 2, 4, 6 and sends
1, 3, 5; each participant applies one command and sends one reply."""


class FloorTarget:
    """The floor's four processes under load, entered by a record to ``<prefix>.checkout-events``."""

    name = "floor"
    entry = "a record to Kafka"

    def __init__(
        self, dsn: str, prefix: str, bootstrap_servers: str, processes: Mapping[str, subprocess.Popen[bytes]]
    ) -> None:
        self.dsn = dsn
        self.database = dsn.rsplit("/", 1)[1]
        self.topic_prefix: str | None = prefix
        self.bootstrap_servers = bootstrap_servers
        self.processes = dict(processes)
        self.producer: AIOKafkaProducer | None = None

    def pgids(self) -> dict[str, int]:
        return {role: process.pid for role, process in self.processes.items() if process.poll() is None}

    async def open(self) -> None:
        # The same producer as the platform's Kafka entry (checkout_target).
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=1
        )
        await self.producer.start()

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def start(self, index: int) -> str:
        assert self.producer is not None, "open() first"
        saga_id = uuid.uuid4()
        await self.producer.send_and_wait(f"{self.topic_prefix}.{EVENTS}", saga_id.bytes + b"\x00", key=saga_id.bytes)
        return str(saga_id)

    async def outcomes(self, saga_ids: list[str]) -> list[Outcome]:
        return await saga_outcomes(self.dsn, saga_ids)

    async def verdict(self, saga_ids: list[str]) -> str:
        """Every started saga COMPLETED once, each hop applied exactly once, every outbox row published."""
        connection = await asyncpg.connect(self.dsn)
        try:
            problems = await _violations(connection, saga_ids)
            completed = await connection.fetchval(
                "SELECT count(*) FROM orchestrator.sagas WHERE saga_id = ANY($1::uuid[]) AND state = 'COMPLETED'",
                saga_ids,
            )
        finally:
            await connection.close()
        if problems:
            return "VIOLATED: " + "; ".join(problems)
        return (
            f"all invariants hold (COMPLETED={completed}; per saga: one saga row, 4 orchestrator inbox and 3 outbox "
            "rows, one inbox, state and outbox row per participant; every outbox row published)"
        )


async def _violations(connection: asyncpg.Connection, saga_ids: list[str]) -> list[str]:
    """What breaks the floor's invariants over ``saga_ids`` (empty: nothing)."""
    problems = []
    sagas = await connection.fetchrow(
        "SELECT count(*) FILTER (WHERE s.state = 'COMPLETED' AND s.step = 6 AND s.finished_at IS NOT NULL) AS done, "
        "count(*) FILTER (WHERE s.saga_id IS NULL) AS missing FROM (SELECT unnest($1::uuid[]) AS saga_id) i "
        "LEFT JOIN orchestrator.sagas s USING (saga_id)",
        saga_ids,
    )
    if sagas["done"] != len(saga_ids):
        problems.append(
            f"{len(saga_ids) - sagas['done']} of {len(saga_ids)} sagas not COMPLETED ({sagas['missing']} missing)"
        )
    for role in ROLES:
        schema = SCHEMAS[role]
        inbox, outbox = PER_SAGA[role]
        state = "sagas" if role == ORCHESTRATOR else "state"
        counts = await connection.fetchrow(
            f"""
            SELECT count(*) FILTER (WHERE coalesce(b.n, 0) <> $2) AS inbox,
                   count(*) FILTER (WHERE coalesce(o.n, 0) <> $3) AS outbox,
                   count(*) FILTER (WHERE s.saga_id IS NULL) AS state
            FROM (SELECT unnest($1::uuid[]) AS saga_id) i
            LEFT JOIN {schema}.{state} s USING (saga_id)
            LEFT JOIN (SELECT saga_id, count(*) AS n FROM {schema}.inbox GROUP BY saga_id) b USING (saga_id)
            LEFT JOIN (SELECT key, count(*) AS n FROM {schema}.outbox GROUP BY key) o ON o.key = uuid_send(i.saga_id)
            """,  # noqa: S608 - schema names are constants
            saga_ids,
            inbox,
            outbox,
        )
        if counts["inbox"]:
            problems.append(f"{counts['inbox']} sagas without exactly {inbox} {role} inbox row(s)")
        if counts["outbox"]:
            problems.append(f"{counts['outbox']} sagas without exactly {outbox} {role} outbox row(s)")
        if counts["state"]:
            problems.append(f"{counts['state']} sagas without a {role} state row")
        unpublished = await connection.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")  # noqa: S608
        if unpublished:
            problems.append(f"{unpublished} {role} outbox rows never published")
    return problems


# --- launching ---------------------------------------------------------------------------------


async def _admin(superuser: str, statement: str) -> None:
    connection = await asyncpg.connect(superuser, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _create_schemas(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        for role in ROLES:
            await connection.execute(schema_ddl(role))
    finally:
        await connection.close()


async def _create_topics(bootstrap_servers: str, prefix: str, partitions: int) -> None:
    """The five topics, like the stack's launcher makes them; returns once each has its partitions."""
    names = [f"{prefix}.{topic}" for topic in TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="bench-floor")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names])
        while True:
            described = await admin.describe_topics(names)
            if all(t["error_code"] == 0 and len(t["partitions"]) == partitions for t in described):
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _delete_topics_and_groups(bootstrap_servers: str, prefix: str) -> None:
    """Delete the topics under ``prefix`` and the four consumer groups (best effort for the groups)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="bench-floor")
    await admin.start()
    try:
        topics = [name for name in await admin.list_topics() if name.startswith(f"{prefix}.")]
        if topics:
            await admin.delete_topics(topics)
        groups = [f"{prefix}.{role}" for role in ROLES]
        with contextlib.suppress(Exception):  # aiokafka has no public DeleteGroups; empty groups expire anyway
            from aiokafka.protocol.admin import DeleteGroupsRequest

            coordinator = await admin.find_coordinator(groups[0])
            await admin._send_request_to_node(coordinator, DeleteGroupsRequest(groups))
    finally:
        await admin.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(processes: Mapping[str, subprocess.Popen[bytes]], run_dir: Path) -> None:
    """Until every process has written its ready file (its consumer owns its partitions)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for role, process in processes.items():
            if process.poll() is not None:
                log = run_dir / f"{role}.log"
                raise RuntimeError(
                    f"floor {role} exited with {process.returncode} while starting; {log}:\n{_tail(log)}"
                )
        if all((run_dir / f"{role}.ready").exists() for role in processes):
            return
        if time.monotonic() > deadline:
            waiting = [role for role in processes if not (run_dir / f"{role}.ready").exists()]
            raise RuntimeError(
                f"floor {', '.join(waiting)} not ready after {READY_TIMEOUT_S:.0f} s (logs in {run_dir})"
            )
        time.sleep(0.1)


def _stop(processes: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, SIGKILL what is left after ``STOP_TIMEOUT_S``."""
    for process in processes.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes.values():
        if process.poll() is None:  # only a group whose leader still runs: a reaped pid may be reused
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _prune_run_dirs(keep: int) -> None:
    """Remove the logs of earlier floors but the newest ``keep`` (their processes are gone: launch waits)."""
    runs = sorted((REPO_ROOT / ".run").glob("bench-floor-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for run_dir in runs[keep:]:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def launch(shared: Stack) -> Iterator[FloorTarget]:
    """Database ``bench_floor_<id>``, topics ``bench-floor-<id>.*`` and the four processes; all removed on exit."""
    env = shared.env()
    superuser, bootstrap_servers = env["DATABASE_URL"], env["KAFKA_BOOTSTRAP_SERVERS"]
    suffix = uuid.uuid4().hex[:8]
    prefix = f"bench-floor-{suffix}"
    database = f"bench_floor_{suffix}"
    dsn = f"{superuser.rsplit('/', 1)[0]}/{database}"
    _prune_run_dirs(keep=3)
    run_dir = REPO_ROOT / ".run" / prefix
    run_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        asyncio.run(_admin(superuser, f'CREATE DATABASE "{database}"'))
        asyncio.run(_create_schemas(dsn))
        partitions = shared.settings.services.topic_partitions
        asyncio.run(asyncio.wait_for(_create_topics(bootstrap_servers, prefix, partitions), ADMIN_TIMEOUT_S))
        for role in ROLES:
            with (run_dir / f"{role}.log").open("wb") as log:
                processes[role] = subprocess.Popen(
                    [
                        sys.executable,
                        str(PROCESS),
                        role,
                        f"--prefix={prefix}",
                        f"--bootstrap-servers={bootstrap_servers}",
                        f"--ready={run_dir / f'{role}.ready'}",
                    ],
                    env={**os.environ, "FLOOR_DSN": dsn, "PYTHONUNBUFFERED": "1"},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        _wait_ready(processes, run_dir)
        yield FloorTarget(dsn, prefix, bootstrap_servers, processes)
    finally:
        try:
            _stop(processes)
        finally:
            try:
                asyncio.run(_admin(superuser, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            finally:
                asyncio.run(asyncio.wait_for(_delete_topics_and_groups(bootstrap_servers, prefix), ADMIN_TIMEOUT_S))
