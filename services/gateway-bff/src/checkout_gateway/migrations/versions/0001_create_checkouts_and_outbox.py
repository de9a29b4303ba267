"""create checkouts and outbox

Revision ID: 0001
Revises: None
Create Date: 2026-11-25 23:06:55.041484
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "checkouts",
        sa.Column("saga_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column(
            "idempotency_key",
            sa.String(length=255),
            nullable=True,
            comment="The client's Idempotency-Key; unique, so concurrent retries create one saga.",
        ),
        sa.Column(
            "request_fingerprint",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the normalised request: a reused key must come with the same request.",
        ),
        sa.Column("cart_id", sa.Uuid(), nullable=True, comment="The cart the items came from, if any."),
        sa.Column("trace_id", sa.String(length=32), nullable=True, comment="W3C trace id of the request, if traced."),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("saga_id", name=op.f("pk_checkouts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_checkouts_idempotency_key")),
        comment="Checkouts the gateway accepted (202): one saga each.",
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
    op.create_index(
        "ix_outbox_published_at",
        "outbox",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["seq"], unique=False, postgresql_where=sa.text("published_at IS NULL")
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_outbox_unpublished", table_name="outbox", postgresql_where=sa.text("published_at IS NULL"))
    op.drop_index("ix_outbox_published_at", table_name="outbox", postgresql_where=sa.text("published_at IS NOT NULL"))
    op.drop_table("outbox")
    op.drop_table("checkouts")
