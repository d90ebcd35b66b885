"""The declarative base every table uses, with the constraint naming convention that
Alembic's migrations rely on, and the one spelling of "the current rows"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def current(table: Any) -> ColumnElement[bool]:
    """Rows of the ledger as it stands: not replaced by a later import
    (``superseded_by IS NULL``). ``table`` is a model class, a Table or an alias."""
    cols = getattr(table, "c", None)
    col = cols.superseded_by if cols is not None else table.superseded_by
    return col.is_(None)
