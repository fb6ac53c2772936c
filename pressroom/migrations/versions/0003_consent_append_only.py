"""Subscription requests (what each confirmation link asked for), and consent events made append-only.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_MESSAGE = "consent events are append-only evidence: they are never updated"


def upgrade() -> None:
    op.create_table(
        "subscription_requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", Id, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("language", sa.String(35), nullable=False),
        sa.Column("cadence", sa.String(16), nullable=False),
        sa.Column("topics", sa.Text, nullable=False, server_default=""),
        sa.Column("evidence", sa.Text, nullable=False, server_default=""),
        sa.Column("emailed", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime, nullable=True),
        sa.Index("ix_subscription_requests_mailbox_created", "mailbox", "created_at"),
        sa.Index("ix_subscription_requests_created", "created_at"),
        sqlite_autoincrement=True,
    )
    # The database itself refuses to rewrite evidence; rows may still be deleted (erasure, expiry).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION pressroom_consent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events "
            "FOR EACH ROW EXECUTE FUNCTION pressroom_consent_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER consent_events_append_only" + (" ON consent_events" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION pressroom_consent_append_only()")
    op.drop_table("subscription_requests")
