"""Outages: since when a delivery has waited for a server that is unavailable (it spends no attempt, then expires).

Revision ID: 0009
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0009"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("waiting_since", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("waiting_since")
