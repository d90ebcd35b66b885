"""Every table of fundtrack on one ``MetaData``: what Alembic compares and migrates.

Importing this module registers them all; code that looks a table up by name (rather
than importing the module that owns it) reads :data:`metadata`.
"""

from __future__ import annotations

from fundtrack import (  # noqa: F401 - imported to register their tables
    accounting_models,
    auth_models,
    models,
    rollup_models,
    trail_models,
)
from fundtrack.db.base import Base
from fundtrack.sync import models as sync_models  # noqa: F401

metadata = Base.metadata
