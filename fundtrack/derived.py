"""Derived tables, rebuilt inside the batch transaction after every import or revert.

The follow-the-money work (links, canonical movements, attribution) plugs its steps in
here; the ingest pipeline calls these two functions and knows nothing else about them.
"""

from __future__ import annotations

from sqlalchemy import Connection


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Update derived tables for a newly merged batch; return counts for the batch."""
    from fundtrack import rollup
    rollup.after_import(conn, batch_id)
    from fundtrack.accounting.stored import after_import as classification_after_import
    from fundtrack.trail.recompute import after_import as trail_after_import

    counts = trail_after_import(conn, batch_id) | classification_after_import(conn, batch_id)
    refresh_statistics(conn)
    return counts


def after_revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """Update derived tables after a batch was reverted (a full rebuild: reverts are rare)."""
    from fundtrack import rollup
    rollup.after_revert(conn, batch_id)
    from fundtrack.accounting.stored import after_revert as classification_after_revert
    from fundtrack.trail.recompute import recompute

    counts = ({k: int(v) for k, v in recompute(conn).items() if not k.startswith("seconds")}
              | classification_after_revert(conn, batch_id))
    refresh_statistics(conn)
    return counts


def refresh_statistics(conn: Connection) -> None:
    """SQLite: refresh the query planner's statistics after the ledger changed.

    SQLite never gathers them by itself; without them it picked plans that sorted every
    current flow for each page of 100 (six times slower). A bounded sample
    (``analysis_limit``) keeps this to milliseconds. PostgreSQL's autovacuum does this.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
        conn.exec_driver_sql("ANALYZE")
