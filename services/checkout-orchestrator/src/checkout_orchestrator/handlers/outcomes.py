"""Writing what a rule decided: the saga row, its timeline, and its commands into the outbox.

Everything happens in the caller's transaction — the consumer's for a reply, the scanner's for
a deadline — so a saga's new state and the commands it implies commit together or not at all.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import commands_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.outbox import enqueue
from checkout_kit.telemetry import inject_trace_headers
from checkout_kit.topics import Topics
from checkout_orchestrator.domain.rules import Outcome
from checkout_orchestrator.metrics import SagaMetrics, Transition
from checkout_orchestrator.storage import sagas


def command_topic(topics: Topics, command: Message) -> str:
    """The participant topic a command goes to."""
    if isinstance(command, commands_pb2.ReserveInventory | commands_pb2.ReleaseInventory):
        return topics.inventory_command
    if isinstance(command, commands_pb2.ProcessPayment | commands_pb2.RefundPayment):
        return topics.payment_command
    if isinstance(command, commands_pb2.CreateOrder):
        return topics.order_command
    raise TypeError(f"no participant takes {type(command).__name__}")


class OutcomeWriter:
    """Stores outcomes and sends their commands, addressed so the replies come back to the saga."""

    def __init__(self, topics: Topics, source: str, *, metrics: SagaMetrics | None = None) -> None:
        self.topics = topics
        self.source = source
        """``ce_source`` of the commands (the service name)."""
        self.metrics = metrics or SagaMetrics.detached()
        """Counts what each stored outcome changed, once its transaction commits (the app's: ``SagaMetrics.of``)."""

    def envelope(self, saga_id: str, command: Message) -> Envelope:
        """A command's envelope: replies to ``<prefix>.checkout-events``, in the current trace."""
        return Envelope(
            message=command,
            saga_id=saga_id,
            source=self.source,
            reply_to=self.topics.checkout_events,
            trace_headers=inject_trace_headers(),
        )

    async def store_new(
        self, session: AsyncSession, outcome: Outcome, now: dt.datetime, *, trace_id: str | None = None
    ) -> bool:
        """Insert a started saga and send its first command; False if the saga existed already (nothing written)."""
        saga = outcome.saga
        saga.updated_at = now
        saga.trace_context = inject_trace_headers() or saga.trace_context  # where deadlines continue the trace
        if not await sagas.insert_new(session, saga, trace_id=trace_id):
            return False
        await sagas.append_steps(session, saga.saga_id, outcome.timeline)
        await self._send(session, outcome)
        self.metrics.count_at_commit(session, Transition.of(outcome, now))
        return True

    async def store_change(
        self, session: AsyncSession, outcome: Outcome, now: dt.datetime, *, reply: Message | None = None
    ) -> None:
        """Write a changed saga and send its commands (``reply``: the participant's reply it applies, if any).

        Raises :class:`~checkout_orchestrator.storage.sagas.SagaConflictError` if the saga changed since it was read.
        """
        outcome.saga.updated_at = now
        outcome.saga.trace_context = inject_trace_headers() or outcome.saga.trace_context
        await sagas.save(session, outcome.saga)
        await sagas.append_steps(session, outcome.saga.saga_id, outcome.timeline)
        await self._send(session, outcome)
        self.metrics.count_at_commit(session, Transition.of(outcome, now, reply))

    async def _send(self, session: AsyncSession, outcome: Outcome) -> None:
        for command in outcome.commands:
            await enqueue(session, command_topic(self.topics, command), self.envelope(outcome.saga.saga_id, command))
