"""Full rebuilds of derived tables on PostgreSQL: load first, index once.

Millions of rows load several times faster into a table without secondary indexes and
foreign keys; building each index once afterwards costs less than maintaining it row by
row. All of it happens inside the caller's transaction, so a failure rolls the indexes
back with the rows. Other databases: nothing to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, Table, text
from sqlalchemy.schema import AddConstraint, CreateIndex


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


def drop_for_load(conn: Connection, table: Table) -> Rebuilds:
    """PostgreSQL: drop ``table``'s foreign keys and non-unique indexes before a bulk load;
    returns the builds that put them back (run them, or start them, after the load)."""
    if conn.dialect.name != "postgresql":
        return Rebuilds(conn, [])
    # index builds sort millions of keys: in memory, not in temporary files (this transaction)
    conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    fks = [fk for fk in table.foreign_key_constraints if fk.name]
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
