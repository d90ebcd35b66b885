"""flow rollup (pre-aggregated current flows for flowsAggregate)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import fundtrack.money


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('flow_rollup',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('grain', sa.SmallInteger(), nullable=False),
    sa.Column('kind', sa.Enum('INCOMING_FUNDS', 'OUTGOING_COMMITMENT', 'DISBURSEMENT', 'EXPENDITURE', 'INTEREST_PAYMENT', 'LOAN_REPAYMENT', 'REIMBURSEMENT', 'PURCHASE_OF_EQUITY', 'SALE_OF_EQUITY', 'CREDIT_GUARANTEE', 'INCOMING_COMMITMENT', 'OUTGOING_PLEDGE', 'INCOMING_PLEDGE', name='flowkind', native_enum=False, length=32), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('recipient_country', sa.String(length=10), nullable=True),
    sa.Column('sector', sa.String(length=60), nullable=True),
    sa.Column('gender_significance', sa.String(length=10), nullable=True),
    sa.Column('earmarking', sa.Integer(), nullable=True),
    sa.Column('reporting_org_ref', sa.String(length=200), nullable=True),
    sa.Column('provider_ref', sa.String(length=200), nullable=True),
    sa.Column('receiver_ref', sa.String(length=200), nullable=True),
    sa.Column('flows', sa.BigInteger(), nullable=False),
    sa.Column('flows_without_usd', sa.BigInteger(), nullable=False),
    sa.Column('amount', fundtrack.money.Money(), nullable=True),
    sa.Column('amount_usd', fundtrack.money.Money(), nullable=True),
    sa.Column('first_date', sa.Date(), nullable=True),
    sa.Column('last_date', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_rollup'))
    )
    with op.batch_alter_table('flow_rollup', schema=None) as batch_op:
        batch_op.create_index('ix_flow_rollup_grain_year', ['grain', 'year'], unique=False)
    # Existing ledgers are filled after the upgrade by fundtrack.db.migrate (REBUILD_AFTER),
    # with the code of the installed version: a migration never runs model code.


def downgrade() -> None:
    with op.batch_alter_table('flow_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_flow_rollup_grain_year')
    op.drop_table('flow_rollup')
