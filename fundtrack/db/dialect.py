"""What differs between PostgreSQL and SQLite, in one place.

The code above the database asks for an effect (empty these tables, refresh the planner's
statistics, take the writers' lock, give this transaction more sort memory) and this module
knows how each database does it, or that it need not. SQL expressions that differ (a year
from a date, a JSON field) stay in the query layer's dimension expressions, which compile
per dialect; bulk ``COPY`` against ``executemany`` is :mod:`fundtrack.db.bulk`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def empty(conn: Connection, *tables: str) -> None:
    """Remove every row of the named tables inside the transaction. PostgreSQL: one
    ``TRUNCATE`` (no per-row work, no cascade row by row); elsewhere ``DELETE``, in the
    order given (children first)."""
    if is_postgres(conn):
        conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
    else:
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))


def set_local(conn: Connection, **settings: str) -> None:
    """PostgreSQL: server settings for the rest of this transaction (``work_mem``, ``jit``,
    ``statement_timeout``); other databases have no such knobs."""
    if is_postgres(conn):
        for name, value in settings.items():
            conn.exec_driver_sql(f"SET LOCAL {name} = {value}")


@contextmanager
def planner_off(conn: Connection, setting: str) -> Iterator[None]:
    """PostgreSQL: turn a planner method (e.g. ``enable_nestloop``) off for the statements
    inside, then put it back, within the same transaction."""
    if not is_postgres(conn):
        yield
        return
    old = conn.exec_driver_sql(f"SHOW {setting}").scalar()
    conn.exec_driver_sql(f"SELECT set_config('{setting}', 'off', true)")
    yield
    conn.exec_driver_sql(f"SELECT set_config('{setting}', %(v)s, true)", {"v": old})


def analyze(conn: Connection, table: str) -> None:
    """PostgreSQL: the planner's estimates for a table just reloaded in bulk (autovacuum
    would come too late for the next query)."""
    if is_postgres(conn):
        conn.exec_driver_sql(f"ANALYZE {table}")


def refresh_statistics(conn: Connection) -> None:
    """SQLite: refresh the query planner's statistics after the ledger changed.

    SQLite never gathers them by itself; without them it picked plans that sorted every
    current flow for each page of 100 (six times slower). A bounded sample
    (``analysis_limit``) keeps this to milliseconds. PostgreSQL's autovacuum does this.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
        conn.exec_driver_sql("ANALYZE")


def first_statistics(conn: Connection) -> None:
    """PostgreSQL: ANALYZE every table of the schema that holds rows and was never
    analyzed (``reltuples`` is -1 until then); one catalog query when there is none.

    Autovacuum analyzes a table a minute or more after it fills, too late for a set of
    files loaded into a new database: with no statistics at all the planner guessed 20
    rows for 8,500 current activities and hashed all of them to supersede each file's
    (4 ms a file instead of 0.5). Statistics taken once scale with the table's pages, so
    the first are enough until autovacuum refreshes them."""
    if not is_postgres(conn):
        return
    never = conn.exec_driver_sql(
        "SELECT c.oid::regclass::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.reltuples < 0 "
        "AND pg_relation_size(c.oid) > 0 ORDER BY 1").scalars().all()
    for table in never:
        analyze(conn, table)


def short_queries(conn: Connection) -> None:
    """PostgreSQL: no JIT compilation for the rest of the transaction.

    An import's derived-table update asks many small questions whose row estimates at 10M
    flows cross ``jit_above_cost``; compiling them cost more than running them (one reach
    query: 0.95 s of JIT for 0.06 s of work)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def writers_lock(conn: Connection, key: int, statement_timeout_ms: int) -> None:
    """Serialise writers for the rest of the transaction. PostgreSQL: a transaction-scoped
    advisory lock (readers are never blocked), after leaving the API's statement timeout for
    ``statement_timeout_ms``. SQLite: the ``BEGIN IMMEDIATE`` that starts every write
    transaction already holds the database's write lock."""
    if is_postgres(conn):
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
