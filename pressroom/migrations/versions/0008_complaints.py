"""Spam complaints (ARF reports) per delivered email, for the complaint rate of each release.

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, nullable=False, unique=True),
        sa.Column("feedback_type", sa.String(32), nullable=False),
        sa.Column("reporter", sa.String(200), nullable=False, server_default=""),
        sa.Column("at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("complaints")
