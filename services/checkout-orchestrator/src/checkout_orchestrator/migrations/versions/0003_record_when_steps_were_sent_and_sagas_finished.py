"""record when steps were sent and when sagas finished

For the saga metrics: ``step_sent_at`` (pending steps → when their command was first sent) is
where a step's latency starts; ``finished_at`` (when the saga first reached a terminal state)
keeps a saga reopened by a late reply from being counted failed twice. Sagas already terminal get
their ``updated_at`` as ``finished_at``; steps pending at upgrade time have no start and are not
timed.

Revision ID: 0003
Revises: '0002'
Create Date: 2026-11-26 01:33:19.536300
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "sagas",
        sa.Column(
            "step_sent_at",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
            comment="Pending steps → when their command was first sent (ISO 8601): step latency starts there.",
        ),
    )
    op.add_column(
        "sagas",
        sa.Column(
            "finished_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the saga first reached COMPLETED or FAILED (a late reply may reopen a FAILED one).",
        ),
    )
    op.execute("UPDATE sagas SET finished_at = updated_at WHERE state IN ('COMPLETED', 'FAILED')")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("sagas", "finished_at")
    op.drop_column("sagas", "step_sent_at")
