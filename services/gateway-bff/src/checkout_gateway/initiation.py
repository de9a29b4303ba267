"""Accepting a checkout: one row and one ``CheckoutInitiated`` message, committed together.

The gateway never publishes to Kafka while handling the request. It writes the ``checkouts``
row and the message into the kit's outbox in ONE transaction, answers 202 after the commit,
and the outbox relay publishes the message. So a checkout the client was told is accepted is
never lost (a crash after the commit still publishes it), and one the client was not told is
accepted never starts a saga (a crash before the commit leaves nothing).

Idempotency: with an ``Idempotency-Key`` the request's fingerprint (SHA-256 of the normalised
body) is stored with the key, which is unique. A retry with the same key and the same body gets
the first saga back; the same key with another body is refused (:class:`KeyReusedError`).
Concurrent retries race on the unique key, and exactly one of them inserts (see
:func:`~checkout_gateway.storage.checkouts.insert_unless_key_taken`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import events_pb2, types_pb2
from checkout_gateway.storage import checkouts
from checkout_kit import outbox
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.telemetry import SAGA_ID, inject_trace_headers


class KeyReusedError(Exception):
    """The idempotency key was first used with a different request."""

    def __init__(self, key: str, saga_id: uuid.UUID) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different request (saga {saga_id}); "
            "send the original request again, or use a new key for a new checkout"
        )
        self.key = key
        self.saga_id = saga_id


@dataclass(frozen=True)
class Order:
    """What the saga is asked to do, with items and currency resolved (from the request or the cart)."""

    customer_id: str
    items: Sequence[tuple[str, int]]
    """(sku, quantity) per line."""
    currency: str
    payment_token: str
    cart_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Acceptance:
    """The saga a request started, or the one an earlier request with the same key started."""

    saga_id: uuid.UUID
    replayed: bool
    """True when an earlier request with the same key had already started it."""


def fingerprint(normalised_request: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a request body in a canonical JSON form."""
    canonical = json.dumps(normalised_request, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def current_trace_id() -> str | None:
    """The W3C trace id of the current span (32 hex digits), or None when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


async def replay(session: AsyncSession, key: str, request_fingerprint: str) -> Acceptance | None:
    """The saga already started under ``key``, if any; raise if it was started by another request."""
    async with session.begin():
        existing = await checkouts.find_by_key(session, key)
    if existing is None:
        return None
    if existing.request_fingerprint != request_fingerprint:
        raise KeyReusedError(key, existing.saga_id)
    return Acceptance(existing.saga_id, replayed=True)


def checkout_initiated(saga_id: uuid.UUID, order: Order, initiated_at: dt.datetime) -> events_pb2.CheckoutInitiated:
    """The event that starts the saga."""
    timestamp = Timestamp()
    timestamp.FromDatetime(initiated_at)
    return events_pb2.CheckoutInitiated(
        saga_id=str(saga_id),
        customer_id=order.customer_id,
        items=[types_pb2.LineItem(sku=sku, quantity=quantity) for sku, quantity in order.items],
        currency=order.currency,
        payment_token=order.payment_token,
        cart_id=str(order.cart_id) if order.cart_id else "",
        initiated_at=timestamp,
    )


async def accept(
    session: AsyncSession,
    order: Order,
    *,
    topic: str,
    source: str,
    idempotency_key: str | None,
    request_fingerprint: str,
) -> Acceptance:
    """Record the checkout and its ``CheckoutInitiated`` message in one transaction.

    When a concurrent request with the same key won the race, nothing is written and the
    winner's saga is returned (or :class:`KeyReusedError` raised if its request differed).
    """
    saga_id = uuid.uuid4()
    # The request's span carries the saga id: the checkout's trace is found by it (the rest of the saga's spans do too).
    trace.get_current_span().set_attribute(SAGA_ID, str(saga_id))
    initiated_at = dt.datetime.now(dt.UTC)
    envelope = Envelope(
        message=checkout_initiated(saga_id, order, initiated_at),
        saga_id=str(saga_id),
        source=source,
        time=initiated_at,
        trace_headers=inject_trace_headers(),
    )
    async with session.begin():
        inserted = await checkouts.insert_unless_key_taken(
            session,
            saga_id=saga_id,
            customer_id=order.customer_id,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            cart_id=order.cart_id,
            trace_id=current_trace_id(),
            created_at=initiated_at,
        )
        if inserted:
            await outbox.enqueue(session, topic, envelope)
    if inserted:
        return Acceptance(saga_id, replayed=False)
    assert idempotency_key is not None  # only a key can conflict
    winner = await replay(session, idempotency_key, request_fingerprint)
    if winner is None:  # pragma: no cover - the conflicting row is committed before ON CONFLICT returns
        raise RuntimeError(f"Idempotency-Key {idempotency_key!r} conflicted but its checkout cannot be read")
    return winner
