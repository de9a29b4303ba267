"""create checkouts and outbox

Revision ID: 0001
Revises: None
Create Date: 2026-11-25 23:06:55.041484
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from checkout_kit.messaging_migrations import create_messaging_tables, drop_messaging_tables

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
    create_messaging_tables(inbox=False)


def downgrade() -> None:
    """Revert this revision."""
    drop_messaging_tables(inbox=False)
    op.drop_table("checkouts")
