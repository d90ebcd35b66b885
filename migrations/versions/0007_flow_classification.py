"""flow classification (scope and WPS pillars, derived)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('flow_classification',
    sa.Column('flow_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dimension', sa.String(length=40), nullable=False),
    sa.Column('is_in', sa.Boolean(), nullable=False),
    sa.Column('rules', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['flow_id'], ['flow.id'], name=op.f('fk_flow_classification_flow_id_flow'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('flow_id', 'dimension', name=op.f('pk_flow_classification'))
    )
    with op.batch_alter_table('flow_classification', schema=None) as batch_op:
        batch_op.create_index('ix_flow_classification_dimension', ['dimension', 'is_in'], unique=False)
    # Existing ledgers: run `fundtrack recompute` (or accounting.stored.rebuild) to fill it.


def downgrade() -> None:
    with op.batch_alter_table('flow_classification', schema=None) as batch_op:
        batch_op.drop_index('ix_flow_classification_dimension')
    op.drop_table('flow_classification')
