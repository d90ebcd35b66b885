"""Scalars: money is a decimal string, exact and never in exponent notation."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry
from graphql import GraphQLError


def _serialize(value: Any) -> str:
    return format(value if isinstance(value, Decimal) else Decimal(str(value)), "f")


#: Largest power of ten a decimal argument may have, either way.
MAX_EXPONENT = 100


def _parse(value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise GraphQLError(f"not a decimal number: {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise GraphQLError(f"not a finite decimal: {str(value)[:40]!r}")
    if d and not -MAX_EXPONENT <= d.adjusted() <= MAX_EXPONENT:
        # PostgreSQL refused 1e999999999 ("value overflows numeric format"): an internal
        # error before; no amount is anywhere near (the ledger stores below 10^18).
        raise GraphQLError(f"decimal {str(value)[:40]!r} is out of range (at most "
                           f"{MAX_EXPONENT} digits before or after the point)")
    return d


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number as a string, e.g. \"1234.50\" (never rounded, no exponent).",
    serialize=_serialize,
    parse_value=_parse,
)

SCALAR_OVERRIDES: dict[object, Any] = {Decimal: DecimalScalar}
