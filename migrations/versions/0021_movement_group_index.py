"""An index on a movement's group (src org, dst org): an update reads the movements of the
groups a batch touches, and asks of each whether an earlier flow can join the batch's
(issue 17); by the src index alone each read scanned every movement of the payer

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0021'
down_revision: Union[str, None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_movement_group', 'movement', ['src_org', 'dst_org'])


def downgrade() -> None:
    op.drop_index('ix_movement_group', table_name='movement')
