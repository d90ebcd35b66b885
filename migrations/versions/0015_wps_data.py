"""WPS data people manage: plan codes, stated costs, domestic budget lines, change history

``nap.code`` names a plan in CSV files, the CLI and URLs; plans stored before get
``<country>-<id>``. ``nap_line`` keeps the cost as the plan states it (amount, currency)
and its source; lines of one plan have distinct codes. ``nap_budget_line``: the
government's own allocations. ``wps_change``: who changed what, before and after.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from fundtrack.money import Money

revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE INDEX (no batch copy: nap_line and nap_link point at
    # these tables).
    op.add_column('nap', sa.Column('code', sa.String(length=60), nullable=True))
    op.execute("UPDATE nap SET code = country || '-' || CAST(id AS VARCHAR(20)) "
               "WHERE code IS NULL")
    op.create_index(op.f('ix_nap_code'), 'nap', ['code'], unique=True)
    op.add_column('nap_line', sa.Column('costed_amount', Money(), nullable=True))
    op.add_column('nap_line', sa.Column('costed_currency', sa.String(length=3), nullable=True))
    op.add_column('nap_line', sa.Column('source', sa.Text(), nullable=True))
    op.create_index('ix_nap_line_nap_code', 'nap_line', ['nap_id', 'code'], unique=True)
    op.create_table('nap_budget_line',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('nap_id', BIG_ID, nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('institution', sa.Text(), nullable=True),
    sa.Column('nap_line_code', sa.String(length=60), nullable=True),
    sa.Column('amount', Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_usd', Money(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['nap_id'], ['nap.id'], name=op.f('fk_nap_budget_line_nap_id_nap'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nap_budget_line'))
    )
    op.create_index('ix_nap_budget_line_key', 'nap_budget_line', ['nap_id', 'code', 'year'],
                    unique=True)
    op.create_table('wps_change',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('entity', sa.String(length=24), nullable=False),
    sa.Column('entity_id', BIG_ID, nullable=True),
    sa.Column('entity_key', sa.String(length=300), nullable=False),
    sa.Column('nap_id', BIG_ID, nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('via', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wps_change'))
    )
    op.create_index('ix_wps_change_entity', 'wps_change', ['entity', 'entity_key'], unique=False)
    op.create_index(op.f('ix_wps_change_nap_id'), 'wps_change', ['nap_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_wps_change_nap_id'), table_name='wps_change')
    op.drop_index('ix_wps_change_entity', table_name='wps_change')
    op.drop_table('wps_change')
    op.drop_index('ix_nap_budget_line_key', table_name='nap_budget_line')
    op.drop_table('nap_budget_line')
    op.drop_index('ix_nap_line_nap_code', table_name='nap_line')
    op.execute("ALTER TABLE nap_line DROP COLUMN source")
    op.execute("ALTER TABLE nap_line DROP COLUMN costed_currency")
    op.execute("ALTER TABLE nap_line DROP COLUMN costed_amount")
    op.drop_index(op.f('ix_nap_code'), table_name='nap')
    op.execute("ALTER TABLE nap DROP COLUMN code")
