"""Derived tables, rebuilt inside the batch transaction after every import or revert.

The follow-the-money work (links, canonical movements, attribution) plugs its steps in
here; the ingest pipeline calls these two functions and knows nothing else about them.
"""

from __future__ import annotations

from sqlalchemy import Connection


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Update derived tables for a newly merged batch; return counts for the batch."""
    return {}


def after_revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """Update derived tables after a batch was reverted."""
    return {}
