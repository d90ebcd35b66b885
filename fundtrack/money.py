"""Exact money: one place for parsing amounts and storing them in SQL.

SQLite has no decimal type: SQLAlchemy's ``Numeric`` goes through float there, and
real IATI files carry values with up to 12 decimals. So :class:`Money` is ``NUMERIC``
(unbounded, exact) on PostgreSQL and ``TEXT`` holding the canonical decimal string on
SQLite, and :func:`money_sum` compiles to ``sum()`` on PostgreSQL and to the ``dsum``
aggregate (exact, Python ``Decimal``; registered in :mod:`fundtrack.db`) on SQLite.
"""

from __future__ import annotations

import decimal
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

#: Working precision for sums: far beyond any real amount, so nothing rounds.
SUM_CONTEXT = decimal.Context(prec=120, rounding=decimal.ROUND_HALF_EVEN)
CENT = Decimal("0.01")


class AmountError(ValueError):
    """A reported amount that is not a finite decimal number."""


def parse_amount(text: str | None) -> Decimal:
    """Parse a reported amount exactly; raise :class:`AmountError` with the text if invalid."""
    if text is None:
        raise AmountError("no amount given")
    cleaned = text.strip()
    if not cleaned:
        raise AmountError("empty amount")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise AmountError(f"not a decimal number: {cleaned[:40]!r}") from None
    if not value.is_finite():
        raise AmountError(f"not a finite number: {cleaned[:40]!r}")
    return value


def to_text(value: Decimal) -> str:
    """Canonical fixed-point text of a decimal (no exponent), as stored on SQLite."""
    return format(value, "f")


def exact_sum(values: Any) -> Decimal:
    """Sum decimals with no intermediate rounding."""
    total = Decimal(0)
    for v in values:
        if v is not None:
            total = SUM_CONTEXT.add(total, v)
    return total


class Money(TypeDecorator[Decimal]):
    """An exact decimal column: NUMERIC on PostgreSQL, canonical TEXT on SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value))
        if dialect.name == "postgresql":
            return value
        return to_text(value)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(str(value))

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return self


class money_sum(FunctionElement[Decimal]):  # noqa: N801 - reads like SQL
    """``SUM`` of a :class:`Money` column, exact on every database."""

    type = Money()
    name = "money_sum"
    inherit_cache = True


@compiles(money_sum)
def _money_sum_default(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"dsum({compiler.process(element.clauses, **kw)})"


def money_number(column: Any) -> Any:
    """A Money column as a number for comparison and ordering in SQL.

    PostgreSQL compares NUMERIC exactly; on SQLite the TEXT is cast to REAL, which orders
    correctly for any amount that differs in its first 15 significant digits.
    """
    return _MoneyNumber(column)


class _MoneyNumber(FunctionElement[Any]):
    name = "money_number"
    inherit_cache = True
    type = Numeric()


@compiles(_MoneyNumber)
def _money_number_default(element: _MoneyNumber, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_MoneyNumber, "sqlite")
def _money_number_sqlite(element: _MoneyNumber, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS REAL)"


__all__ = [
    "CENT",
    "AmountError",
    "Money",
    "exact_sum",
    "money_number",
    "money_sum",
    "parse_amount",
    "to_text",
]
