"""The consumer's handler of ``<prefix>.checkout-events``: CheckoutInitiated starts a saga, replies move it.

It runs inside the :class:`~checkout_kit.messaging.consumer.TransactionalConsumer`'s transaction
(inbox row included), so a record's effects — the saga's change, its timeline, the commands it
sends — commit once, together, before the offset is committed.

What cannot be processed goes to the dead-letter topic, never silently dropped:

- a reply naming a saga this orchestrator never started (``unknown-saga``);
- a command published to the events topic by mistake (``unexpected-command``): the participants
  read their own command topics, so acting on it or ignoring it would both hide the mistake.

A second CheckoutInitiated for an existing saga (a gateway retry with a new ``ce_id``) is a
no-op; so is a reply that does not fit the saga's state (the rules decide, e.g. a duplicate).
A :class:`~checkout_orchestrator.storage.sagas.SagaConflictError` propagates: the consumer
rolls back and applies the record again on a fresh read.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import commands_pb2, events_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.errors import InvalidMessageError
from checkout_orchestrator.domain import rules
from checkout_orchestrator.handlers.outcomes import OutcomeWriter
from checkout_orchestrator.handlers.spans import label_event, transition_span
from checkout_orchestrator.storage import sagas

log = logging.getLogger(__name__)

UNKNOWN_SAGA: Final = "unknown-saga"
"""``dlq_reason`` of a reply for a saga that does not exist here."""
UNEXPECTED_COMMAND: Final = "unexpected-command"
"""``dlq_reason`` of a command found on the events topic."""
UNEXPECTED_TYPE: Final = "unexpected-type"
"""``dlq_reason`` of any other message type on the events topic."""
REPLIES: Final = (
    events_pb2.InventoryReserved,
    events_pb2.InventoryReservationFailed,
    events_pb2.InventoryReleased,
    events_pb2.PaymentProcessed,
    events_pb2.PaymentFailed,
    events_pb2.PaymentRefunded,
    events_pb2.OrderCreated,
    events_pb2.OrderCreationFailed,
)
"""The participants' replies the rules understand."""
COMMANDS: Final = (
    commands_pb2.ReserveInventory,
    commands_pb2.ReleaseInventory,
    commands_pb2.ProcessPayment,
    commands_pb2.RefundPayment,
    commands_pb2.CreateOrder,
)
"""The orchestrator's own commands: never expected on the events topic."""
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The wall clock, in UTC (deadlines are compared with it, by every replica)."""
    return dt.datetime.now(dt.UTC)


def trace_id_of(envelope: Envelope) -> str | None:
    """The W3C trace id the message travels in (its ``traceparent``), if any: the checkout's trace."""
    match = _TRACEPARENT.match(envelope.trace_headers.get("traceparent", ""))
    if match is None or set(match.group(1)) == {"0"}:
        return None
    return match.group(1)


class SagaEventHandler:
    """Applies one checkout event to its saga (the consumer's ``handler``)."""

    def __init__(self, writer: OutcomeWriter, policy: rules.Policy, *, clock: Clock = utc_now) -> None:
        self.writer = writer
        self.policy = policy
        self.clock = clock

    async def __call__(self, envelope: Envelope, session: AsyncSession) -> None:
        """Start or move the saga ``envelope`` names; raise :class:`InvalidMessageError` for what never can."""
        message = envelope.message
        if isinstance(message, events_pb2.CheckoutInitiated):
            await self._start(envelope, message, session)
        elif isinstance(message, REPLIES):
            await self._reply(envelope, session)
        elif isinstance(message, COMMANDS):
            raise InvalidMessageError(
                UNEXPECTED_COMMAND,
                f"{envelope.type} is a command; it belongs on a participant's command topic, "
                f"not on {self.writer.topics.checkout_events} (from {envelope.source})",
            )
        else:
            raise InvalidMessageError(UNEXPECTED_TYPE, f"the orchestrator does not handle {envelope.type}")

    async def _start(self, envelope: Envelope, initiated: events_pb2.CheckoutInitiated, session: AsyncSession) -> None:
        if not initiated.saga_id:  # the envelope checked the header's id; the payload may leave it out
            named = events_pb2.CheckoutInitiated()
            named.CopyFrom(initiated)
            named.saga_id = envelope.saga_id
            initiated = named
        now = self.clock()
        outcome = rules.start(initiated, now, self.policy)
        with transition_span(outcome) as span:
            started = await self.writer.store_new(session, outcome, now, trace_id=trace_id_of(envelope))
            if not started:
                span.update_name("saga exists")  # a repeated CheckoutInitiated: nothing was written
        if started:
            log.info("saga %s started: %s", envelope.saga_id, outcome.saga.state)
        else:
            log.info("saga %s exists already; CheckoutInitiated %s changes nothing", envelope.saga_id, envelope.id)

    async def _reply(self, envelope: Envelope, session: AsyncSession) -> None:
        label_event(envelope.message)
        saga = await sagas.load(session, envelope.saga_id)
        if saga is None:
            raise InvalidMessageError(
                UNKNOWN_SAGA,
                f"{envelope.type} {envelope.id} from {envelope.source} names saga {envelope.saga_id}, "
                "which this orchestrator never started",
            )
        now = self.clock()
        outcome = rules.on_event(saga, envelope.message, now, self.policy)
        if not outcome.changed:
            log.info("saga %s in %s: %s %s changes nothing", saga.saga_id, saga.state, envelope.type, envelope.id)
            return
        with transition_span(outcome):
            await self.writer.store_change(session, outcome, now, reply=envelope.message)
        if outcome.saga.state is not saga.state:
            log.info("saga %s: %s → %s on %s", saga.saga_id, saga.state, outcome.saga.state, envelope.type)
