"""The transactional consumer: one record, one database transaction, then its offset.

For each record, in order within its partition:

1. Decode it (:meth:`Envelope.from_record`). A record that can never be decoded — or that is
   larger than ``KafkaSettings.max_message_bytes`` (``oversized``, refused before any parsing) —
   goes to the dead-letter topic, its offset is committed, and the partition moves on.
2. In ONE database transaction: insert ``(consumer, ce_id)`` into the inbox; if that is the
   first delivery, run the handler, which writes its effects and enqueues its outgoing
   messages (the outbox) in the same session. Commit.
3. Only then may the Kafka offset (``offset + 1``) be committed.

Partitions of a fetched batch are worked on concurrently (one task each, records in order within
each), so a service with several partitions overlaps its database round trips; each partition's
offset is committed once, after its last record of the batch (one OffsetCommit per partition and
batch, not one per record). A crash between a database commit and the offset commit redelivers
the record; the inbox row makes the second delivery a no-op, so effects happen exactly once. Never
the other way round: an offset is never committed for a record whose effects did not commit (or
that did not reach the DLQ).

Failures:

- The handler raises :class:`~checkout_kit.messaging.InvalidMessageError` (or any
  :class:`PoisonMessageError`): roll back, dead-letter with its reason, move on.
- The handler raises anything else: roll back, wait (exponential backoff) and try the same
  record again — never skipping ahead — up to ``handler_max_attempts`` times, then
  dead-letter it with reason ``handler-failed``.
- The database or the network is down (connection errors, PostgreSQL shutting down or
  refusing connections): the same retry, without a bound — an outage must not fill the DLQ
  with good messages. Publishing to the DLQ failing is treated the same way.

Rebalances: the partitions' revocation waits for every record in flight to finish, commits the
offsets of every finished record, and invalidates the rest of the fetched batch (the new owner,
maybe this one again, resumes from the committed offsets); offsets are committed only for
partitions still assigned. ``stop()`` finishes the records in flight, commits their offsets and
leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from checkout_kit.background import BackgroundLoop
from checkout_kit.backoff import Backoff, wait_or_stop
from checkout_kit.failpoints import CONSUMER_AFTER_DB_COMMIT, Failpoint, FailpointCrash, reach
from checkout_kit.inbox import first_delivery
from checkout_kit.messaging.codec import PoisonMessageError
from checkout_kit.messaging.dead_letters import DeadLetters
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.metrics import DEAD_LETTERED, DUPLICATE, FAILED, PROCESSED, MessagingMetrics, PeriodicRefresh
from checkout_kit.settings import KafkaSettings
from checkout_kit.telemetry import consume_span, trace_exemplar
from checkout_kit.topics import Topics

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, AsyncSession], Awaitable[None]]
"""Applies one message: writes its effects (and enqueues outgoing messages) in the session given.

The handler must not commit: the consumer commits once the inbox row and the effects are in.
"""

HANDLER_FAILED: Final = "handler-failed"
"""``dlq_reason`` of a record whose handler kept failing for ``handler_max_attempts`` tries."""
LAG_STOP_GRACE_S: Final = 1.0
"""How long stopping waits for a lag measurement in flight (a broker round trip) before abandoning it."""
OUTAGE_SQLSTATES: Final = ("08", "57P01", "57P02", "57P03", "53300")
"""SQLSTATEs meaning "the database is unreachable or going away", not "this message is bad":
connection exceptions (class 08), admin/crash shutdown, cannot connect now, too many connections."""


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says a dependency is unreachable (retry without bound), not that the message is bad."""
    seen: BaseException | None = error
    for _ in range(8):  # the cause chain: SQLAlchemy wraps the adapter's error, which wraps asyncpg's
        if seen is None:
            return False
        if isinstance(seen, OSError):  # refused, reset, timed out (TimeoutError is an OSError)
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        sqlstate = getattr(seen, "sqlstate", None) or getattr(getattr(seen, "orig", None), "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(OUTAGE_SQLSTATES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _InFlight:
    """Records in flight (any number, one per partition) and the revocation that must wait for them all.

    A record enters with :meth:`record`; :meth:`exclusive` waits until none is in flight and keeps new
    ones out until it is done (they then see the new generation and give up).
    """

    def __init__(self) -> None:
        self._count = 0
        self._exclusive = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def record(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._count += 1
        try:
            yield
        finally:
            async with self._changed:
                self._count -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            await self._changed.wait_for(lambda: self._count == 0)
        try:
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._changed.notify_all()


class _RevocationBarrier(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Makes a rebalance wait for the record in flight, then invalidates the fetched batch."""

    def __init__(self, consumer: TransactionalConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._consumer._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        log.info("consumer %s assigned %s", self._consumer.group_id, sorted(map(str, assigned)))


class TransactionalConsumer(BackgroundLoop):
    """Consumes ``topics`` as ``group_id``, applying each record with ``handler`` exactly once.

    ``dead_letter_topic`` defaults to ``<prefix>.dlq``; ``inbox_consumer`` (the inbox's consumer
    name) defaults to ``group_id``. ``failpoint`` is a test seam (see
    :mod:`checkout_kit.failpoints`), off unless given. ``stop()`` finishes the record in
    flight, commits its offset and leaves the group; after ``grace_s`` the record is abandoned
    (its transaction rolls back, its offset stays uncommitted, the next owner gets it again).
    """

    in_flight_work = "the records in flight"

    def __init__(
        self,
        topics: Sequence[str],
        group_id: str,
        handler: Handler,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        settings: KafkaSettings,
        service_name: str,
        *,
        dead_letter_topic: str | None = None,
        inbox_consumer: str | None = None,
        poll_timeout_ms: int = 1_000,
        failpoint: Failpoint | None = None,
        metrics: MessagingMetrics | None = None,
    ) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        super().__init__(f"consumer {group_id}", f"consumer[{group_id}]")
        self.topics = tuple(topics)
        self.group_id = group_id
        self.handler = handler
        self.sessions = sessions
        self.settings = settings
        self.service_name = service_name
        self.inbox_consumer = inbox_consumer or group_id
        self.metrics = metrics or MessagingMetrics.detached()
        """Records consumed by outcome, handling time, lag and dead letters (the app's: ``MessagingMetrics.of``)."""
        self.dead_letters = DeadLetters(
            publisher, dead_letter_topic or Topics(settings.topic_prefix).dlq, group_id, metrics=self.metrics
        )
        self.poll_timeout_ms = poll_timeout_ms
        self.failpoint = failpoint
        self.backoff = Backoff(
            initial_s=settings.retry_backoff_initial_ms / 1000, max_s=settings.retry_backoff_max_ms / 1000
        )
        self._kafka: Any = None
        self._in_flight = _InFlight()
        """Entered while a record is being applied; revocation waits for every record in flight."""
        self._done: dict[Any, int] = {}
        """Partition -> offset after its last finished record, not yet committed to Kafka."""
        self._generation = 0
        """Bumped at every revocation: a batch fetched under an older generation is abandoned."""
        self._polling = False
        self._committed: dict[Any, int] = {}
        """Committed offset of each owned partition (by this member, or found at assignment): the lag's base."""
        self._lag: PeriodicRefresh | None = None
        self._lag_reported: set[Any] = set()

    # lifecycle hooks (see BackgroundLoop)

    async def _open(self) -> None:
        """Join the group; raise if Kafka cannot be reached (the consumer then did not start)."""
        kafka = AIOKafkaConsumer(**self.settings.consumer_params(self.service_name, self.group_id))
        kafka.subscribe(list(self.topics), listener=_RevocationBarrier(self))
        try:
            await kafka.start()
        except BaseException:
            await kafka.stop()
            raise
        self._kafka = kafka
        self._lag = PeriodicRefresh(
            f"lag of consumer {self.group_id}", self._measure_lag, self.settings.lag_refresh_interval_s
        )
        await self._lag.start()

    def _interrupt(self) -> None:
        if self._polling and self._task is not None:
            self._task.cancel()  # idle in a fetch: nothing is in flight

    async def _close(self) -> None:
        if self._lag is not None:
            await self._lag.stop(LAG_STOP_GRACE_S)
            self.metrics.set_lag({}, dropped=[(tp.topic, tp.partition) for tp in self._lag_reported])
            self._lag_reported = set()
        if self._kafka is not None:
            if self.crash is None:  # records finished before a stop's grace ran out: commit them
                try:
                    await self._commit_done()
                except Exception as error:
                    log.warning("consumer %s: final offset commit failed (%s)", self.group_id, _describe(error))
            await self._kafka.stop()

    # the loop

    async def _run(self) -> None:
        fetch_failures = 0
        unexpected_failures = 0
        while not self._stopping.is_set():
            self._polling = True
            try:
                batch: Mapping[Any, list[Any]] = await self._kafka.getmany(timeout_ms=self.poll_timeout_ms)
            except Exception as error:  # nothing was handed out yet: retrying cannot skip a record
                fetch_failures += 1
                delay = self.backoff.delay(fetch_failures)
                log.warning("consumer %s: fetch failed (%s); retrying in %.1fs", self.group_id, error, delay)
                await wait_or_stop(self._stopping, delay)
                continue
            finally:
                self._polling = False
            fetch_failures = 0
            try:
                await self._process_batch(batch)
            except FailpointCrash:
                raise  # the process "dies" here (BackgroundLoop records it)
            except Exception:
                unexpected_failures += 1
                log.exception(
                    "consumer %s: unexpected error; re-reading from the first unfinished record", self.group_id
                )
                await wait_or_stop(self._stopping, self.backoff.delay(unexpected_failures))
            else:
                unexpected_failures = 0

    async def _process_batch(self, batch: Mapping[Any, list[Any]]) -> None:
        """Each partition's records in order, partitions concurrently; then commit their offsets."""
        generation = self._generation
        chunks = [(tp, records) for tp, records in batch.items() if records]
        if len(chunks) == 1:
            outcomes: Sequence[BaseException | None] = [await self._process_partition(*chunks[0], generation)]
        else:
            outcomes = await asyncio.gather(
                *(self._process_partition(tp, records, generation) for tp, records in chunks), return_exceptions=True
            )
        for outcome in outcomes:
            if isinstance(outcome, FailpointCrash):
                raise outcome  # the process "dies" here: nothing more reaches Kafka
        await self._commit_done()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _process_partition(self, tp: Any, records: list[Any], generation: int) -> BaseException | None:
        """One partition's records of a batch, in order; returns (does not raise) what went wrong.

        Never skips ahead: after an unexpected error the partition is put back to its first unfinished
        record (if this member still owns it), and the error is returned for the loop to report.
        """
        next_offset = records[0].offset
        try:
            for record in records:
                if self._stopping.is_set() or not await self._process(record, generation):
                    return None  # stopping, or the partitions were revoked: drop the rest of the batch
                next_offset = record.offset + 1
        except BaseException as error:
            if generation == self._generation and tp in self._kafka.assignment():
                self._kafka.seek(tp, next_offset)
            if isinstance(error, Exception):
                return error
            raise
        return None

    async def _process(self, record: Any, generation: int) -> bool:
        """Apply one record until it is done (True) or abandoned for a stop or rebalance (False)."""
        tp = TopicPartition(record.topic, record.partition)
        handler_failures = 0
        outage_failures = 0
        dead_letter: tuple[str, str] | None = None
        while True:
            if self._stopping.is_set() and (handler_failures or outage_failures):
                return False  # stopping while retrying: the next owner gets the record
            if generation != self._generation:
                return False
            async with self._in_flight.record():
                if generation != self._generation or tp not in self._kafka.assignment():
                    return False
                if dead_letter is None:
                    try:
                        dead_letter = await self._apply(record)
                    except Exception as error:
                        self.metrics.consumed_record(record.topic, FAILED)
                        if is_outage(error):
                            outage_failures += 1
                            log.warning(
                                "consumer %s: %s[%d]@%d waits for a dependency (%s)",
                                self.group_id,
                                record.topic,
                                record.partition,
                                record.offset,
                                _describe(error),
                            )
                        else:
                            handler_failures += 1
                            log.warning(
                                "consumer %s: handler failed on %s[%d]@%d (attempt %d of %d)",
                                self.group_id,
                                record.topic,
                                record.partition,
                                record.offset,
                                handler_failures,
                                self.settings.handler_max_attempts,
                                exc_info=True,
                            )
                            if handler_failures >= self.settings.handler_max_attempts:
                                dead_letter = (HANDLER_FAILED, _describe(error))
                    else:
                        if dead_letter is None:
                            await reach(self.failpoint, CONSUMER_AFTER_DB_COMMIT)
                            self._done[tp] = record.offset + 1
                            return True
                if dead_letter is not None:
                    try:
                        await self.dead_letters.send(record, *dead_letter)
                    except Exception as error:
                        outage_failures += 1
                        log.warning("consumer %s: cannot reach the DLQ (%s)", self.group_id, _describe(error))
                    else:
                        self.metrics.consumed_record(record.topic, DEAD_LETTERED)
                        self._done[tp] = record.offset + 1
                        return True
            await wait_or_stop(self._stopping, self.backoff.delay(max(handler_failures, outage_failures)))

    async def _apply(self, record: Any) -> tuple[str, str] | None:
        """Run the record's transaction; return ``(reason, detail)`` if it must be dead-lettered.

        Raises whatever a retry might fix (the transaction is rolled back). Counts the record
        ``processed`` or ``duplicate`` once its transaction committed, with the time it took.
        """
        started = time.perf_counter()
        try:
            envelope = Envelope.from_record(
                record.key, record.value, record.headers, max_bytes=self.settings.max_message_bytes
            )
        except PoisonMessageError as poison:
            return poison.reason, poison.detail
        with consume_span(
            envelope, record.topic, consumer_group=self.group_id, partition=record.partition, offset=record.offset
        ):
            try:
                async with self.sessions() as session, session.begin():
                    first = await first_delivery(session, self.inbox_consumer, envelope.id)
                    if first:
                        await self.handler(envelope, session)
                    else:
                        log.info(
                            "consumer %s: %s %s already applied; skipping the redelivery",
                            self.group_id,
                            envelope.type,
                            envelope.id,
                        )
            except PoisonMessageError as invalid:
                return invalid.reason, invalid.detail
            self.metrics.consumed_record(
                record.topic, PROCESSED if first else DUPLICATE, time.perf_counter() - started, trace_exemplar()
            )
        return None

    async def _commit_done(self, partitions: Iterable[Any] | None = None) -> None:
        """Commit the offsets of the finished records (of ``partitions``, default all) this member still owns.

        One OffsetCommit for them all. A failed commit is logged, not retried: the next commit of the
        partition covers it, and if none comes the records are redelivered and the inbox makes them no-ops.
        """
        wanted = set(self._done) if partitions is None else set(partitions) & set(self._done)
        if not wanted:
            return
        offsets = {tp: self._done.pop(tp) for tp in wanted}
        assigned = self._kafka.assignment()
        lost = [tp for tp in offsets if tp not in assigned]
        for tp in lost:
            log.info("consumer %s: %s was revoked; its new owner re-reads from the last commit", self.group_id, tp)
            del offsets[tp]
        if not offsets:
            return
        try:
            await self._kafka.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as error:
            log.warning(
                "consumer %s: offset commit of %s failed (%s); a redelivery may follow",
                self.group_id,
                sorted(map(str, offsets)),
                error,
            )
        else:
            self._committed.update(offsets)

    async def _measure_lag(self) -> None:
        """Set ``checkout_consumer_lag`` of every partition this member owns; forget those it lost.

        Lag = the partition's end offset minus its *committed* offset, not the fetch position:
        offsets are committed after the database commit, so a record fetched (or being handled)
        is not done until then, and is delivered again if the process dies first. The end offsets
        come from one ListOffsets request (under read_committed, the last stable offset); the
        committed offsets are the ones this member committed, or the group's as found with one
        OffsetFetch when a partition is first measured after its assignment (the partition's first
        offset when the group never committed there). A measurement overtaken by a rebalance is
        dropped; the next one reports the new assignment.
        """
        kafka = self._kafka
        generation = self._generation
        owned = set(kafka.assignment())
        lags: dict[tuple[str, int], int] = {}
        if owned:
            ends = await kafka.end_offsets(sorted(owned))
            for tp in owned:
                committed = self._committed.get(tp)
                if committed is None:
                    committed = await kafka.committed(tp)
                    if committed is None:
                        committed = (await kafka.beginning_offsets([tp]))[tp]
                    if generation != self._generation:
                        return
                    committed = self._committed.setdefault(tp, committed)  # a commit meanwhile wins
                lags[(tp.topic, tp.partition)] = max(0, ends[tp] - committed)
        if generation != self._generation or set(kafka.assignment()) != owned:
            return
        self.metrics.set_lag(lags, dropped=[(tp.topic, tp.partition) for tp in self._lag_reported - owned])
        self._lag_reported = owned

    async def _on_revoked(self, revoked: set[Any]) -> None:
        async with self._in_flight.exclusive():  # wait for the records in flight, then commit their offsets
            await self._commit_done()
            self._generation += 1
            for tp in revoked:  # its next owner commits from now on: ask the group again if it comes back
                self._committed.pop(tp, None)
        log.info("consumer %s: revoked %s", self.group_id, sorted(map(str, revoked)))
