"""Consent events chained under keyed seals and deleted only by an erasure; preview opens counted per link; no address in statistics.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_GUARD = "consent events are removed only by an erasure"
# Columns that hold an address or a name: PostgreSQL keeps no sample of them in pg_statistic,
# whose old rows would otherwise keep an erased address in the database files.
_PERSONAL = {
    "subscribers": ("address", "name"),
    "consent_events": ("address", "detail"),
    "subscription_requests": ("mailbox", "name", "evidence"),
    "suppressions": ("address", "detail"),
    "journalists": ("address", "name"),
    "deliveries": ("recipient", "response", "payload"),
    "delivery_conflicts": ("response",),
}


def upgrade() -> None:
    # Plain ADD COLUMN (not a batch copy), so SQLite keeps the table and its append-only trigger.
    op.add_column("consent_events", sa.Column("seal", sa.String(64), nullable=True))
    op.add_column("consent_events", sa.Column("key_id", sa.String(16), nullable=True))
    head = op.create_table(
        "consent_chain",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_seal", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("mac", sa.String(64), nullable=True),
    )
    last = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM consent_events")).scalar_one()
    # No seal yet: the rows already there are sealed by the first process that has the key.
    op.bulk_insert(head, [{"id": 1, "last_id": last, "last_seal": None}])
    op.create_table("consent_erasure_grant", sa.Column("token", sa.String(32), primary_key=True))
    op.create_index("ix_preview_opens_link_at", "preview_opens", ["journalist_id", "release", "at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION pressroom_consent_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM consent_erasure_grant) THEN RAISE EXCEPTION '{_GUARD}'; END IF; RETURN OLD; END $$"
        )
        op.execute(
            "CREATE TRIGGER consent_events_delete_guard BEFORE DELETE ON consent_events "
            "FOR EACH ROW EXECUTE FUNCTION pressroom_consent_delete_guard()"
        )
        for table, columns in _PERSONAL.items():
            for column in columns:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0")
    else:
        op.execute(
            "CREATE TRIGGER consent_events_delete_guard BEFORE DELETE ON consent_events "
            f"WHEN NOT EXISTS (SELECT 1 FROM consent_erasure_grant) BEGIN SELECT RAISE(ABORT, '{_GUARD}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER consent_events_delete_guard ON consent_events")
        op.execute("DROP FUNCTION pressroom_consent_delete_guard()")
        for table, columns in _PERSONAL.items():
            for column in columns:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS -1")
    else:
        op.execute("DROP TRIGGER consent_events_delete_guard")
    op.drop_index("ix_preview_opens_link_at", "preview_opens")
    op.drop_table("consent_erasure_grant")
    op.drop_table("consent_chain")
    op.drop_column("consent_events", "key_id")
    op.drop_column("consent_events", "seal")
