"""Sync state and runs: what was fetched from where, when, and what came of it.

``sync_document`` is the resumable state: one row per remote document a source knows
(a Registry dataset by its Registry id, an FTS or Datastore page by its query and page),
with the validators (ETag, Last-Modified) and sha256 of the last good download and the
batch it became. ``sync_scope`` remembers the size of the last good listing of each
publisher, so a listing that suddenly answers with far fewer datasets is not trusted to
withdraw anything. ``sync_run`` is one source in one ``fundtrack sync``: counts, failures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fundtrack.db.base import Base, BigId


class SyncDocument(Base):
    """One remote document of one source, and where the last sync left it."""

    __tablename__ = "sync_document"
    __table_args__ = (UniqueConstraint("source", "doc_key", name="uq_sync_document_source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(200))
    doc_key: Mapped[str] = mapped_column(String(500))
    name: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_batch.id", ondelete="SET NULL"), index=True)
    # current | withdrawn | failed
    status: Mapped[str] = mapped_column(String(16))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class SyncScope(Base):
    """The last listing of one publisher (or query) that was trusted."""

    __tablename__ = "sync_scope"
    __table_args__ = (UniqueConstraint("source", "scope", name="uq_sync_scope_source_scope"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(200))
    last_good_count: Mapped[int] = mapped_column(Integer)
    last_good_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SyncRun(Base):
    """One source synced once: when, from where, what happened, what failed."""

    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    source_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # running | ok | failed (some documents failed) | interrupted
    status: Mapped[str] = mapped_column(String(16))
    listed: Mapped[int] = mapped_column(Integer, default=0)
    downloaded: Mapped[int] = mapped_column(Integer, default=0)
    not_modified: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_downloaded: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
