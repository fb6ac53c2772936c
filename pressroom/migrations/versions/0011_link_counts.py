"""Aggregate link counts per release, channel, language, link and hour; social posts' counts read back.

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_clicks",
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("language", sa.String(35), nullable=False),
        sa.Column("link_key", sa.String(32), nullable=False),
        sa.Column("link", sa.Text, nullable=False),
        sa.Column("hour", UTCDateTime, nullable=False),
        sa.Column("people", sa.Integer, nullable=False, server_default="0"),
        sa.Column("machines", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("release", "channel", "language", "link_key", "hour"),
    )
    op.create_table(
        "post_counts",
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("age", sa.String(8), nullable=False),
        sa.Column("likes", sa.Integer, nullable=False),
        sa.Column("reposts", sa.Integer, nullable=False),
        sa.Column("replies", sa.Integer, nullable=False),
        sa.Column("read_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("release", "channel", "age"),
    )


def downgrade() -> None:
    op.drop_table("post_counts")
    op.drop_table("link_clicks")
