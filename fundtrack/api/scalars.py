"""Scalars: money is a decimal string, exact and never in exponent notation."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry
from graphql import GraphQLError


def _serialize(value: Any) -> str:
    return format(value if isinstance(value, Decimal) else Decimal(str(value)), "f")


def _parse(value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise GraphQLError(f"not a decimal number: {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise GraphQLError(f"not a finite decimal: {str(value)[:40]!r}")
    return d


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number as a string, e.g. \"1234.50\" (never rounded, no exponent).",
    serialize=_serialize,
    parse_value=_parse,
)

SCALAR_OVERRIDES: dict[object, Any] = {Decimal: DecimalScalar}
