"""Indexes on the trimmed names the identity update looks up: a flow's provider and
receiver name where the side has no ref (a party known only by name; partial, so flows
naming a ref add nothing), and a participating organisation's name. Hash indexes on
PostgreSQL: equality is all they serve, and a B-tree refuses an entry over 2,704 bytes
(real participating-org names reach 4 kB)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: Union[str, None] = '0019'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# as fundtrack.ledger.tables.NAME_ONLY (copied: migrations do not import model code)
NAME_ONLY = {side: f"coalesce(trim({side}_ref), '') = ''" for side in ("provider", "receiver")}


def upgrade() -> None:
    for side, where in NAME_ONLY.items():
        op.create_index(f'ix_flow_{side}_name_only', 'flow', [sa.text(f'trim({side}_name)')],
                        postgresql_where=sa.text(where), sqlite_where=sa.text(where),
                        postgresql_using='hash')
    op.create_index('ix_participating_org_name_trim', 'participating_org',
                    [sa.text('trim(name)')], postgresql_using='hash')


def downgrade() -> None:
    op.drop_index('ix_participating_org_name_trim', table_name='participating_org')
    for side in NAME_ONLY:
        op.drop_index(f'ix_flow_{side}_name_only', table_name='flow')
