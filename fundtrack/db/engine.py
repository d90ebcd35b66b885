"""Engines and sessions: the only place that knows how to connect."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, event

from fundtrack.config import get_settings
from fundtrack.db.text import fold_text
from fundtrack.money import SUM_CONTEXT


class _DecimalSum:
    """SQLite aggregate ``dsum(text)``: exact decimal sum, returned as canonical text."""

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.seen = False

    def step(self, value: Any) -> None:
        if value is None:
            return
        self.seen = True
        self.total = SUM_CONTEXT.add(self.total, Decimal(str(value)))

    def finalize(self) -> str | None:
        return format(self.total, "f") if self.seen else None


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions start (see begin below).
        dbapi_conn.isolation_level = None
        dbapi_conn.create_aggregate("dsum", 1, _DecimalSum)  # type: ignore[arg-type]
        dbapi_conn.create_function("ft_fold", 1, fold_text, deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so an import batch sees a stable
        # database from its first read (id allocation) to its commit.
        # Readers (execution option readonly=True, used by the API) take a deferred BEGIN.
        readonly = conn.get_execution_options().get("readonly")
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def _setup_postgres(engine: Engine, statement_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if statement_timeout_ms:
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
            dbapi_conn.commit()


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` URLs and route them to psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str | None = None, *, statement_timeout_ms: int | None = None) -> Engine:
    """Create an engine for ``url`` (default: ``FUNDTRACK_DATABASE_URL``) with our hooks."""
    settings = get_settings()
    url = normalise_url(url or settings.database_url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _setup_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        timeout = settings.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
        _setup_postgres(engine, timeout)
    return engine
