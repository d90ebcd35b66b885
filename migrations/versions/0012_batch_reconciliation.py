"""import batches: reconciliation counts (found = imported + skipped) and the file's date

Every import now accounts for every record: activities, flows (transactions, FTS flows,
grants, CRS amounts), budgets and organisations found in the file = imported + skipped.
The counts are stored as plain integer columns so the history page, the API and other
tools can read and filter them without parsing JSON. ``file_generated`` keeps the
file's own date (IATI ``@generated-datetime``) for the older-file policy.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

KINDS = ("activities", "flows", "budgets", "organisations")
COUNTS = [f"{kind}_{what}" for kind in KINDS for what in ("found", "imported", "skipped")]


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild: SQLite would have to drop import_batch, which
    # batch_issue and the ledger reference).
    op.add_column("import_batch", sa.Column("file_generated", sa.String(length=40),
                                            nullable=True))
    for name in COUNTS:
        op.add_column("import_batch", sa.Column(name, sa.Integer(), nullable=True))
    op.add_column("trail_link", sa.Column("to_self", sa.Boolean(), server_default=sa.false(),
                                          nullable=False))
    op.execute(
        "UPDATE trail_link SET to_self = TRUE WHERE kind IN ('provider-activity', "
        "'receiver-activity') AND EXISTS (SELECT 1 FROM flow JOIN activity "
        "ON activity.id = flow.activity_id WHERE flow.id = trail_link.flow_id "
        "AND activity.iati_identifier = trail_link.target_ref)")
    op.execute(
        "UPDATE trail_link SET to_self = TRUE WHERE kind = 'related-activity' AND EXISTS "
        "(SELECT 1 FROM activity WHERE activity.id = trail_link.activity_id "
        "AND activity.iati_identifier = trail_link.target_ref)")


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN: PostgreSQL, and SQLite since 3.35.
    op.execute("ALTER TABLE trail_link DROP COLUMN to_self")
    for name in reversed(COUNTS):
        op.execute(f"ALTER TABLE import_batch DROP COLUMN {name}")
    op.execute("ALTER TABLE import_batch DROP COLUMN file_generated")
