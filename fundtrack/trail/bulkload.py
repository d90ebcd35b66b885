"""Full rebuilds of derived tables on PostgreSQL: load first, index once.

Millions of rows load several times faster into a table without secondary indexes and
foreign keys; building each index once afterwards costs less than maintaining it row by
row. All of it happens inside the caller's transaction, so a failure rolls the indexes
back with the rows. Other databases: nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Table, text
from sqlalchemy.schema import AddConstraint


@contextmanager
def indexes_after(conn: Connection, table: Table) -> Iterator[None]:
    if conn.dialect.name != "postgresql":
        yield
        return
    # index builds sort millions of keys: in memory, not in temporary files (this transaction)
    conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    fks = [fk for fk in table.foreign_key_constraints if fk.name]
    for fk in fks:
        conn.execute(text(f'ALTER TABLE {table.name} DROP CONSTRAINT "{fk.name}"'))
    indexes = [ix for ix in table.indexes if not ix.unique]
    for ix in indexes:
        ix.drop(conn)
    yield
    for ix in indexes:
        ix.create(conn)
    for fk in fks:
        conn.execute(AddConstraint(fk))
