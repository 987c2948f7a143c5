"""flow timers: reminders and expiry messages of flow runs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_timers",
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["flow_runs.id"]),
        sa.PrimaryKeyConstraint("outbox_id"),
    )
    op.create_index("ix_flow_timers_run_id", "flow_timers", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_flow_timers_run_id", table_name="flow_timers")
    op.drop_table("flow_timers")
