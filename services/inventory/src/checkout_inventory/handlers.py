"""Applying inventory commands: the effect and its reply, in the consumer's one transaction.

The :class:`TransactionalConsumer` calls :class:`InventoryCommands` with a session whose
transaction also holds the inbox row; the reply is enqueued in the outbox in that same
transaction, so a reservation and its InventoryReserved commit together or not at all.

Every command is idempotent per saga, not only per message: the inbox drops a redelivery of
the same ``ce_id``, and a command the orchestrator sends again (a new ``ce_id`` after its
deadline) finds the saga's reservation row and answers from it, with no second effect.
"""

from __future__ import annotations

import datetime as dt
import logging

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import events_pb2, types_pb2
from checkout_inventory import allocation
from checkout_inventory.allocation import Allocation
from checkout_inventory.commands import Release, Reserve, parse
from checkout_inventory.storage import reservations, stock
from checkout_inventory.storage.reservations import ReservationView
from checkout_inventory.storage.tables import FAILED, HELD
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import reason_value, reply_topic
from checkout_kit.outbox import enqueue
from checkout_kit.telemetry import inject_trace_headers
from checkout_kit.topics import Topics

log = logging.getLogger(__name__)


def _money(amount_minor: int, currency: str) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=amount_minor, currency=currency)


def reserved_event(view: ReservationView) -> events_pb2.InventoryReserved:
    """InventoryReserved for a held reservation (the same answer every time it is asked)."""
    row = view.reservation
    assert row.total_minor is not None  # a held reservation is priced
    assert row.currency is not None
    return events_pb2.InventoryReserved(
        saga_id=str(row.saga_id),
        reservation_id=str(row.id),
        items=[
            types_pb2.LineItem(
                sku=line.sku, quantity=line.quantity, unit_price=_money(line.unit_price_minor, line.currency)
            )
            for line in view.lines
        ],
        total=_money(row.total_minor, row.currency),
    )


def refused_event(view: ReservationView) -> events_pb2.InventoryReservationFailed:
    """InventoryReservationFailed for a refused or released reservation."""
    row = view.reservation
    if row.status == FAILED:
        return events_pb2.InventoryReservationFailed(
            saga_id=str(row.saga_id),
            reason=reason_value(row.failure_reason, types_pb2.FAILURE_CODE_INTERNAL),
            message=row.failure_message or "",
            skus=row.failed_skus or [],
        )
    why = row.failure_reason or "no reason given"
    when = f" at {row.released_at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}" if row.released_at else ""
    return events_pb2.InventoryReservationFailed(
        saga_id=str(row.saga_id),
        reason=reason_value(row.failure_reason, types_pb2.FAILURE_CODE_INTERNAL),
        message=f"saga {row.saga_id} was released ({why}){when}; a released saga reserves nothing",
    )


def answer(view: ReservationView) -> Message:
    """What ReserveInventory answers for a saga that already has a reservation row."""
    return reserved_event(view) if view.reservation.status == HELD else refused_event(view)


async def reserve(session: AsyncSession, command: Reserve) -> Message:
    """Hold every line or none; answer as before if the saga already has a reservation."""
    existing = await reservations.find(session, command.saga_id, lock=True)
    if existing is not None:
        log.info(
            "saga %s already has reservation %s (%s)",
            command.saga_id,
            existing.reservation.id,
            existing.reservation.status,
        )
        return answer(existing)
    levels = await stock.lock(session, (line.sku for line in command.lines))
    decision = allocation.allocate(command.lines, levels)
    if isinstance(decision, Allocation):
        await stock.hold(session, decision.lines)
        return reserved_event(await reservations.insert_held(session, command.saga_id, decision))
    log.info("saga %s: reservation refused: %s", command.saga_id, decision.message)
    return refused_event(await reservations.insert_failed(session, command.saga_id, decision))


async def release(session: AsyncSession, command: Release) -> events_pb2.InventoryReleased:
    """Give back what the saga holds; without a reservation, leave a tombstone refusing a late one."""
    view = await reservations.find(session, command.saga_id, lock=True)
    if view is None:
        view = await reservations.insert_tombstone(session, command.saga_id, command.reason)
        log.info("saga %s released before it reserved: tombstone %s", command.saga_id, view.reservation.id)
    elif view.reservation.status == HELD:
        await stock.give_back(session, [(line.sku, line.quantity) for line in view.lines])
        await reservations.mark_released(session, view.reservation, command.reason)
        log.info("saga %s: reservation %s released", command.saga_id, view.reservation.id)
    if command.reservation_id is not None and command.reservation_id != view.reservation.id:
        log.warning(
            "saga %s: ReleaseInventory names reservation %s but the saga's is %s; released by saga",
            command.saga_id,
            command.reservation_id,
            view.reservation.id,
        )
    return events_pb2.InventoryReleased(saga_id=str(command.saga_id), reservation_id=str(view.reservation.id))


class InventoryCommands:
    """The command consumer's handler: parse, apply, enqueue the reply (never commits)."""

    def __init__(self, topics: Topics, source: str, max_lines: int) -> None:
        self.topics = topics
        self.source = source
        """``ce_source`` of the replies (the service name)."""
        self.max_lines = max_lines

    async def __call__(self, envelope: Envelope, session: AsyncSession) -> None:
        """Apply one command in the consumer's transaction."""
        command = parse(envelope, max_lines=self.max_lines)
        topic = reply_topic(envelope, self.topics.checkout_events)
        reply = await reserve(session, command) if isinstance(command, Reserve) else await release(session, command)
        await enqueue(
            session,
            topic,
            Envelope(message=reply, saga_id=envelope.saga_id, source=self.source, trace_headers=inject_trace_headers()),
        )
