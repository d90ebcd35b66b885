"""Policy markers keep the publisher's vocabulary-uri and codes up to 200 characters

A reporting organisation's own marker vocabulary (IATI vocabulary 99) is named by its
``vocabulary-uri`` (IOM's gender marker, ADB's gender categories); without it the
crosswalk cannot tell whose vocabulary a code belongs to. ADB's codes are words
("Effective gender mainstreaming (EGM)") that 20 characters cut.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ('policy_marker', 'flow_policy_marker')


def upgrade() -> None:
    # Batch: SQLite copies the tables (nothing points at them); PostgreSQL alters in place.
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column('vocabulary_uri', sa.String(length=300), nullable=True))
            batch_op.alter_column('code', existing_type=sa.String(length=20),
                                  type_=sa.String(length=200), existing_nullable=False)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"UPDATE {table} SET code = substr(code, 1, 20)")
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column('code', existing_type=sa.String(length=200),
                                  type_=sa.String(length=20), existing_nullable=False)
            batch_op.drop_column('vocabulary_uri')
