"""The outbox and inbox tables as a service's first revision creates them (Alembic operations).

Every service that messages keeps the kit's :func:`~checkout_kit.outbox.outbox_table` (and, when
it consumes, :func:`~checkout_kit.inbox.inbox_table`) in its metadata; its ``0001`` revision
calls :func:`create_messaging_tables` / :func:`drop_messaging_tables` instead of repeating
their DDL. Call them only inside a revision's ``upgrade()`` / ``downgrade()``.

The DDL here is frozen: it is what the tables were when the revisions calling it were written,
and a revision must build the same tables forever. A later change to the outbox or inbox gets
its own operations here (called from a new revision in every service), never an edit of these;
each service's model-drift test (its models against its migrated schema) proves they agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_PUBLISHED = sa.text("published_at IS NOT NULL")
_UNPUBLISHED = sa.text("published_at IS NULL")


def create_messaging_tables(*, inbox: bool = True) -> None:
    """Create the outbox (a producing service) and the inbox (a consuming one, unless ``inbox`` is off)."""
    if inbox:
        op.create_table(
            "inbox",
            sa.Column(
                "consumer", sa.String(length=255), nullable=False, comment="Consumer group that applied the message."
            ),
            sa.Column(
                "message_id", sa.String(length=255), nullable=False, comment="The message's CloudEvents id (ce_id)."
            ),
            sa.Column(
                "processed_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("now()"),
                nullable=False,
                comment="When its effects were committed.",
            ),
            sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_inbox")),
            comment="Messages already applied, per consumer: a redelivered message is skipped.",
        )
    op.create_table(
        "outbox",
        sa.Column("id", sa.UUID(), nullable=False, comment="Row id (not the message id: see headers)."),
        sa.Column(
            "seq",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Insertion order; the relay publishes in this order.",
        ),
        sa.Column("topic", sa.String(length=249), nullable=False, comment="Kafka topic to publish to."),
        sa.Column("key", sa.Text(), nullable=True, comment="Kafka record key (the saga id)."),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="Kafka record headers as [name, value] pairs.",
        ),
        sa.Column("payload", sa.LargeBinary(), nullable=False, comment="Kafka record value (encoded message)."),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True, comment="Set once Kafka acknowledged it."),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False, comment="Publish attempts so far."),
        sa.Column("last_error", sa.Text(), nullable=True, comment="Why the last failed attempt failed."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        comment="Messages committed with the state change that caused them, waiting to be published.",
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], unique=False, postgresql_where=_PUBLISHED)
    op.create_index("ix_outbox_unpublished", "outbox", ["seq"], unique=False, postgresql_where=_UNPUBLISHED)


def drop_messaging_tables(*, inbox: bool = True) -> None:
    """Drop what :func:`create_messaging_tables` created (called with the same ``inbox``)."""
    op.drop_index("ix_outbox_unpublished", table_name="outbox", postgresql_where=_UNPUBLISHED)
    op.drop_index("ix_outbox_published_at", table_name="outbox", postgresql_where=_PUBLISHED)
    op.drop_table("outbox")
    if inbox:
        op.drop_table("inbox")
