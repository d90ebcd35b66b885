"""sync from the IATI Registry, the IATI Datastore and FTS: state, scopes, runs; batch source URL

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): other tables point at import_batch.
    op.add_column('import_batch', sa.Column('source_url', sa.Text(), nullable=True))
    op.create_table('sync_document',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('doc_key', sa.String(length=500), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('etag', sa.Text(), nullable=True),
    sa.Column('last_modified', sa.String(length=64), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('batch_id', BIG_ID, nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'], name=op.f('fk_sync_document_batch_id_import_batch'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_document')),
    sa.UniqueConstraint('source', 'doc_key', name='uq_sync_document_source_key')
    )
    with op.batch_alter_table('sync_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_document_batch_id'), ['batch_id'], unique=False)
    op.create_table('sync_scope',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('last_good_count', sa.Integer(), nullable=False),
    sa.Column('last_good_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_scope')),
    sa.UniqueConstraint('source', 'scope', name='uq_sync_scope_source_scope')
    )
    op.create_table('sync_run',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('source_type', sa.String(length=40), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('listed', sa.Integer(), nullable=False),
    sa.Column('downloaded', sa.Integer(), nullable=False),
    sa.Column('not_modified', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('withdrawn', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('bytes_downloaded', sa.BigInteger(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_run'))
    )
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_run_source'), ['source'], unique=False)


def downgrade() -> None:
    op.drop_table('sync_run')
    op.drop_table('sync_scope')
    with op.batch_alter_table('sync_document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_document_batch_id'))
    op.drop_table('sync_document')
    # SQLite 3.35+ drops a column in place; a batch copy would break the foreign keys.
    op.execute('ALTER TABLE import_batch DROP COLUMN source_url')
