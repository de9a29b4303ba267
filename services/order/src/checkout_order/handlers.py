"""Applying CreateOrder: the order (or its refusal) and the reply, in the consumer's one transaction.

The :class:`TransactionalConsumer` calls :class:`OrderCommands` with a session whose
transaction also holds the inbox row; the reply is enqueued in the outbox in that same
transaction, so an order and its OrderCreated commit together or not at all.

Idempotent per saga, not only per message: the inbox drops a redelivery of the same ``ce_id``,
and a CreateOrder the orchestrator sends again (a new ``ce_id`` after its deadline) finds the
saga's order — or its refusal — and answers from it, with no second order.
"""

from __future__ import annotations

import logging
from collections.abc import Set

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import reply_topic
from checkout_kit.outbox import enqueue
from checkout_kit.telemetry import inject_trace_headers
from checkout_kit.topics import Topics
from checkout_order.commands import CreateOrder, parse
from checkout_order.storage import orders
from checkout_order.storage.tables import OrderRefusalRow

log = logging.getLogger(__name__)


def refused_event(refusal: OrderRefusalRow) -> events_pb2.OrderCreationFailed:
    """OrderCreationFailed for a refused saga (the same answer every time it is asked)."""
    reason = (
        types_pb2.FailureCode.Value(refusal.reason)
        if refusal.reason in types_pb2.FailureCode.keys()  # noqa: SIM118 - an enum wrapper, not a dict
        else types_pb2.FAILURE_CODE_INTERNAL
    )
    return events_pb2.OrderCreationFailed(saga_id=str(refusal.saga_id), reason=reason, message=refusal.message)


async def create(session: AsyncSession, command: CreateOrder, rejected_customers: Set[str]) -> Message:
    """Create the saga's order once; refuse the rejected customers; answer as before on a retry."""
    existing = await orders.find(session, command.saga_id)
    if existing is not None:
        log.info("saga %s already has order %s", command.saga_id, existing.order.id)
        return events_pb2.OrderCreated(saga_id=str(command.saga_id), order_id=str(existing.order.id))
    refusal = await orders.find_refusal(session, command.saga_id)
    if refusal is not None:
        log.info("saga %s: its order was already refused", command.saga_id)
        return refused_event(refusal)
    if command.customer_id in rejected_customers:
        refusal = await orders.insert_refusal(
            session,
            command.saga_id,
            command.customer_id,
            types_pb2.FailureCode.Name(types_pb2.FAILURE_CODE_ORDER_REJECTED),
            f"orders of customer {command.customer_id} are rejected (REJECTED_CUSTOMERS)",
        )
        log.info("saga %s: order refused for customer %s", command.saga_id, command.customer_id)
        return refused_event(refusal)
    view = await orders.insert(session, command)
    log.info("saga %s: order %s created", command.saga_id, view.order.id)
    return events_pb2.OrderCreated(saga_id=str(command.saga_id), order_id=str(view.order.id))


class OrderCommands:
    """The command consumer's handler: parse, apply, enqueue the reply (never commits)."""

    def __init__(self, topics: Topics, source: str, rejected_customers: Set[str], max_lines: int) -> None:
        self.topics = topics
        self.source = source
        """``ce_source`` of the replies (the service name)."""
        self.rejected_customers = rejected_customers
        self.max_lines = max_lines

    async def __call__(self, envelope: Envelope, session: AsyncSession) -> None:
        """Apply one command in the consumer's transaction."""
        command = parse(envelope, max_lines=self.max_lines)
        topic = reply_topic(envelope, self.topics.checkout_events)
        reply = await create(session, command, self.rejected_customers)
        await enqueue(
            session,
            topic,
            Envelope(message=reply, saga_id=envelope.saga_id, source=self.source, trace_headers=inject_trace_headers()),
        )
