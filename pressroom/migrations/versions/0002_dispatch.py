"""Dispatch: per-run attribution, transactional payloads, and conflicts a sender could not record.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text, nullable=True))
    op.create_index("ix_deliveries_channel_state", "deliveries", ["channel", "state"])
    op.create_table(
        "delivery_conflicts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, nullable=False, index=True),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.Text, nullable=False, server_default=""),
        sa.Column("at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("delivery_conflicts")
    op.drop_index("ix_deliveries_channel_state", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("payload")
        batch.drop_column("run_id")
