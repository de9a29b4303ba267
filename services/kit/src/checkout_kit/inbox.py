"""The inbox: which messages a consumer has already applied, so redelivery is a no-op.

Kafka delivers at least once (a consumer that crashes between its database commit and its
offset commit sees the record again; the outbox relay may publish a message twice). The inbox
makes the *effects* exactly-once: the consumer inserts ``(consumer, message_id)`` in the same
transaction as the handler's effects, so either both commit or neither does, and a second
delivery finds the row and skips the handler.

Rows grow with traffic; :func:`forget_before` deletes those older than any possible
redelivery (the topics' retention is a safe bound). Nothing calls it on a timer yet.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any, Final

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

TABLE_NAME: Final = "inbox"


def inbox_table(metadata: MetaData) -> Table:
    """Define the inbox table in ``metadata`` (the service's, so its migrations create it).

    No schema is set: the connection's ``search_path`` puts it in the service's schema.
    """
    return Table(
        TABLE_NAME,
        metadata,
        Column("consumer", String(255), primary_key=True, comment="Consumer group that applied the message."),
        Column("message_id", String(255), primary_key=True, comment="The message's CloudEvents id (ce_id)."),
        Column(
            "processed_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.now(),
            comment="When its effects were committed.",
        ),
        comment="Messages already applied, per consumer: a redelivered message is skipped.",
    )


@cache
def _table() -> Table:
    """The table definition the queries below use (any schema: search_path decides)."""
    return inbox_table(MetaData())


@cache
def _first_delivery_statement() -> Any:
    """The inbox insert, built once (SQLAlchemy reuses its compiled form and cache key)."""
    inbox = _table()
    return (
        insert(inbox)
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.message_id])
        .returning(inbox.c.message_id)
    )


async def first_delivery(session: AsyncSession, consumer: str, message_id: str) -> bool:
    """Record the message as applied by ``consumer``; True the first time, False on a redelivery.

    Runs in the caller's transaction. ``ON CONFLICT DO NOTHING`` makes a concurrent duplicate
    (two members briefly owning a partition during a rebalance) wait for the other transaction
    and then return False, instead of failing with a unique violation.
    """
    result = await session.execute(_first_delivery_statement(), {"consumer": consumer, "message_id": message_id})
    return result.first() is not None


async def forget_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Delete inbox rows processed before ``cutoff``; return how many (caller commits)."""
    inbox = _table()
    result = await session.execute(delete(inbox).where(inbox.c.processed_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
