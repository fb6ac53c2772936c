"""What each public release said when it was last published, so `pressroom check` can tell a silent edit.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publications") as batch:
        batch.add_column(sa.Column("text_digest", sa.String(32), nullable=True))
        batch.add_column(sa.Column("corrections", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("publications") as batch:
        batch.drop_column("corrections")
        batch.drop_column("text_digest")
