"""The saga's Prometheus metrics: how many start, how they end, how long they and their steps take.

Counters and histograms follow *committed* changes only. A change is described when the writer
stores it (:meth:`Transition.of`, a pure function of the saga before and after) and recorded by
an ``after_commit`` hook of the transaction that stores it: a transaction rolled back — a version
conflict, a crash, a redelivery the inbox absorbs — counts nothing, so every transition counts
once under at-least-once delivery. The exemplar (the current span's trace) is taken when the
change is stored, inside the consumer's span.

- ``checkout_sagas_started_total``; ``…_completed_total``; ``…_failed_total{reason}`` and
  ``checkout_saga_duration_seconds{outcome}`` when a saga *first* reaches a terminal state (a
  late reply reopening a FAILED saga to undo a late effect does not count it again);
- ``checkout_sagas_compensated_total{reason}`` when a saga enters COMPENSATING for the first time;
- ``checkout_saga_step_duration_seconds{step}``: from a step's first command to the reply that
  answered it being applied (re-sends included: the wait the saga saw); steps given up on by a
  deadline have no reply and are not observed;
- ``checkout_sagas_in_flight{state}`` and ``checkout_sagas_stuck`` (non-terminal past the policy's
  :attr:`~checkout_orchestrator.domain.rules.Policy.deadline_budget`): database-wide gauges set by
  :class:`SagaGauges` from one aggregate query every ``refresh_interval_s``; every replica reports
  the same value.

``reason`` is the failure code without its ``FAILURE_CODE_`` prefix, in lower case
(``payment_declined``, ``out_of_stock``, ``deadline_exceeded`` …; ``unspecified`` if none).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import Message
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from checkout.v1 import events_pb2
from checkout_kit.metrics import PeriodicRefresh, instruments_of
from checkout_kit.telemetry import trace_exemplar
from checkout_orchestrator.domain.rules import Outcome, Policy
from checkout_orchestrator.domain.state import Saga, SagaState, Step
from checkout_orchestrator.storage import sagas

log = logging.getLogger(__name__)

COMPLETED: Final = "completed"
"""``outcome`` of a saga that reached COMPLETED."""
FAILED: Final = "failed"
"""``outcome`` of a saga that reached FAILED."""
UNSPECIFIED: Final = "unspecified"
"""``reason`` of a failure without a code."""
SAGA_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Seconds: a checkout takes a fraction of a second; deadlines and compensations stretch it to minutes."""
STEP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds: one participant round trip is milliseconds; a re-sent step takes its timeout more."""

REPLY_STEP: Final[Mapping[type[Message], Step]] = {
    events_pb2.InventoryReserved: Step.RESERVE_INVENTORY,
    events_pb2.InventoryReservationFailed: Step.RESERVE_INVENTORY,
    events_pb2.PaymentProcessed: Step.PROCESS_PAYMENT,
    events_pb2.PaymentFailed: Step.PROCESS_PAYMENT,
    events_pb2.OrderCreated: Step.CREATE_ORDER,
    events_pb2.OrderCreationFailed: Step.CREATE_ORDER,
    events_pb2.PaymentRefunded: Step.REFUND_PAYMENT,
    events_pb2.InventoryReleased: Step.RELEASE_INVENTORY,
}
"""The step each participant reply answers."""


def reason_label(failure_code: str | None) -> str:
    """``FAILURE_CODE_PAYMENT_DECLINED`` → ``payment_declined``; no code → ``unspecified``."""
    if not failure_code:
        return UNSPECIFIED
    return failure_code.removeprefix("FAILURE_CODE_").lower() or UNSPECIFIED


@dataclass(frozen=True)
class Transition:
    """What one stored change of a saga adds to the metrics (computed before it commits)."""

    started: bool = False
    compensation_reason: str | None = None
    """Set when the saga entered COMPENSATING for the first time."""
    outcome: str | None = None
    """``completed`` or ``failed`` when the saga reached a terminal state for the first time."""
    failure_reason: str | None = None
    duration_s: float | None = None
    """Start to terminal state, with :attr:`outcome`."""
    steps: tuple[tuple[Step, float], ...] = ()
    """Steps whose reply this change applied, with their latency."""

    @property
    def empty(self) -> bool:
        """Nothing to count."""
        return not (self.started or self.compensation_reason or self.outcome or self.steps)

    @classmethod
    def of(cls, outcome: Outcome, now: dt.datetime, reply: Message | None = None) -> Transition:
        """The metrics of storing ``outcome`` (``reply``: the participant's reply it applies, if any)."""
        before, after = outcome.previous, outcome.saga
        compensation_reason = None
        reopened = before is not None and before.finished_at is not None
        if (
            not reopened
            and (before is None or before.state is not SagaState.COMPENSATING)
            and any(entry.state is SagaState.COMPENSATING for entry in outcome.timeline)
        ):
            compensation_reason = reason_label(after.failure_code)
        finished = after.finished_at is not None and (before is None or before.finished_at is None)
        result, failure_reason, duration_s = None, None, None
        if finished and after.finished_at is not None:
            result = COMPLETED if after.state is SagaState.COMPLETED else FAILED
            failure_reason = reason_label(after.failure_code) if result == FAILED else None
            if after.created_at is not None:
                duration_s = max(0.0, (after.finished_at - after.created_at).total_seconds())
        return cls(
            started=before is None,
            compensation_reason=compensation_reason,
            outcome=result,
            failure_reason=failure_reason,
            duration_s=duration_s,
            steps=_answered(before, reply, now),
        )


def _answered(before: Saga | None, reply: Message | None, now: dt.datetime) -> tuple[tuple[Step, float], ...]:
    """The step ``reply`` answered, if the saga was waiting on it, with the time since its first command."""
    if before is None or reply is None:
        return ()
    step = REPLY_STEP.get(type(reply))
    if step is None or step not in before.pending:
        return ()  # late, duplicate or unexpected: not the answer the step was waiting for
    sent_at = before.step_sent_at.get(step)
    if sent_at is None:
        return ()  # sent before step_sent_at was recorded
    return ((step, max(0.0, (now - sent_at).total_seconds())),)


class SagaMetrics:
    """The saga instruments of one app; get them with :meth:`of` (one set per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter("checkout_sagas_started", "Sagas created.", registry=registry)
        self.completed = Counter("checkout_sagas_completed", "Sagas that reached COMPLETED.", registry=registry)
        self.failed = Counter(
            "checkout_sagas_failed", "Sagas that reached FAILED, by failure reason.", ("reason",), registry=registry
        )
        self.compensated = Counter(
            "checkout_sagas_compensated",
            "Sagas that entered COMPENSATING, by failure reason.",
            ("reason",),
            registry=registry,
        )
        self.duration = Histogram(
            "checkout_saga_duration_seconds",
            "Time from a saga's start to its terminal state, by outcome (completed, failed).",
            ("outcome",),
            buckets=SAGA_BUCKETS,
            registry=registry,
        )
        self.step_duration = Histogram(
            "checkout_saga_step_duration_seconds",
            "Time from a step's first command to its reply being applied, by step.",
            ("step",),
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "checkout_sagas_in_flight", "Sagas not yet terminal, by state.", ("state",), registry=registry
        )
        self.stuck = Gauge(
            "checkout_sagas_stuck",
            "Sagas not yet terminal although they started longer ago than their deadline budget.",
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> SagaMetrics:
        """The app's saga instruments in ``registry`` (created on first use)."""
        return instruments_of(registry, cls)

    @classmethod
    def detached(cls) -> SagaMetrics:
        """Instruments in a registry of their own, for a writer built without the app's."""
        return cls(CollectorRegistry())

    def count_at_commit(self, session: AsyncSession, transition: Transition) -> None:
        """Record ``transition`` once ``session``'s transaction commits (never if it rolls back)."""
        if transition.empty:
            return
        exemplar = trace_exemplar()

        def committed(_session: object) -> None:
            try:
                self.record(transition, exemplar)
            except Exception:  # the transaction did commit: a metrics bug must not make it look failed
                log.exception("saga metrics: could not record %s", transition)

        event.listen(session.sync_session, "after_commit", committed, once=True)

    def record(self, transition: Transition, exemplar: dict[str, str] | None = None) -> None:
        """Count a committed transition."""
        if transition.started:
            self.started.inc()
        if transition.compensation_reason is not None:
            self.compensated.labels(transition.compensation_reason).inc()
        if transition.outcome == COMPLETED:
            self.completed.inc()
        elif transition.outcome == FAILED:
            self.failed.labels(transition.failure_reason or UNSPECIFIED).inc()
        if transition.outcome is not None and transition.duration_s is not None:
            self.duration.labels(transition.outcome).observe(transition.duration_s, exemplar=exemplar)
        for step, seconds in transition.steps:
            self.step_duration.labels(step.value).observe(seconds, exemplar=exemplar)

    def set_in_flight(self, by_state: Mapping[SagaState, int], stuck: int) -> None:
        """The gauges' values from the database."""
        for state, count in by_state.items():
            self.in_flight.labels(state.value).set(count)
        self.stuck.set(stuck)


class SagaGauges(PeriodicRefresh):
    """Sets ``checkout_sagas_in_flight`` and ``checkout_sagas_stuck`` from the database every ``interval_s``.

    Stuck: not terminal although started longer ago than ``policy.deadline_budget``, compared on
    this process's clock (the one that stamped ``created_at``).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SagaMetrics,
        policy: Policy,
        interval_s: float,
    ) -> None:
        super().__init__("saga gauges", self.refresh_gauges, interval_s)
        self.sessions = sessions
        self.metrics = metrics
        self.policy = policy

    async def refresh_gauges(self) -> None:
        """One query, then the gauges."""
        async with self.sessions() as session:
            started_before = dt.datetime.now(dt.UTC) - self.policy.deadline_budget
            by_state, stuck = await sagas.in_flight(session, started_before=started_before)
        self.metrics.set_in_flight(by_state, stuck)
