"""Every table of fundtrack on one ``MetaData``: what Alembic compares and migrates.

Tables live beside the code that owns them (the ledger in :mod:`fundtrack.ledger.tables`, the
money trail in :mod:`fundtrack.derived.trail.tables`, the 1325 accounting registry and stored
classification in :mod:`fundtrack.accounting.tables`, the rollup, tokens and sync runs in
theirs). Importing this module registers them all; code that looks a table up by name
(rather than importing the module that owns it) reads :data:`metadata`.
"""

from __future__ import annotations

from fundtrack.accounting import tables as accounting_tables  # noqa: F401 - registers tables
from fundtrack.auth import tables as auth_tables  # noqa: F401
from fundtrack.db.base import Base
from fundtrack.derived.rollup import tables as rollup_tables  # noqa: F401
from fundtrack.derived.trail import tables as trail_tables  # noqa: F401
from fundtrack.identity import tables as identity_tables  # noqa: F401
from fundtrack.ledger import tables as ledger_tables  # noqa: F401
from fundtrack.sync import tables as sync_tables  # noqa: F401

metadata = Base.metadata
