"""A partial index on the batches that carry the stale mark (``counts`` holds
``derived_stale``): the check before every import's derived-table update is one probe of
it instead of a LIKE over every batch's counts

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: Union[str, None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# as fundtrack.ledger.tables.STALE_MARKED (copied: migrations do not import model code)
STALE_MARKED = {"postgresql": "(counts ->> 'derived_stale') IS NOT NULL",
                "sqlite": "json_extract(counts, '$.derived_stale') IS NOT NULL"}


def upgrade() -> None:
    op.create_index('ix_import_batch_derived_stale', 'import_batch', ['id'],
                    postgresql_where=sa.text(STALE_MARKED['postgresql']),
                    sqlite_where=sa.text(STALE_MARKED['sqlite']))


def downgrade() -> None:
    op.drop_index('ix_import_batch_derived_stale', table_name='import_batch')
