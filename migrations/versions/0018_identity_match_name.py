"""Party resolutions keep the normalised name the resolver compared (``match_name``),
indexed: an import's identity update finds the parties a new registry row or party can
move by ref and by that name, instead of resolving every party again

Existing rows are filled here from ``name_key`` and ``ref`` with the resolver's own
``normalise`` (a pure function; no model code runs on the older schema).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    from fundtrack.identity.names import normalise
    from fundtrack.identity.resolve import ref_is_a_name

    with op.batch_alter_table('party_resolution') as batch_op:
        batch_op.add_column(sa.Column('match_name', sa.String(length=300), server_default='',
                                      nullable=False))
    conn = op.get_bind()
    pr = sa.table('party_resolution', sa.column('id'), sa.column('ref'),
                  sa.column('name_key'), sa.column('match_name'))
    rows = conn.execute(sa.select(pr.c.id, pr.c.ref, pr.c.name_key)).all()
    updates = []
    for pid, ref, name in rows:
        ref = (ref or '').strip()
        n = normalise((name or '').strip() or (ref if ref and ref_is_a_name(ref) else None))
        if n:
            updates.append({'pid': pid, 'n': n})
    if updates:
        conn.execute(pr.update().where(pr.c.id == sa.bindparam('pid'))
                     .values(match_name=sa.bindparam('n')), updates)
    op.create_index('ix_party_resolution_match_name', 'party_resolution', ['match_name'])


def downgrade() -> None:
    op.drop_index('ix_party_resolution_match_name', table_name='party_resolution')
    with op.batch_alter_table('party_resolution') as batch_op:
        batch_op.drop_column('match_name')
