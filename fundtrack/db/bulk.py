"""Bulk writes, in one place: ids handed out before rows are written, many rows inserted
without SQLAlchemy's per-row cost (PostgreSQL ``COPY``, SQLite ``executemany``), and full
rebuilds of derived tables on PostgreSQL (load first, index once).

Millions of rows load several times faster into a table without secondary indexes and
foreign keys; building each index once afterwards costs less than maintaining it row by
row. All of it happens inside the caller's transaction, so a failure rolls the indexes
back with the rows. Other databases: nothing to do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import JSON, Connection, Date, DateTime, Table, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.schema import AddConstraint, CreateIndex
from sqlalchemy.sql import FromClause

from fundtrack.money import Money, to_text

#: At most this many ids a writer takes from a PostgreSQL sequence beyond what a chunk
#: needs (it takes as many more as the file has used, up to this).
ID_BLOCK = 10_000


@contextmanager
def indexes_after(conn: Connection, table: Table) -> Iterator[None]:
    pending = drop_for_load(conn, table)
    yield
    pending.run()


class Rebuilds:
    """Index and foreign-key builds left for after a bulk load, in this transaction.

    :meth:`start` runs them on the connection in a thread (PostgreSQL), so the caller
    can compute the next table in Python while the server builds indexes (two cores
    instead of one); the caller must not use the connection until :meth:`join` returns.
    :meth:`then` adds more server work to the same thread.
    """

    def __init__(self, conn: Connection, statements: list[str]) -> None:
        self.raw = conn.connection.dbapi_connection if statements else None
        self.background = conn.dialect.name == "postgresql"
        self.statements = statements
        self.after: list[Callable[[], object]] = []
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def then(self, work: Callable[[], object]) -> Rebuilds:
        self.after.append(work)
        return self

    def run(self) -> None:
        if self.raw is not None:
            with self.raw.cursor() as cur:  # type: ignore[union-attr]
                for sql in self.statements:
                    cur.execute(sql)
        for work in self.after:
            work()

    def _run_catching(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # re-raised by join(), in the caller's thread
            self.error = exc

    def start(self) -> Rebuilds:
        if not self.background:  # SQLite: a connection stays in its thread
            self.run()
            return self
        self.thread = threading.Thread(target=self._run_catching, name="index-builds")
        self.thread.start()
        return self

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error


def drop_for_load(conn: Connection, table: Table, emptied: tuple[FromClause, ...] = ()
                  ) -> Rebuilds:
    """PostgreSQL: drop ``table``'s non-unique indexes, and its foreign keys to the tables
    in ``emptied`` (those this rebuild also empties and reloads), before a bulk load;
    returns the builds that put them back (run them, or start them, after the load).

    A foreign key to any other table stays, its check paid row by row: dropping it
    takes an ACCESS EXCLUSIVE lock on the table it references (PostgreSQL drops that
    table's triggers) until the rebuild commits, which stops every reader of that table
    for the rebuild's length: the API's queries of the ledger, and the classification
    process reading the flows beside a many-file rebuild, which then waits on the lock
    while the rebuild waits on its rows (a deadlock past 16 chunks of rows)."""
    if conn.dialect.name != "postgresql":
        return Rebuilds(conn, [])
    # index builds sort millions of keys: in memory, not in temporary files (this transaction)
    conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    fks = [fk for fk in table.foreign_key_constraints
           if fk.name and fk.referred_table in emptied]
    for fk in fks:
        conn.execute(text(f'ALTER TABLE {table.name} DROP CONSTRAINT "{fk.name}"'))
    indexes = [ix for ix in table.indexes if not ix.unique]
    for ix in indexes:
        ix.drop(conn)
    return Rebuilds(conn, [str(CreateIndex(ix).compile(dialect=conn.dialect)) for ix in indexes]
                    + [str(AddConstraint(fk).compile(dialect=conn.dialect)) for fk in fks])


def copy_text(v: str | None) -> str:
    """A value as a field of COPY's text format (``\\N`` is NULL)."""
    if v is None:
        return "\\N"
    if "\t" in v or "\n" in v or "\r" in v or "\\" in v:
        v = v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return v


def copy_lines(conn: Connection, table: str, cols: str, lines: Iterable[str], chunk: int = 20_000) -> int:
    """Stream ready-made COPY text lines (each ending in a newline) into ``table``; a
    writer thread sends each chunk while the caller formats the next, and the server
    parses them meanwhile. Returns the row count."""
    n = 0
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
            f"COPY {table} ({cols}) FROM STDIN", writer=QueuedLibpqWriter(cur)) as copy:
        buf: list[str] = []
        for line in lines:
            buf.append(line)
            if len(buf) >= chunk:
                copy.write("".join(buf))
                n += len(buf)
                buf = []
        copy.write("".join(buf))
        n += len(buf)
    return n


def copy_field(v: object) -> str:
    """A Python value (str, int, Decimal, date or None) as a COPY text field."""
    if v is None:
        return "\\N"
    if type(v) is str:
        return copy_text(v)
    return str(v)  # int, Decimal (PostgreSQL reads its exponent form), date (ISO)


def copy_dicts(conn: Connection, table: str, rows: list[dict], cols: list[str]) -> int:
    """COPY dict rows (values as :func:`copy_field` takes them) into ``table``."""
    def lines() -> Iterator[str]:
        f = copy_field
        for r in rows:
            yield "\t".join([f(r[c]) for c in cols]) + "\n"
    return copy_lines(conn, table, ", ".join(cols), lines())


def units_text(units: int, exp: int) -> str:
    """``str(Decimal(units).scaleb(exp))`` (what PostgreSQL is sent for that value, scale
    included), with a shortcut for the common case: whole cents of at least 1.00."""
    if exp == -2 and units >= 100:
        s = str(units)
        return f"{s[:-2]}.{s[-2:]}"
    return str(Decimal(units).scaleb(exp))


def max_id(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT max(id) FROM {table}")).scalar() or 0)


def new_ids(conn: Connection, table: str, n: int) -> list[int]:
    """``n`` fresh primary keys: the table's sequence on PostgreSQL, max(id)+k on SQLite
    (safe: the batch transaction holds SQLite's write lock)."""
    if n == 0:
        return []
    if conn.dialect.name == "postgresql":  # one row (an array): no Python row per id
        seq = conn.execute(text(f"SELECT pg_get_serial_sequence('{table}', 'id')")).scalar_one()
        return list(conn.execute(text(
            "SELECT array_agg(nextval(CAST(:seq AS regclass))) FROM generate_series(1, :n)"),
            {"seq": seq, "n": int(n)}).scalar_one())
    start = max_id(conn, table) + 1
    return list(range(start, start + n))


def _enum_name(value: Any) -> Any:
    return value.name if isinstance(value, Enum) else value


def _json_text(value: Any) -> Any:
    return json.dumps(value) if value is not None else None


def _decimal_text(value: Any) -> Any:
    return to_text(value) if isinstance(value, Decimal) else value


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return value.isoformat() if isinstance(value, date) else value


def converters(table: Table, cols: list[str], sqlite: bool) -> list[Any]:
    """Per column, the function that turns a Python value into what the driver stores.

    Mirrors what the SQLAlchemy column types do, without their per-row overhead.
    """
    out: list[Any] = []
    for name in cols:
        col_type = table.c[name].type
        if isinstance(col_type, SAEnum):
            out.append(_enum_name)
        elif isinstance(col_type, JSON):
            out.append(_json_text)
        elif sqlite and isinstance(col_type, Money):
            out.append(_decimal_text)
        elif sqlite and isinstance(col_type, (Date, DateTime)):
            out.append(_iso)
        else:
            out.append(None)
    return out


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows fast, inside the caller's transaction.

    PostgreSQL: ``COPY``. SQLite: the driver's ``executemany``. Both skip SQLAlchemy's
    per-row parameter processing, which costs more than the insert itself.
    """
    if not rows:
        return
    cols = list(rows[0].keys())
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        conn.execute(table.insert(), rows)
        return
    convs = converters(table, cols, sqlite=dialect == "sqlite")
    pairs = list(zip(cols, convs, strict=True))
    values = [[conv(row[c]) if conv else row[c] for c, conv in pairs] for row in rows]
    raw = conn.connection.dbapi_connection
    if dialect == "postgresql":
        with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
            f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
        ) as copy:
            for v in values:
                copy.write_row(v)
    else:
        sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        cur = raw.cursor()  # type: ignore[union-attr]
        try:
            cur.executemany(sql, values)
        finally:
            cur.close()
