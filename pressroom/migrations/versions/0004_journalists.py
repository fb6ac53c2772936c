"""The media list (journalists) and the opens of embargoed preview pages.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journalists",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("outlet", sa.String(200), nullable=False, server_default=""),
        sa.Column("beats", sa.Text, nullable=False, server_default=""),
        sa.Column("language", sa.String(35), nullable=False),
        sa.Column("country", sa.String(2), nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "preview_opens",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("journalist_id", Id, sa.ForeignKey("journalists.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Index("ix_preview_opens_release", "release"),
    )


def downgrade() -> None:
    op.drop_table("preview_opens")
    op.drop_table("journalists")
