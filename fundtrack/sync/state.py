"""The sync state store: one row per remote document, one per listed publisher.

Everything is written with Core statements on a caller's connection, so a document's
state can be written in the same transaction as the batch it became (see the runner's
``on_merge``): a run killed at any point leaves state and ledger in agreement, and the
next run picks up where it stopped without importing anything twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, select, update

from fundtrack.ledger import tables as m
from fundtrack.sync.tables import SyncDocument, SyncRun, SyncScope

DOC = SyncDocument.__table__
SCOPE = SyncScope.__table__
RUN = SyncRun.__table__


def now() -> datetime:
    return datetime.now(UTC)


def get(conn: Connection, source: str, key: str) -> RowMapping | None:
    return conn.execute(select(DOC).where(DOC.c.source == source, DOC.c.doc_key == key)
                        ).mappings().first()


def read(engine: Engine, source: str, key: str) -> RowMapping | None:
    with engine.connect() as conn:
        return get(conn, source, key)


def put(conn: Connection, source: str, key: str, **values: Any) -> None:
    """Insert or update the state of one document (only the columns given change)."""
    values = dict(values)
    values["last_seen"] = now()
    if "name" in values and values["name"] is not None:
        values["name"] = str(values["name"])
    found = conn.execute(select(DOC.c.id).where(DOC.c.source == source, DOC.c.doc_key == key)
                         ).scalar()
    if found is None:
        row = {"source": source, "doc_key": key, "status": "current", "meta": {},
               "first_seen": values["last_seen"], "scope": "", "url": "", "name": None,
               "etag": None, "last_modified": None, "sha256": None, "batch_id": None,
               "last_error": None}
        row.update(values)
        conn.execute(DOC.insert().values(**row))
    else:
        conn.execute(update(DOC).where(DOC.c.id == found).values(**values))


def put_now(engine: Engine, source: str, key: str, **values: Any) -> None:
    with engine.begin() as conn:
        put(conn, source, key, **values)


def current_in_scope(engine: Engine, source: str, scope: str) -> list[RowMapping]:
    with engine.connect() as conn:
        return list(conn.execute(select(DOC).where(
            DOC.c.source == source, DOC.c.scope == scope, DOC.c.status == "current")
            .order_by(DOC.c.doc_key)).mappings())


def last_good_count(engine: Engine, source: str, scope: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(SCOPE.c.last_good_count).where(
            SCOPE.c.source == source, SCOPE.c.scope == scope)).scalar()


def set_last_good_count(engine: Engine, source: str, scope: str, count: int) -> None:
    with engine.begin() as conn:
        found = conn.execute(select(SCOPE.c.id).where(
            SCOPE.c.source == source, SCOPE.c.scope == scope)).scalar()
        if found is None:
            conn.execute(SCOPE.insert().values(source=source, scope=scope,
                                               last_good_count=count, last_good_at=now()))
        else:
            conn.execute(update(SCOPE).where(SCOPE.c.id == found).values(
                last_good_count=count, last_good_at=now()))


def batch_status(conn: Connection, batch_id: int | None) -> str | None:
    if batch_id is None:
        return None
    return conn.execute(select(m.ImportBatch.status).where(m.ImportBatch.id == batch_id)
                        ).scalar()


def recent_runs(conn: Connection, limit: int = 50) -> list[RowMapping]:
    """The newest sync runs, for the import-history page."""
    return list(conn.execute(select(RUN).order_by(RUN.c.id.desc()).limit(limit)).mappings())
