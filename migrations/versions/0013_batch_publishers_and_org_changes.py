"""batch publishers kept in full; registry fields a batch changed, for revert

``batch_publisher`` holds every organisation whose reports a batch holds (the revert
permission check reads it; ``import_batch.publisher_ref`` was a joined string cut at 200
characters). ``publisher_ref`` becomes TEXT so the display copy is not cut either.
Existing batches: their publishers are split from ``publisher_ref`` (a cut one keeps
what is left, which only refuses more). ``batch_org_change`` keeps an organisation's
name, type and currency as they were before a batch changed (or created) it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'batch_publisher',
        sa.Column('id', BigId, nullable=False),
        sa.Column('batch_id', BigId, nullable=False),
        sa.Column('org_ref', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'],
                                name=op.f('fk_batch_publisher_batch_id_import_batch'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_publisher')),
        sa.UniqueConstraint('batch_id', 'org_ref', name=op.f('uq_batch_publisher_batch_id')),
    )
    with op.batch_alter_table('batch_publisher', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_publisher_batch_id'), ['batch_id'],
                              unique=False)
    op.create_table(
        'batch_org_change',
        sa.Column('id', BigId, nullable=False),
        sa.Column('batch_id', BigId, nullable=False),
        sa.Column('org_ref', sa.String(length=200), nullable=False),
        sa.Column('existed', sa.Boolean(), nullable=False),
        sa.Column('name', sa.Text(), nullable=True),
        sa.Column('type', sa.String(length=10), nullable=True),
        sa.Column('default_currency', sa.String(length=3), nullable=True),
        sa.Column('prior_batch_id', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'],
                                name=op.f('fk_batch_org_change_batch_id_import_batch'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_org_change')),
    )
    with op.batch_alter_table('batch_org_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_org_change_batch_id'), ['batch_id'],
                              unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # SQLite does not enforce VARCHAR lengths; rebuilding import_batch there would
        # need foreign keys off (other tables refer to it)
        op.alter_column('import_batch', 'publisher_ref', existing_type=sa.String(length=200),
                        type_=sa.Text(), existing_nullable=True)
    # publishers of existing batches, split from the joined string
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, publisher_ref FROM import_batch "
                                "WHERE publisher_ref IS NOT NULL")).all()
    values = [{"b": bid, "r": ref} for bid, joined in rows
              for ref in sorted(set(filter(None, joined.split(","))))]
    if values:
        conn.execute(sa.text("INSERT INTO batch_publisher (batch_id, org_ref) VALUES (:b, :r)"),
                     values)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('import_batch', 'publisher_ref', existing_type=sa.Text(),
                        type_=sa.String(length=200), existing_nullable=True,
                        postgresql_using='left(publisher_ref, 200)')
    with op.batch_alter_table('batch_org_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_org_change_batch_id'))
    op.drop_table('batch_org_change')
    with op.batch_alter_table('batch_publisher', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_publisher_batch_id'))
    op.drop_table('batch_publisher')
