"""One process of the floor: a consumer whose every record is one PostgreSQL transaction, and an outbox relay.

The floor (:mod:`floor`) is the platform's Kafka path with the business logic taken out, run as four
processes like the platform's: ``orchestrator``, ``inventory``, ``payment`` and ``order``. A saga is seven
records; each record is a hop that costs what a hop of the platform costs, and no more:

- the consumer applies the record in ONE transaction: its inbox row (a redelivery finds it and changes
  nothing), the process's state row, and the next record in the outbox — here one statement, so one round
  trip, where the platform's kit sends a dozen;
- the relay publishes committed outbox rows (``acks=all``, idempotent producer, like the kit's) and marks
  them published in a second transaction, one per batch, as the kit's relay does;
- the consumer commits its Kafka offsets after the database commits (every 100 ms at most, where the kit
  commits after every record; the inbox makes a redelivery after a crash harmless).

The relay is woken in-process by the consumer (no ``LISTEN``/``NOTIFY``, no polling); rows left unpublished
by a crash are published again at start. Partitions are applied concurrently, records of a partition in
order. A record is ``saga id (16 bytes) + step (1 byte)``, keyed by the saga id:

====  ================================  ==========================================================
step  topic                             applied by
====  ================================  ==========================================================
0     ``checkout-events``               orchestrator: inbox, saga row (created_at), outbox step 1
1     ``inventory-command``             inventory: inbox, state row, outbox step 2
2     ``checkout-events``               orchestrator: inbox, saga row, outbox step 3
3     ``payment-command``               payment: inbox, state row, outbox step 4
4     ``checkout-events``               orchestrator: inbox, saga row, outbox step 5
5     ``order-command``                 order: inbox, state row, outbox step 6
6     ``checkout-events``               orchestrator: inbox, saga row COMPLETED (finished_at)
====  ================================  ==========================================================

    python floor_process.py <role> --prefix bench-floor-1234 --bootstrap-servers 127.0.0.1:19092 --ready PATH

with the database DSN in ``FLOOR_DSN``. Run by :func:`floor.launch`; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

log = logging.getLogger("floor")

ORCHESTRATOR: Final = "orchestrator"
PARTICIPANTS: Final = {"inventory": "inventory-command", "payment": "payment-command", "order": "order-command"}
"""Participant -> the topic of its commands."""
ROLES: Final = (ORCHESTRATOR, *PARTICIPANTS)
SCHEMAS: Final = {ORCHESTRATOR: "orchestrator", "inventory": "inventory", "payment": "payment", "order": "orders"}
"""Role -> its schema (the platform's names: ``order`` is a reserved word)."""
EVENTS: Final = "checkout-events"
TOPICS: Final = (EVENTS, *PARTICIPANTS.values(), "dlq")
"""The platform's five topics (the dead-letter topic stays empty here)."""
LAST_STEP: Final = 6
NEXT_COMMAND: Final = {0: "inventory-command", 2: "payment-command", 4: "order-command"}
"""Orchestrator: the step it applied -> where the next command goes."""
RELAY_BATCH: Final = 100
"""Rows per relay transaction: the kit's ``OUTBOX__BATCH_SIZE`` default."""
POOL_SIZE: Final = 6
"""A connection per partition's worker (three) and the relay's, with room to spare."""
COMMIT_INTERVAL_S: Final = 0.1
"""Offsets are committed this often at most, not per record: a record applied but not yet committed is
delivered again after a crash, and its inbox row makes that a no-op (the kit commits after every record)."""
MAX_QUEUED: Final = 1_000
"""Records of a partition fetched but not yet applied before the partition is paused."""


def schema_ddl(role: str) -> str:
    """The role's schema: inbox, state, outbox (the tables each platform service has for its hop)."""
    state = (
        "CREATE TABLE sagas (saga_id uuid PRIMARY KEY, step smallint NOT NULL, state text NOT NULL, "
        "created_at timestamptz NOT NULL, finished_at timestamptz)"
        if role == ORCHESTRATOR
        else "CREATE TABLE state (saga_id uuid PRIMARY KEY, step smallint NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return f"""
        CREATE SCHEMA {SCHEMAS[role]};
        SET search_path TO {SCHEMAS[role]};
        CREATE TABLE inbox (saga_id uuid NOT NULL, step smallint NOT NULL,
                            processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (saga_id, step));
        {state};
        CREATE TABLE outbox (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, topic text NOT NULL,
                             key bytea NOT NULL, payload bytea NOT NULL, published_at timestamptz);
        RESET search_path;
    """


# One statement per hop: data-modifying CTEs all run, in one implicit transaction (one commit); the state row
# and the outbox row are written only if the inbox row is new (``FROM inbox`` is empty on a redelivery).
START: Final = """
    WITH inbox AS (INSERT INTO inbox (saga_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING saga_id),
    saga AS (INSERT INTO sagas (saga_id, step, state, created_at)
             SELECT saga_id, $2, 'RUNNING', now() FROM inbox ON CONFLICT DO NOTHING),
    out AS (INSERT INTO outbox (topic, key, payload) SELECT $3, $4, $5 FROM inbox RETURNING seq)
    SELECT seq FROM out
"""
MOVE: Final = """
    WITH inbox AS (INSERT INTO inbox (saga_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING saga_id),
    saga AS (UPDATE sagas SET step = $2 FROM inbox WHERE sagas.saga_id = inbox.saga_id),
    out AS (INSERT INTO outbox (topic, key, payload) SELECT $3, $4, $5 FROM inbox RETURNING seq)
    SELECT seq FROM out
"""
FINISH: Final = """
    WITH inbox AS (INSERT INTO inbox (saga_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING saga_id)
    UPDATE sagas SET step = $2, state = 'COMPLETED', finished_at = now()
    FROM inbox WHERE sagas.saga_id = inbox.saga_id
"""
APPLY: Final = """
    WITH inbox AS (INSERT INTO inbox (saga_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING saga_id),
    applied AS (INSERT INTO state (saga_id, step) SELECT saga_id, $2 FROM inbox ON CONFLICT DO NOTHING),
    out AS (INSERT INTO outbox (topic, key, payload) SELECT $3, $4, $5 FROM inbox RETURNING seq)
    SELECT seq FROM out
"""
MARK_PUBLISHED: Final = "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"
UNPUBLISHED: Final = "SELECT seq, topic, key, payload FROM outbox WHERE published_at IS NULL ORDER BY seq"


@dataclass(frozen=True)
class Row:
    """An outbox row on its way to Kafka."""

    seq: int
    topic: str
    key: bytes
    payload: bytes


class Relay:
    """Publishes committed outbox rows as they come and marks acknowledged ones published, a batch per transaction.

    Sending never waits for an earlier batch's acknowledgement or mark (the producer batches what is sent
    within its ``linger_ms``); marking is one transaction at a time, each for every row acknowledged while the
    previous one ran (up to ``RELAY_BATCH``), as the kit's relay marks what one pass sent. A row is marked only
    once Kafka acknowledged it.
    """

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self.pool = pool
        self.producer = producer
        self.queue: asyncio.Queue[Row] = asyncio.Queue()
        """Committed rows to send; a row is done once marked published."""
        self.acked: asyncio.Queue[int] = asyncio.Queue()
        """Sequence numbers of rows Kafka acknowledged, to mark."""
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Fails with the first error a send came back with."""

    async def recover(self) -> None:
        """Queue what a previous run committed but never marked published."""
        for record in await self.pool.fetch(UNPUBLISHED):
            self.queue.put_nowait(Row(record["seq"], record["topic"], record["key"], record["payload"]))

    async def send(self) -> None:
        while True:
            row = await self.queue.get()
            delivery = await self.producer.send(row.topic, row.payload, key=row.key)
            delivery.add_done_callback(functools.partial(self._delivered, row.seq))

    def _delivered(self, seq: int, delivery: asyncio.Future[Any]) -> None:
        error = asyncio.CancelledError() if delivery.cancelled() else delivery.exception()
        if error is None:
            self.acked.put_nowait(seq)
        elif not self.failed.done():
            self.failed.set_exception(error)

    async def mark(self) -> None:
        while True:
            seqs = [await self.acked.get()]
            while len(seqs) < RELAY_BATCH and not self.acked.empty():
                seqs.append(self.acked.get_nowait())
            await self.pool.execute(MARK_PUBLISHED, seqs)
            for _ in seqs:
                self.queue.task_done()

    async def drain(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) until every queued row is published and marked."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout_s)


class Hop:
    """Applies one consumed record in one transaction and hands the record it produces to the relay."""

    def __init__(self, role: str, prefix: str, pool: asyncpg.Pool, relay: Relay) -> None:
        self.role = role
        self.prefix = prefix
        self.pool = pool
        self.relay = relay

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def plan(self, step: int) -> tuple[str, str | None]:
        """The statement applying ``step`` and the topic of the record it produces (None: the saga ends)."""
        if self.role != ORCHESTRATOR:
            return APPLY, self.topic(EVENTS)
        if step == LAST_STEP:
            return FINISH, None
        return (START if step == 0 else MOVE), self.topic(NEXT_COMMAND[step])

    async def apply(self, connection: asyncpg.Connection, key: bytes, value: bytes) -> None:
        saga_id, step = uuid.UUID(bytes=value[:16]), value[16]
        statement, topic = self.plan(step)
        if topic is None:
            await connection.execute(statement, saga_id, step)
            return
        payload = value[:16] + bytes([step + 1])
        seq = await connection.fetchval(statement, saga_id, step, topic, key, payload)
        if seq is not None:  # None: a redelivery, applied before (its record was produced then)
            self.relay.queue.put_nowait(Row(seq, topic, key, payload))


def consumed_topic(role: str) -> str:
    return EVENTS if role == ORCHESTRATOR else PARTICIPANTS[role]


class Consumer(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Hands each partition's records to a worker of its own, and commits the offsets the workers reached.

    The fetch loop never waits for the database: it passes records on and fetches again, so the fetcher
    always has every partition in its next request (a partition left buffered for longer than aiokafka's
    ``prefetch_backoff`` is left out of the request in flight, and new records there wait for it: up to
    ``fetch_max_wait_ms``). A worker applies its partition's records in order on a connection of its own;
    a committer commits the offsets after the database commits, one commit in flight at a time.
    """

    def __init__(self, kafka: AIOKafkaConsumer, hop: Hop) -> None:
        self.kafka = kafka
        self.hop = hop
        self.assigned = asyncio.Event()
        """Set once the group gave this member its partitions."""
        self.queues: dict[TopicPartition, asyncio.Queue[Any]] = {}
        self.workers: dict[TopicPartition, asyncio.Task[None]] = {}
        self.applied: dict[TopicPartition, int] = {}
        """Next offset of each partition whose records before it are committed in the database."""
        self.progress = asyncio.Event()
        self.crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Fails with the error a worker died of."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:  # their next owner re-reads from the last committed offset; the inbox drops repeats
            worker = self.workers.pop(tp, None)
            if worker is not None:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            self.queues.pop(tp, None)
            self.applied.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.assigned.set()

    async def fetch(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            batch: dict[TopicPartition, list[Any]] = await self.kafka.getmany(timeout_ms=200)
            for tp, records in batch.items():
                queue = self.queues.get(tp)
                if queue is None:
                    queue = self.queues[tp] = asyncio.Queue()
                    self.workers[tp] = worker = asyncio.create_task(self.work(tp, queue), name=f"worker {tp}")
                    worker.add_done_callback(self._worker_done)
                for record in records:
                    queue.put_nowait(record)
                if queue.qsize() >= MAX_QUEUED:
                    self.kafka.pause(tp)  # the worker resumes it once it caught up

    async def work(self, tp: TopicPartition, queue: asyncio.Queue[Any]) -> None:
        async with self.hop.pool.acquire() as connection:
            while True:
                record = await queue.get()
                await self.hop.apply(connection, record.key, record.value)
                self.applied[tp] = record.offset + 1
                self.progress.set()
                if queue.empty() and tp in self.kafka.paused():
                    self.kafka.resume(tp)

    async def commit(self) -> None:
        """Commit the offsets the workers reached, at most every ``COMMIT_INTERVAL_S``."""
        committed: dict[TopicPartition, int] = {}
        while True:
            await self.progress.wait()
            self.progress.clear()
            offsets = {tp: offset for tp, offset in self.applied.items() if committed.get(tp) != offset}
            if offsets:
                await self.kafka.commit(offsets)
                committed.update(offsets)
            await asyncio.sleep(COMMIT_INTERVAL_S)

    def _worker_done(self, worker: asyncio.Task[None]) -> None:
        error = None if worker.cancelled() else worker.exception()
        if error is not None and not self.crashed.done():
            self.crashed.set_exception(error)


async def announce(consumer: Consumer, role: str, ready: Path) -> None:
    """Write the ready file once the consumer owns its partitions (the launcher waits for it)."""
    await consumer.assigned.wait()
    await asyncio.to_thread(ready.write_text, f"{os.getpid()}\n")
    log.info("%s ready: %s", role, sorted(map(str, consumer.kafka.assignment())))


async def keep_session(_connection: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    The default reset (``RESET ALL; UNLISTEN *; ...``, one statement) is a transaction of its own: a commit
    per hop that the platform does not make. Nothing here changes a session's state.
    """


async def serve(role: str, prefix: str, bootstrap_servers: str, dsn: str, ready: Path) -> None:
    """Run ``role`` until SIGTERM (or until its consumer or relay fails)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        server_settings={"search_path": SCHEMAS[role], "application_name": f"floor-{role}"},
        reset=keep_session,
    )
    # The kit's producer and consumer parameters (KafkaSettings.producer_params / consumer_params).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, client_id=f"floor-{role}", acks="all", enable_idempotence=True, linger_ms=2
    )
    kafka = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=f"floor-{role}",
        group_id=f"{prefix}.{role}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=200,
        session_timeout_ms=10_000,
        rebalance_timeout_ms=60_000,
        heartbeat_interval_ms=3_333,
    )
    relay = Relay(pool, producer)
    consumer = Consumer(kafka, Hop(role, prefix, pool, relay))
    kafka.subscribe([f"{prefix}.{consumed_topic(role)}"], listener=consumer)
    await producer.start()
    await kafka.start()
    await relay.recover()
    fetching = asyncio.create_task(consumer.fetch(stopping), name="fetch")
    tasks = [
        asyncio.create_task(relay.send(), name="relay send"),
        asyncio.create_task(relay.mark(), name="relay mark"),
        asyncio.create_task(consumer.commit(), name="commit"),
        asyncio.create_task(announce(consumer, role, ready), name="announce"),
    ]
    stop = asyncio.create_task(stopping.wait())
    watched: list[asyncio.Future[Any]] = [fetching, *tasks[:3], stop, consumer.crashed, relay.failed]
    try:
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a failed fetch, worker, send, mark or commit ends the process with its traceback
    finally:
        fetching.cancel()
        await asyncio.gather(fetching, return_exceptions=True)
        for worker in consumer.workers.values():
            worker.cancel()
        await asyncio.gather(*consumer.workers.values(), return_exceptions=True)
        await relay.drain(timeout_s=5)
        for task in (*tasks, stop):
            task.cancel()
        await asyncio.gather(*tasks, stop, return_exceptions=True)
        await kafka.stop()
        await producer.stop()
        await pool.close()
    log.info("%s stopped", role)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--prefix", required=True, help="topic prefix (and consumer group prefix)")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--ready", type=Path, required=True, help="file written once the consumer has partitions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.role, args.prefix, args.bootstrap_servers, os.environ["FLOOR_DSN"], args.ready))


if __name__ == "__main__":
    main()
