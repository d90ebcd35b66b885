"""Organisation identity (issue 15): canonical organisations, identifiers, names, party
resolutions, flow parties, match candidates and people's decisions

Every table but ``org_decision`` is derived: the data migration fills them by running the
identity step and then rebuilds the steps that read canonical ids.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('canonical_org',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('ref', sa.String(length=200), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=10), nullable=True),
    sa.Column('country', sa.String(length=10), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('is_pooled_fund', sa.Boolean(), nullable=False),
    sa.Column('is_womens_rights_org', sa.Boolean(), nullable=False),
    sa.Column('merged_into_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canonical_org')),
    sa.UniqueConstraint('ref', name=op.f('uq_canonical_org_ref'))
    )
    op.create_table('org_decision',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('value', sa.String(length=200), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('via', sa.String(length=300), nullable=True),
    sa.Column('reverted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reverted_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_decision'))
    )
    op.create_table('flow_party',
    sa.Column('flow_id', BIG_ID, autoincrement=False, nullable=False),
    sa.Column('provider_org_id', sa.BigInteger(), nullable=True),
    sa.Column('receiver_org_id', sa.BigInteger(), nullable=True),
    sa.Column('reporter_org_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['flow_id'], ['flow.id'], name=op.f('fk_flow_party_flow_id_flow'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('flow_id', name=op.f('pk_flow_party'))
    )
    for col in ('provider_org_id', 'receiver_org_id', 'reporter_org_id'):
        op.create_index(op.f(f'ix_flow_party_{col}'), 'flow_party', [col], unique=False)
    op.create_table('org_identifier',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('org_id', BIG_ID, nullable=False),
    sa.Column('scheme', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('requires_name', sa.Boolean(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['canonical_org.id'], name=op.f('fk_org_identifier_org_id_canonical_org'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_identifier'))
    )
    op.create_index(op.f('ix_org_identifier_org_id'), 'org_identifier', ['org_id'], unique=False)
    op.create_index('ix_org_identifier_value', 'org_identifier', ['value'], unique=True)
    op.create_table('org_name',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('org_id', BIG_ID, nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('normalised', sa.String(length=300), nullable=False),
    sa.Column('lang', sa.String(length=10), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['canonical_org.id'], name=op.f('fk_org_name_org_id_canonical_org'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_name'))
    )
    op.create_index(op.f('ix_org_name_normalised'), 'org_name', ['normalised'], unique=False)
    op.create_index(op.f('ix_org_name_org_id'), 'org_name', ['org_id'], unique=False)
    op.create_table('party_resolution',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('ref', sa.String(length=200), nullable=False),
    sa.Column('name_key', sa.String(length=300), nullable=False),
    sa.Column('reported_type', sa.String(length=10), nullable=True),
    sa.Column('org_id', BIG_ID, nullable=False),
    sa.Column('rule', sa.String(length=24), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['canonical_org.id'], name=op.f('fk_party_resolution_org_id_canonical_org'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_resolution'))
    )
    op.create_index('ix_party_resolution_key', 'party_resolution', ['ref', 'name_key'], unique=False)
    op.create_index(op.f('ix_party_resolution_org_id'), 'party_resolution', ['org_id'], unique=False)
    op.create_table('match_candidate',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('party_ref', sa.String(length=200), nullable=False),
    sa.Column('party_name', sa.String(length=300), nullable=False),
    sa.Column('org_id', BIG_ID, nullable=False),
    sa.Column('candidate_org_id', BIG_ID, nullable=False),
    sa.Column('rule', sa.String(length=24), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['candidate_org_id'], ['canonical_org.id'], name=op.f('fk_match_candidate_candidate_org_id_canonical_org'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['canonical_org.id'], name=op.f('fk_match_candidate_org_id_canonical_org'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_candidate'))
    )
    op.create_index(op.f('ix_match_candidate_candidate_org_id'), 'match_candidate', ['candidate_org_id'], unique=False)
    op.create_index(op.f('ix_match_candidate_org_id'), 'match_candidate', ['org_id'], unique=False)


def downgrade() -> None:
    for t in ('match_candidate', 'party_resolution', 'org_name', 'org_identifier',
              'flow_party', 'org_decision', 'canonical_org'):
        op.drop_table(t)
