"""What happened to a delivery before its latest state (resends on the operator's word, look-ups
after a crash), and an index to find every send to one address.

A row's state and response say only where it ended. A resent ambiguous row settles as ``sent``
and would hide that it may have arrived twice; ``delivery_history`` keeps each such step,
append-only, so the report still shows it after the counts settle. ``deliveries find ADDRESS``
and erasure look rows up by recipient alone, which scanned the whole ledger.

Revision ID: 0010
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from pressroom.db import UTCDateTime

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery_history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, nullable=False, index=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.Text, nullable=False, server_default=""),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_deliveries_recipient", "deliveries", ["recipient"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_recipient", table_name="deliveries")
    op.drop_table("delivery_history")
