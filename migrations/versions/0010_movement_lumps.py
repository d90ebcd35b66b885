"""movement: a flow may be in several movements (lump matching)

A lump disbursement matched to several incoming funds (or several tranches to one
receipt) is one movement per record of the "many" side, so ``flow_id`` and
``mirror_flow_id`` are no longer unique; plain indexes keep the look-ups by flow.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('movement', schema=None) as batch_op:
        batch_op.drop_constraint('uq_movement_flow_id', type_='unique')
        batch_op.drop_constraint('uq_movement_mirror_flow_id', type_='unique')
        batch_op.create_index('ix_movement_flow_id', ['flow_id'], unique=False)
        batch_op.create_index('ix_movement_mirror_flow_id', ['mirror_flow_id'], unique=False)
    # the movements are rebuilt with the lump rule by fundtrack.db.migrate (REBUILD_AFTER)


def downgrade() -> None:
    # lump movements repeat a flow: drop them all; `fundtrack recompute` under the older
    # code rebuilds them one-to-one
    op.execute("DELETE FROM trail_reach")
    op.execute("DELETE FROM attribution")
    op.execute("DELETE FROM movement")
    with op.batch_alter_table('movement', schema=None) as batch_op:
        batch_op.drop_index('ix_movement_mirror_flow_id')
        batch_op.drop_index('ix_movement_flow_id')
        batch_op.create_unique_constraint('uq_movement_mirror_flow_id', ['mirror_flow_id'])
        batch_op.create_unique_constraint('uq_movement_flow_id', ['flow_id'])
