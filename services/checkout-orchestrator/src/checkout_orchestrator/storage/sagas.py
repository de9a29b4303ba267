"""Saga rows ↔ the rules' :class:`Saga`, and every query on them. Each function runs in the caller's transaction.

Concurrency is optimistic: a saga is read without a lock, changed by the rules, and written
back with ``UPDATE … WHERE saga_id = :id AND version = :v`` (setting ``version = v + 1``). If
another transaction changed the row in between — the deadline scanner firing while a reply is
being applied — the update matches no row and :class:`SagaConflictError` is raised: the whole
transaction rolls back, and the consumer applies the record again on a fresh read. A blind
write could otherwise lose a transition or send a command twice.

The deadline scanner is the one reader that locks (``FOR UPDATE SKIP LOCKED``): several
orchestrator replicas then never fire the same deadline twice, and none waits for another.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_orchestrator.domain.rules import TimelineEntry
from checkout_orchestrator.domain.state import Line, Saga, SagaState, Step
from checkout_orchestrator.storage.tables import saga_steps, sagas

TERMINAL_STATES = tuple(state.value for state in SagaState if state.terminal)


class SagaConflictError(RuntimeError):
    """The saga changed since it was read; roll back and try again on a fresh read."""

    def __init__(self, saga_id: str, version: int) -> None:
        super().__init__(f"saga {saga_id} is no longer at version {version}: another transaction changed it")
        self.saga_id = saga_id
        self.version = version


class UnreadableSagaError(ValueError):
    """A stored saga this code cannot read (a state or step it does not know, a malformed JSON column)."""

    def __init__(self, saga_id: str, cause: Exception) -> None:
        super().__init__(f"saga {saga_id} cannot be read: {type(cause).__name__}: {cause}")
        self.saga_id = saga_id


@dataclass(frozen=True)
class SagaRecord:
    """A stored saga with what only storage knows about it."""

    saga: Saga
    trace_id: str | None


# mapping


def to_row(saga: Saga) -> dict[str, Any]:
    """The ``sagas`` columns of a saga (``trace_id`` aside: it is written once, at insert)."""
    return {
        "saga_id": uuid.UUID(saga.saga_id),
        "state": saga.state.value,
        "version": saga.version,
        "customer_id": saga.customer_id,
        "currency": saga.currency,
        "payment_token": saga.payment_token,
        "cart_id": saga.cart_id,
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price_minor": line.unit_price_minor}
            for line in saga.lines
        ],
        "amount_minor": saga.amount_minor,
        "reservation_id": saga.reservation_id,
        "payment_id": saga.payment_id,
        "order_id": saga.order_id,
        "failure_code": saga.failure_code,
        "failure_message": saga.failure_message,
        "pending": {step.value: attempts for step, attempts in sorted(saga.pending.items())},
        "done": sorted(step.value for step in saga.done),
        "step_sent_at": {
            step.value: at.isoformat() for step, at in sorted(saga.step_sent_at.items()) if step in saga.pending
        },
        "deadline_at": saga.deadline_at,
        "created_at": saga.created_at,
        "updated_at": saga.updated_at,
        "finished_at": saga.finished_at,
        "trace_context": dict(saga.trace_context) or None,
    }


def from_row(row: Mapping[Any, Any]) -> Saga:
    """The saga a ``sagas`` row holds; raises ``ValueError`` on a state or step this code does not know."""
    return Saga(
        saga_id=str(row["saga_id"]),
        customer_id=row["customer_id"],
        currency=row["currency"],
        payment_token=row["payment_token"],
        lines=[Line(item["sku"], int(item["quantity"]), int(item.get("unit_price_minor", 0))) for item in row["lines"]],
        state=SagaState(row["state"]),
        version=int(row["version"]),
        reservation_id=row["reservation_id"],
        payment_id=row["payment_id"],
        amount_minor=int(row["amount_minor"]),
        order_id=row["order_id"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        pending={Step(step): int(attempts) for step, attempts in row["pending"].items()},
        done={Step(step) for step in row["done"]},
        step_sent_at={Step(step): dt.datetime.fromisoformat(at) for step, at in row["step_sent_at"].items()},
        deadline_at=row["deadline_at"],
        cart_id=row["cart_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        trace_context=dict(row["trace_context"] or {}),
    )


def _saga(row: Mapping[Any, Any]) -> Saga:
    """:func:`from_row`, naming the saga when it cannot be read."""
    try:
        return from_row(row)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableSagaError(str(row["saga_id"]), error) from error


def _record(row: Mapping[Any, Any]) -> SagaRecord:
    return SagaRecord(saga=_saga(row), trace_id=row["trace_id"])


# writes


async def insert_new(session: AsyncSession, saga: Saga, *, trace_id: str | None = None) -> bool:
    """Insert a new saga; False (and nothing written) if one with its id exists already."""
    row = to_row(saga)
    row["created_at"] = row["created_at"] or func.now()
    row["updated_at"] = row["updated_at"] or row["created_at"]
    result = await session.execute(
        pg_insert(sagas)
        .values(**row, trace_id=trace_id)
        .on_conflict_do_nothing(index_elements=[sagas.c.saga_id])
        .returning(sagas.c.saga_id)
    )
    return result.first() is not None


async def save(session: AsyncSession, saga: Saga) -> Saga:
    """Write a changed saga read at ``saga.version``; return it at its new version.

    Raises :class:`SagaConflictError` if the row is no longer at that version.
    """
    row = to_row(saga)
    del row["saga_id"], row["created_at"]
    row["version"] = saga.version + 1
    row["updated_at"] = saga.updated_at or func.now()
    result = await session.execute(
        update(sagas)
        .where(sagas.c.saga_id == uuid.UUID(saga.saga_id), sagas.c.version == saga.version)
        .values(**row)
        .returning(sagas.c.updated_at)
    )
    stored = result.first()
    if stored is None:
        raise SagaConflictError(saga.saga_id, saga.version)
    saga.version += 1
    saga.updated_at = stored.updated_at
    return saga


async def append_steps(session: AsyncSession, saga_id: str, entries: Sequence[TimelineEntry]) -> None:
    """Add timeline entries after the saga's last one.

    Call after :func:`insert_new` or :func:`save` in the same transaction: the saga row is then
    locked, so two writers cannot pick the same ``seq``.
    """
    if not entries:
        return
    key = uuid.UUID(saga_id)
    last = await session.scalar(select(func.coalesce(func.max(saga_steps.c.seq), 0)).where(saga_steps.c.saga_id == key))
    await session.execute(
        insert(saga_steps),
        [
            {
                "saga_id": key,
                "seq": int(last or 0) + n,
                "at": entry.at,
                "state": entry.state.value,
                "event": entry.event,
                "detail": entry.detail,
            }
            for n, entry in enumerate(entries, start=1)
        ],
    )


# reads


async def load(session: AsyncSession, saga_id: str) -> Saga | None:
    """The saga, or None if there is none with this id (no lock: :func:`save` checks the version)."""
    row = (await session.execute(select(sagas).where(sagas.c.saga_id == uuid.UUID(saga_id)))).mappings().first()
    return None if row is None else _saga(row)


async def claim_overdue(session: AsyncSession, now: dt.datetime, *, skip: Collection[str] = ()) -> Saga | None:
    """Lock and return the most overdue saga in flight that no other transaction holds, if any.

    ``FOR UPDATE SKIP LOCKED``: a saga being changed elsewhere (a reply applied, another
    replica's scanner) is passed over, not waited for; its deadline is looked at again on the
    next scan. ``skip`` excludes sagas this scan already failed on, so one bad saga cannot hold
    up the others. Raises :class:`UnreadableSagaError` (naming it) for a saga it cannot read.
    """
    query = (
        select(sagas)
        .where(sagas.c.deadline_at <= now, sagas.c.state.not_in(TERMINAL_STATES))
        .order_by(sagas.c.deadline_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if skip:
        query = query.where(sagas.c.saga_id.not_in([uuid.UUID(saga_id) for saga_id in skip]))
    row = (await session.execute(query)).mappings().first()
    return None if row is None else _saga(row)


async def snapshot(session: AsyncSession) -> None:
    """Make the rest of the caller's (fresh) transaction read one consistent snapshot.

    A saga and its timeline are written in one transaction; read under READ COMMITTED they could
    come from two different commits (a row at version 4 with version 5's steps).
    """
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


async def find(session: AsyncSession, saga_id: uuid.UUID) -> SagaRecord | None:
    """The stored saga, or None."""
    row = (await session.execute(select(sagas).where(sagas.c.saga_id == saga_id))).mappings().first()
    return None if row is None else _record(row)


async def timeline(session: AsyncSession, saga_id: uuid.UUID) -> list[TimelineEntry]:
    """The saga's timeline, oldest first."""
    rows = await session.execute(
        select(saga_steps.c.at, saga_steps.c.state, saga_steps.c.event, saga_steps.c.detail)
        .where(saga_steps.c.saga_id == saga_id)
        .order_by(saga_steps.c.seq)
    )
    return [TimelineEntry(row.at, SagaState(row.state), row.event, row.detail) for row in rows]


async def search(
    session: AsyncSession, *, states: Collection[SagaState] | None = None, limit: int = 50
) -> list[SagaRecord]:
    """Sagas newest first, optionally only those in ``states``."""
    query = select(sagas).order_by(sagas.c.created_at.desc(), sagas.c.saga_id.desc()).limit(limit)
    if states is not None:
        query = query.where(sagas.c.state.in_([state.value for state in states]))
    rows = (await session.execute(query)).mappings().all()
    return [_record(row) for row in rows]


async def in_flight(session: AsyncSession, *, started_before: dt.datetime) -> tuple[dict[SagaState, int], int]:
    """Sagas not yet terminal, by state, and how many of them started before ``started_before``.

    One aggregate restricted to the non-terminal states, which ``ix_sagas_state_created_at``
    (state, created_at) serves: its cost follows the sagas in flight, not the finished history.
    """
    open_states = [state.value for state in SagaState if not state.terminal]
    rows = await session.execute(
        select(sagas.c.state, func.count(), func.count().filter(sagas.c.created_at < started_before))
        .where(sagas.c.state.in_(open_states))
        .group_by(sagas.c.state)
    )
    counts = {state: 0 for state in SagaState if not state.terminal}
    old = 0
    for state, count, started_long_ago in rows:
        counts[SagaState(state)] = int(count)
        old += int(started_long_ago)
    return counts, old
