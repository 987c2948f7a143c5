"""a person can take over a contact: contacts.taken_over_at, taken_over_by, waiting_since

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:40:00

Three nullable columns on ``contacts`` (nothing to fill in: nobody is taken over yet) and a
partial index holding only the taken-over contacts, for the admin's list of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TAKEN_OVER = sa.text("taken_over_at IS NOT NULL")


def upgrade() -> None:
    op.add_column("contacts", sa.Column("taken_over_at", sa.DateTime(timezone=True)))
    op.add_column("contacts", sa.Column("taken_over_by", sa.String(length=100)))
    op.add_column("contacts", sa.Column("waiting_since", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_contacts_taken_over",
        "contacts",
        ["taken_over_at"],
        sqlite_where=TAKEN_OVER,
        postgresql_where=TAKEN_OVER,
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_taken_over", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("waiting_since")
        batch.drop_column("taken_over_by")
        batch.drop_column("taken_over_at")
