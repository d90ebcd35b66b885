"""Every table of fundtrack on one ``MetaData``: what Alembic compares and migrates.

Tables live beside the code that owns them (the ledger in :mod:`fundtrack.models`, the
money trail in :mod:`fundtrack.trail.tables`, the 1325 accounting registry and stored
classification in :mod:`fundtrack.accounting.tables`, the rollup, tokens and sync runs in
theirs). Importing this module registers them all; code that looks a table up by name
(rather than importing the module that owns it) reads :data:`metadata`.
"""

from __future__ import annotations

from fundtrack import auth_models, models, rollup_models  # noqa: F401 - registers tables
from fundtrack.accounting import tables as accounting_tables  # noqa: F401
from fundtrack.db.base import Base
from fundtrack.sync import models as sync_models  # noqa: F401
from fundtrack.trail import tables as trail_tables  # noqa: F401

metadata = Base.metadata
