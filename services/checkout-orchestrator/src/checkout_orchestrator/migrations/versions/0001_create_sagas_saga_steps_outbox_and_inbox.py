"""create sagas, saga steps, outbox and inbox

Revision ID: 0001
Revises: None
Create Date: 2026-11-25 23:07:58.995347
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from checkout_kit.messaging_migrations import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    create_messaging_tables()
    op.create_table(
        "sagas",
        sa.Column("saga_id", sa.UUID(), nullable=False, comment="Chosen by the gateway (CheckoutInitiated)."),
        sa.Column("state", sa.String(length=32), nullable=False, comment="Where the saga is (SagaState)."),
        sa.Column("version", sa.Integer(), nullable=False, comment="Optimistic concurrency: +1 on every update."),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False, comment="ISO 4217 code the customer pays in."),
        sa.Column("payment_token", sa.Text(), nullable=False, comment="Provider token for the payment method."),
        sa.Column("cart_id", sa.Text(), nullable=True, comment="The cart the checkout came from, if any."),
        sa.Column(
            "lines",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="[{sku, quantity, unit_price_minor}], priced once reserved.",
        ),
        sa.Column(
            "amount_minor", sa.BigInteger(), nullable=False, comment="The total in minor units (0 until reserved)."
        ),
        sa.Column("reservation_id", sa.Text(), nullable=True),
        sa.Column("payment_id", sa.Text(), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("failure_code", sa.Text(), nullable=True, comment="FailureCode name when the saga fails."),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column(
            "pending",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="Steps awaiting a reply → commands sent so far.",
        ),
        sa.Column(
            "done", postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment="Steps whose reply arrived."
        ),
        sa.Column(
            "deadline_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the earliest pending step times out.",
        ),
        sa.Column("trace_id", sa.Text(), nullable=True, comment="The checkout's trace (W3C trace id, 32 hex digits)."),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('STARTED', 'INVENTORY_RESERVATION_PENDING', 'PAYMENT_PENDING', 'ORDER_CREATION_PENDING', "
            "'COMPLETED', 'COMPENSATING', 'FAILED')",
            name=op.f("ck_sagas_state_known"),
        ),
        sa.CheckConstraint("version >= 0", name=op.f("ck_sagas_version_non_negative")),
        sa.PrimaryKeyConstraint("saga_id", name=op.f("pk_sagas")),
        comment="One checkout saga each: the orchestrator's state machine.",
    )
    op.create_index("ix_sagas_created_at", "sagas", ["created_at"], unique=False)
    op.create_index(
        "ix_sagas_deadline_at_open",
        "sagas",
        ["deadline_at"],
        unique=False,
        postgresql_where=sa.text("deadline_at IS NOT NULL"),
    )
    op.create_index("ix_sagas_state_created_at", "sagas", ["state", "created_at"], unique=False)
    op.create_table(
        "saga_steps",
        sa.Column("saga_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, comment="1, 2, 3 … per saga, in the order things happened."),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False, comment="The saga's state once the step happened."),
        sa.Column("event", sa.Text(), nullable=False, comment="What happened (a reply received, a command sent …)."),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["saga_id"], ["sagas.saga_id"], name=op.f("fk_saga_steps_saga_id_sagas"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("saga_id", "seq", name=op.f("pk_saga_steps")),
        comment="Each saga's timeline, as the status API shows it.",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("saga_steps")
    op.drop_index("ix_sagas_state_created_at", table_name="sagas")
    op.drop_index("ix_sagas_deadline_at_open", table_name="sagas", postgresql_where=sa.text("deadline_at IS NOT NULL"))
    op.drop_index("ix_sagas_created_at", table_name="sagas")
    op.drop_table("sagas")
    drop_messaging_tables()
