"""store the saga's trace context

The W3C context of each saga's latest transition, so that what the deadline scanner does later
(re-sent commands, compensations) continues the checkout's trace. Nullable: sagas started before
this revision simply start a trace of their own when a deadline fires.

Revision ID: 0002
Revises: '0001'
Create Date: 2026-11-26 01:31:13.706255
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "sagas",
        sa.Column(
            "trace_context",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="W3C trace context of the latest transition: deadline retries and compensations continue it.",
        ),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("sagas", "trace_context")
