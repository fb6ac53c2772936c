"""Audience (subscribers, topics, consent events, suppressions) and the delivery ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("language", sa.String(35), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cadence", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_at", UTCDateTime),
        sa.Column("unsubscribed_at", UTCDateTime),
        # Signed links name a subscriber by id: an id must never come back after an erasure,
        # which SQLite does for the highest rowid unless the table says AUTOINCREMENT.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_subscribers_status_cadence", "subscribers", ["status", "cadence"])
    op.create_table(
        "subscriber_topics",
        sa.Column("subscriber_id", Id, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "topic"),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", Id, nullable=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_consent_events_subscriber_id", "consent_events", ["subscriber_id"])
    op.create_index("ix_consent_events_address", "consent_events", ["address"])
    op.create_table(
        "suppressions",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "publications",
        sa.Column("slug", sa.String(200), primary_key=True),
        sa.Column("release_date", UTCDateTime, nullable=False),
        sa.Column("first_public_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("planned_at", UTCDateTime, nullable=False),
        sa.Column("recipients", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("release", "channel"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subscriber_id", Id, nullable=True),
        sa.Column("bundle", sa.String(200), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("response", sa.Text, nullable=False, server_default=""),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("lease_until", UTCDateTime, nullable=True),
        sa.Column("next_attempt_at", UTCDateTime, nullable=True),
        sa.Column("planned_at", UTCDateTime, nullable=False),
        sa.Column("sending_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("release", "channel", "recipient", name="uq_deliveries_release_channel_recipient"),
    )
    op.create_index("ix_deliveries_queue", "deliveries", ["release", "channel", "state"])
    op.create_index("ix_deliveries_bundle", "deliveries", ["bundle"])


def downgrade() -> None:
    for table in ("deliveries", "plans", "publications", "suppressions", "consent_events", "subscriber_topics", "subscribers"):
        op.drop_table(table)
