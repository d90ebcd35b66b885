"""flow rollup: refill with the (currency, year, recipient country) grain

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # A rollup filled under 0008 lacks grain 3: fundtrack.db.migrate (REBUILD_AFTER) refills
    # it after the upgrade, with the installed code. No schema change here.
    pass


def downgrade() -> None:
    pass
