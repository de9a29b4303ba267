"""The transactional outbox: messages commit with the state change that causes them.

A handler never publishes to Kafka itself. It calls :func:`enqueue` in its own database
transaction, so the new state and the messages it implies are committed together or not at
all — no "saved but never sent", no "sent but rolled back". The :class:`OutboxRelay` then
moves committed rows to Kafka:

1. ``SELECT … WHERE published_at IS NULL ORDER BY seq LIMIT n FOR UPDATE SKIP LOCKED`` —
   several replicas of a service can run relays; each takes rows the others have not locked.
2. Enqueue every row with the idempotent ``acks=all`` producer and await every acknowledgement.
3. Mark the acknowledged rows ``published_at = now()`` in the same transaction, and commit.

A crash between 2 and 3 leaves the rows unpublished (the transaction rolls back with the
connection), and the next relay publishes them again: delivery is at-least-once, and consumers
deduplicate on ``ce_id`` with the inbox. A row is never deleted before it was acknowledged.

Ordering: rows are taken in insertion order (``seq``, an identity column — ``created_at`` is
the transaction's start time, equal for every row of one transaction), and the producer keeps
order per partition. When a row cannot be sent, later rows of the same topic in that batch are
held back, so a retry does not let them overtake it. Two relays of one service may interleave
rows of one saga only if both are in the backlog at once, which the saga's request/reply rhythm
avoids.

Wake-up: :func:`enqueue` issues ``NOTIFY`` on a channel named after the schema; PostgreSQL
delivers it at commit, to the relay's dedicated ``LISTEN`` connection, so a message leaves
within milliseconds of its commit. A poll every ``poll_interval_s`` covers a lost listener
connection or a missed notification; a batch that came back full is followed at once by
the next.

Retention: published rows are kept ``retention_s`` (an hour by default) to answer "what did
this service send, and when?" during an incident, then deleted in bounded chunks every
``cleanup_interval_s``; unpublished rows are never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    extract,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from checkout_kit.background import BackgroundLoop
from checkout_kit.backoff import Backoff, wait_or_stop
from checkout_kit.failpoints import OUTBOX_AFTER_PUBLISH, Failpoint, FailpointCrash, reach
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Delivery, Publisher
from checkout_kit.metrics import MessagingMetrics, PeriodicRefresh
from checkout_kit.settings import DatabaseSettings, OutboxSettings
from checkout_kit.telemetry import PublishSpan

log = logging.getLogger(__name__)

TABLE_NAME: Final = "outbox"
CLEANUP_CHUNK: Final = 10_000
"""Rows deleted per cleanup statement: keeps each delete (and its locks and WAL) short."""
MAX_ERROR_CHARS: Final = 1_000
LISTEN_RETRY_S: Final = 30.0
"""Pause before reconnecting a failed LISTEN connection (polling covers the gap)."""
BACKLOG_STOP_GRACE_S: Final = 1.0
"""How long stopping waits for a backlog query in flight before abandoning it."""


def outbox_table(metadata: MetaData) -> Table:
    """Define the outbox table in ``metadata`` (the service's, so its migrations create it).

    No schema is set: the connection's ``search_path`` puts it in the service's schema.
    """
    table = Table(
        TABLE_NAME,
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True, comment="Row id (not the message id: see headers)."),
        Column(
            "seq",
            BigInteger,
            Identity(always=True),
            nullable=False,
            comment="Insertion order; the relay publishes in this order.",
        ),
        Column("topic", String(249), nullable=False, comment="Kafka topic to publish to."),
        Column("key", Text, nullable=True, comment="Kafka record key (the saga id)."),
        Column("headers", JSONB, nullable=False, comment="Kafka record headers as [name, value] pairs."),
        Column("payload", LargeBinary, nullable=False, comment="Kafka record value (encoded message)."),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True, comment="Set once Kafka acknowledged it."),
        Column("attempts", Integer, nullable=False, server_default="0", comment="Publish attempts so far."),
        Column("last_error", Text, nullable=True, comment="Why the last failed attempt failed."),
        comment="Messages committed with the state change that caused them, waiting to be published.",
    )
    Index("ix_outbox_unpublished", table.c.seq, postgresql_where=table.c.published_at.is_(None))
    Index("ix_outbox_published_at", table.c.published_at, postgresql_where=table.c.published_at.is_not(None))
    return table


@cache
def _table() -> Table:
    """The table definition the queries below use (any schema: search_path decides)."""
    return outbox_table(MetaData())


@cache
def _enqueue_statement() -> Any:
    """``INSERT … RETURNING pg_notify(current_schema(), '')``: the row and its wake-up in one round trip.

    Built once: SQLAlchemy then reuses its compiled form and cache key instead of rebuilding both per message.
    """
    return insert(_table()).returning(func.pg_notify(func.current_schema(), ""))


async def enqueue(session: AsyncSession, topic: str, envelope: Envelope) -> None:
    """Add a message to the outbox in the caller's transaction; it is published after commit.

    The ``NOTIFY`` is transactional too: PostgreSQL delivers it only if, and when, the
    transaction commits, and folds repeats within one transaction into one.
    """
    await session.execute(
        _enqueue_statement(),
        {
            "id": uuid.uuid4(),
            "topic": topic,
            "key": envelope.saga_id,
            "headers": [[name, value.decode("utf-8")] for name, value in envelope.headers()],
            "payload": envelope.value(),
        },
    )


def notify_channel(settings: DatabaseSettings) -> str:
    """The channel :func:`enqueue` notifies: the schema name (``current_schema()``)."""
    return settings.db_schema


@dataclass(frozen=True)
class BatchResult:
    """What one relay batch did."""

    published: int
    """Rows acknowledged by Kafka and marked published."""
    failed: int
    """Rows that could not be sent (left unpublished, retried later)."""


@dataclass(frozen=True)
class Backlog:
    """Unpublished rows: how many, and how long the oldest has waited (0 when none)."""

    count: int
    oldest_age_s: float


class OutboxRelay(BackgroundLoop):
    """Publishes committed outbox rows to Kafka; started and stopped by the app's lifespan.

    ``failpoint`` is a test seam (see :mod:`checkout_kit.failpoints`), off unless given.
    ``listen=False`` disables the ``LISTEN`` connection (polling only). ``stop()`` finishes the
    batch in flight; an abandoned batch rolls back and is published again by the next relay
    (duplicates, which consumers drop, rather than losses).
    """

    in_flight_work = "its batch"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        database: DatabaseSettings,
        settings: OutboxSettings | None = None,
        *,
        application_name: str = "outbox-relay",
        listen: bool = True,
        failpoint: Failpoint | None = None,
        metrics: MessagingMetrics | None = None,
    ) -> None:
        super().__init__("the outbox relay", f"outbox-relay[{database.db_schema}]")
        self.sessions = sessions
        self.publisher = publisher
        self.database = database
        self.settings = settings or OutboxSettings()
        self.application_name = application_name
        self.listen = listen
        self.failpoint = failpoint
        self.metrics = metrics or MessagingMetrics.detached()
        """Published count, relay latency, backlog (the app's: ``MessagingMetrics.of``)."""
        self.backoff = Backoff(initial_s=0.2, max_s=self.settings.error_backoff_max_s)
        self._backlog_refresh: PeriodicRefresh | None = None
        self._wake = asyncio.Event()
        self._listener: Any = None
        self._listen_retry_at = 0.0

    # lifecycle hooks (see BackgroundLoop)

    async def _open(self) -> None:
        # Its own loop: a batch stuck on an unreachable broker must not freeze the backlog gauges.
        self._backlog_refresh = PeriodicRefresh(
            f"backlog of outbox-relay[{self.database.db_schema}]",
            self.refresh_backlog,
            self.settings.backlog_refresh_interval_s,
        )
        await self._backlog_refresh.start()

    def _interrupt(self) -> None:
        self._wake.set()

    async def _close(self) -> None:
        if self._backlog_refresh is not None:
            await self._backlog_refresh.stop(BACKLOG_STOP_GRACE_S)
        await self._close_listener()

    # the loop

    async def _run(self) -> None:
        failures = 0
        next_cleanup = time.monotonic() + self.settings.cleanup_interval_s
        while not self._stopping.is_set():
            await self._ensure_listening()
            self._wake.clear()  # notifications from now on wake the idle wait below
            try:
                result = await self.publish_batch()
                if time.monotonic() >= next_cleanup:
                    await self.delete_published(self.settings.retention_s)
                    next_cleanup = time.monotonic() + self.settings.cleanup_interval_s
            except FailpointCrash:
                raise  # the process "dies" here (BackgroundLoop records it)
            except Exception:
                failures += 1
                delay = self.backoff.delay(failures)
                log.exception("outbox relay batch failed (%d in a row); retrying in %.1fs", failures, delay)
                await wait_or_stop(self._stopping, delay)
                continue
            if result.failed:
                failures += 1
                await wait_or_stop(self._stopping, self.backoff.delay(failures))
                continue
            failures = 0
            if result.published >= self.settings.batch_size:
                continue  # more may be waiting: no pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval_s)

    async def publish_batch(self) -> BatchResult:
        """Publish up to ``batch_size`` unpublished rows, oldest first, in one transaction."""
        outbox = _table()
        async with self.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(
                        outbox.c.id,
                        outbox.c.topic,
                        outbox.c.key,
                        outbox.c.headers,
                        outbox.c.payload,
                        outbox.c.created_at,
                    )
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.seq)
                    .limit(self.settings.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return BatchResult(0, 0)
            errors = await self._send_all(rows)
            acked_at = time.time()
            await reach(self.failpoint, OUTBOX_AFTER_PUBLISH)
            delivered = [row for row, error in zip(rows, errors, strict=True) if error is None]
            published = [row.id for row in delivered]
            if published:
                await session.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(published))
                    .values(published_at=func.now(), attempts=outbox.c.attempts + 1, last_error=None)
                )
            failed = [(row, error) for row, error in zip(rows, errors, strict=True) if error is not None]
            for row, error in failed:
                await session.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(attempts=outbox.c.attempts + 1, last_error=_describe(error)[:MAX_ERROR_CHARS])
                )
            if failed:
                first_row, first_error = failed[0]
                log.warning(
                    "outbox: %d of %d rows not published (first: topic %s: %s); retrying",
                    len(failed),
                    len(rows),
                    first_row.topic,
                    _describe(first_error),
                )
        for row in delivered:  # committed as published: counted once, even if a crash re-sends it later
            self.metrics.published_row(row.topic, row.created_at, acked_at, _header(row.headers, "traceparent"))
        return BatchResult(len(published), len(failed))

    async def _send_all(self, rows: Sequence[Any]) -> list[BaseException | None]:
        """Enqueue every row, then await every acknowledgement; one outcome per row."""
        outcomes: list[BaseException | None] = [None] * len(rows)
        deliveries: dict[int, Delivery] = {}
        failed_topics: dict[str, BaseException] = {}
        for index, row in enumerate(rows):
            earlier = failed_topics.get(row.topic)
            if earlier is not None:
                outcomes[index] = RuntimeError(f"held back: an earlier row to this topic failed ({_describe(earlier)})")
                continue
            # A send span in the trace the row was written in (its stored traceparent), not the relay's.
            span = PublishSpan(row.topic, row.headers, row.key)
            try:
                deliveries[index] = await self.publisher.send_record(
                    row.topic,
                    key=row.key.encode() if row.key is not None else None,
                    value=row.payload,
                    headers=span.headers,
                )
            except Exception as error:
                span.failed(error)
                outcomes[index] = failed_topics[row.topic] = error
            else:
                deliveries[index].add_done_callback(span.delivered)
        results = await asyncio.gather(*deliveries.values(), return_exceptions=True)
        for index, result in zip(deliveries, results, strict=True):
            if isinstance(result, BaseException):
                outcomes[index] = result
        return outcomes

    # maintenance and observation

    async def delete_published(self, older_than_s: float) -> int:
        """Delete rows published more than ``older_than_s`` seconds ago; return how many."""
        outbox = _table()
        cutoff = func.now() - bindparam("retention", dt.timedelta(seconds=older_than_s), type_=Interval)
        deleted = 0
        while True:
            async with self.sessions() as session, session.begin():
                chunk = (
                    select(outbox.c.id)
                    .where(outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff)
                    .limit(CLEANUP_CHUNK)
                )
                result = await session.execute(delete(outbox).where(outbox.c.id.in_(chunk)))
                count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < CLEANUP_CHUNK or self._stopping.is_set():
                break
        if deleted:
            log.info("outbox: deleted %d rows published more than %.0fs ago", deleted, older_than_s)
        return deleted

    async def refresh_backlog(self) -> None:
        """Set the backlog gauges from :meth:`backlog` (run every ``backlog_refresh_interval_s``)."""
        backlog = await self.backlog()
        self.metrics.set_backlog(backlog.count, backlog.oldest_age_s)

    async def backlog(self) -> Backlog:
        """Unpublished rows and the age of the oldest (for the outbox backlog metrics).

        One aggregate over the rows ``ix_outbox_unpublished`` (partial: unpublished rows only)
        covers, so its cost follows the backlog — a handful of rows normally — never the
        published rows kept for the retention period.
        """
        outbox = _table()
        async with self.sessions() as session:
            count, age = (
                await session.execute(
                    select(func.count(), extract("epoch", func.now() - func.min(outbox.c.created_at))).where(
                        outbox.c.published_at.is_(None)
                    )
                )
            ).one()
        return Backlog(count=int(count), oldest_age_s=float(age or 0.0))

    # LISTEN

    async def _ensure_listening(self) -> None:
        """Open the LISTEN connection if it is missing or broken (at most every LISTEN_RETRY_S)."""
        if not self.listen:
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        if time.monotonic() < self._listen_retry_at:
            return
        await self._close_listener()
        dsn = "postgresql://" + self.database.url.get_secret_value().split("://", 1)[1]
        try:
            connection = await asyncpg.connect(
                dsn, timeout=10, server_settings={"application_name": f"{self.application_name} listener"}
            )
        except Exception as error:
            self._listen_retry_at = time.monotonic() + LISTEN_RETRY_S
            log.warning(
                "outbox: cannot LISTEN (%s); polling every %ss", _describe(error), self.settings.poll_interval_s
            )
            return
        try:
            await connection.add_listener(notify_channel(self.database), self._on_notify)
        except Exception as error:
            await connection.close()
            self._listen_retry_at = time.monotonic() + LISTEN_RETRY_S
            log.warning(
                "outbox: LISTEN failed (%s); polling every %ss", _describe(error), self.settings.poll_interval_s
            )
            return
        self._listener = connection

    def _on_notify(self, _connection: object, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            try:
                await listener.close(timeout=5)
            except Exception as error:
                log.debug("outbox: closing the LISTEN connection failed: %s", _describe(error))
                listener.terminate()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _header(headers: Sequence[Sequence[str]], name: str) -> str | None:
    """A header of a stored row (``[[name, value], ...]``), or None."""
    return next((value for key, value in headers if key == name), None)
