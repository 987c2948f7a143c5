"""fewer writes per message: a partial sid index, no reply_to_id index, no contacts.last_seen

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 08:40:00

Per message, the inbound row and its reply used to add eight index entries and rewrite the
contact row. Now: only rows with a SID are in the unique sid index (a reply gets its SID from
its first status callback), the reply is found from its inbound message through the contact
index instead of an index on ``reply_to_id``, and a message no longer rewrites the contact's
``last_seen`` (the time of their latest message says the same). A status callback no longer
adds an entry to an index on ``status_events.message_sid`` that the unique (message_sid,
status) index already serves. Every row is kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HAS_SID = sa.text("sid IS NOT NULL")
# 0001 made the sid unique with an unnamed constraint; on SQLite it gets this name to be dropped.
OLD_SID_CONSTRAINT = "uq_messages_sid_all"


def _sid_constraint(bind: sa.Connection) -> str:
    for constraint in sa.inspect(bind).get_unique_constraints("messages"):
        if constraint["column_names"] == ["sid"] and constraint["name"]:
            return constraint["name"]
    raise RuntimeError("messages has no unique constraint on sid")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop a table constraint: the table is rebuilt, rows and ids kept.
        with op.batch_alter_table(
            "messages",
            recreate="always",
            naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s_all"},
        ) as batch:
            batch.drop_constraint(OLD_SID_CONSTRAINT, type_="unique")
            batch.drop_index("ix_messages_reply_to_id")
            batch.create_index("uq_messages_sid", ["sid"], unique=True, sqlite_where=HAS_SID)
    else:
        op.drop_constraint(_sid_constraint(bind), "messages", type_="unique")
        op.drop_index("ix_messages_reply_to_id", table_name="messages")
        op.create_index(
            "uq_messages_sid", "messages", ["sid"], unique=True, postgresql_where=HAS_SID
        )
    op.drop_column("contacts", "last_seen")
    op.drop_index("ix_status_events_message_sid", table_name="status_events")


def downgrade() -> None:
    op.create_index("ix_status_events_message_sid", "status_events", ["message_sid"])
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE contacts SET last_seen = coalesce("
        "(SELECT max(created_at) FROM messages WHERE messages.contact_id = contacts.id"
        " AND messages.direction = 'inbound'), first_seen)"
    )
    with op.batch_alter_table("contacts") as batch:
        batch.alter_column("last_seen", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("uq_messages_sid")
        batch.create_index("ix_messages_reply_to_id", ["reply_to_id"], unique=False)
        batch.create_unique_constraint("messages_sid_key", ["sid"])
