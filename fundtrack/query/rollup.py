"""``flowsAggregate`` answered from ``flow_rollup`` (maintained by :mod:`fundtrack.derived.rollup`).

:func:`rollup_statement` returns None whenever the question is not exactly answerable from
the rollup; the caller then runs the statement over the flows. A ``where`` translates only
where the translation is equivalent row for row: comparisons on columns the rollup holds
as they are (kind, currency, reporting org, provider, receiver, earmarking, and the
registry entries of those organisations), value-date bounds on whole years, and gender
significance conditions (the rollup and the flow filter both read the flow's one stored
gender value).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)

from fundtrack.derived.rollup.tables import FlowRollup
from fundtrack.money import money_sum
from fundtrack.query import filters as flt
from fundtrack.query.vocabulary import GENDER_STORED

#: Rollup column for each ``FlowDimension`` value (they match except the org refs).
DIMENSION_COLUMNS = {
    "kind": "kind", "currency": "currency", "year": "year",
    "recipient_country": "recipient_country", "sector": "sector",
    "gender_significance": "gender_significance", "earmarking": "earmarking",
    "reporting_org": "reporting_org_ref", "provider": "provider_ref", "receiver": "receiver_ref",
}

GRAINS: tuple[tuple[str, ...], ...] = (
    ("kind", "currency", "year", "recipient_country"),
    ("kind", "currency", "year", "sector", "gender_significance", "earmarking"),
    ("kind", "currency", "year", "recipient_country", "sector", "gender_significance",
     "earmarking", "reporting_org_ref", "provider_ref", "receiver_ref"),
    ("currency", "year", "recipient_country"),
)
#: Grain numbers, narrowest first (the number is stored, so new grains are appended).
PREFERENCE = (3, 0, 1, 2)


def grain_for(columns: set[str]) -> int | None:
    """The narrowest grain holding all ``columns``, or None."""
    for i in PREFERENCE:
        if columns <= set(GRAINS[i]):
            return i
    return None



_PLAIN = {"kind": "kind", "currency": "currency", "reporting_org_ref": "reporting_org_ref",
          "provider_ref": "provider_ref", "receiver_ref": "receiver_ref",
          "earmarking": "earmarking"}
_ORGS = {"reporting_org": "reporting_org_ref", "provider": "provider_ref",
         "receiver": "receiver_ref"}
#: FlowWhere fields that combine the others; every other field set on a filter must be
#: one the rollup answers exactly, or the query takes the base path.
_COMBINATORS = ("and_", "or_", "not_")


class _NotAnswerable(Exception):
    pass


def _years(cmp: Any, year: Any) -> ColumnElement[bool]:
    conds: list[Any] = []
    for attr in ("eq", "neq", "in_", "nin"):
        if getattr(cmp, attr) is not None:
            raise _NotAnswerable
    for attr, month, day, op in (("gte", 1, 1, "__ge__"), ("lt", 1, 1, "__lt__"),
                                 ("gt", 12, 31, "__gt__"), ("lte", 12, 31, "__le__")):
        v: date | None = getattr(cmp, attr)
        if v is None:
            continue
        if (v.month, v.day) != (month, day):
            raise _NotAnswerable
        conds.append(getattr(year, op)(v.year))
    if cmp.is_null is not None:
        conds.append(year.is_(None) if cmp.is_null else year.is_not(None))
    return and_(true(), *conds)


def _gender(cmp: Any, g: Any) -> ColumnElement[bool]:
    """The rollup holds each flow's one stored gender value (as the flow filter reads it),
    so every comparison translates exactly."""
    conds: list[Any] = []
    if cmp.is_null is not None:
        conds.append(g.is_(None) if cmp.is_null else g.is_not(None))
    if any(getattr(cmp, a) is not None for a in ("eq", "neq", "in_", "nin", "gt", "gte",
                                                 "lt", "lte")):
        ok = [x for x in GENDER_STORED.values() if flt.accepts(cmp, x)]
        # Two-valued like the EXISTS it replaces, so _not keeps its meaning.
        conds.append(and_(g.is_not(None), g.in_([str(x) for x in ok])) if ok else false())
    return and_(true(), *conds)


def _where(w: Any, used: set[str]) -> ColumnElement[bool]:
    if w is None:
        return true()
    r = FlowRollup.__table__.c
    conds: list[Any] = []
    if w.and_:
        conds.append(and_(true(), *[_where(x, used) for x in w.and_]))
    if w.or_ is not None:
        conds.append(or_(false(), *[_where(x, used) for x in w.or_]))
    if w.not_ is not None:
        conds.append(not_(_where(w.not_, used)))
    for name, value in vars(w).items():
        if value is None or name in _COMBINATORS:
            continue
        if name in _PLAIN:
            used.add(_PLAIN[name])
            conds.append(flt.compare(r[_PLAIN[name]], value))
        elif name in _ORGS:  # canonical organisations: the rollup holds reported refs
            raise _NotAnswerable
        elif name == "value_date":
            used.add("year")
            conds.append(_years(value, r.year))
        elif name == "gender_significance":
            used.add("gender_significance")
            conds.append(_gender(value, r.gender_significance))
        else:
            raise _NotAnswerable
    return and_(true(), *conds)


def rollup_statement(where: Any, dims: list[Any]) -> Any | None:
    """The grouped statement over ``flow_rollup``, with the base path's columns and order,
    or None when the rollup cannot answer exactly."""
    used: set[str] = set()
    try:
        cond = _where(where, used)
    except _NotAnswerable:
        return None
    columns = [DIMENSION_COLUMNS[d.value] for d in dims]
    if set(columns) & set(_ORGS.values()):
        return None  # grouped by canonical organisation: over the flows
    grain = grain_for(used | set(columns))
    if grain is None:
        return None
    r = FlowRollup.__table__.c
    if set(GRAINS[grain]) == {*columns, "currency"}:
        return _one_level(grain, cond, columns, dims)
    # Two levels, both hash-aggregable (a count(DISTINCT) forces a sort of every row):
    # per key and currency first, then per key, counting the currencies.
    inner_keys = [r[c] for c in columns]
    inner = select(
        *[k.label(f"k{i}") for i, k in enumerate(inner_keys)],
        r.currency.label("cur"),
        func.sum(r.flows).label("n"),
        money_sum(r.amount).label("amount"),
        money_sum(r.amount_usd).label("usd"),
        func.sum(r.flows_without_usd).label("no_usd"),
        func.min(r.first_date).label("first"),
        func.max(r.last_date).label("last"),
    ).where(r.grain == grain, cond).group_by(*inner_keys, r.currency).subquery("by_currency")
    i = inner.c
    # Year as text, like the base path, so groups come back in the same order.
    keys = [(cast(i[f"k{n}"], String) if c == "year" else i[f"k{n}"]).label(d.value)
            for n, (c, d) in enumerate(zip(columns, dims, strict=True))]
    stmt = select(
        *keys,
        cast(func.sum(i.n), BigInteger).label("count"),
        money_sum(i.amount).label("sum"),
        money_sum(i.usd).label("sum_usd"),
        cast(func.sum(i.no_usd), BigInteger).label("count_without_usd"),
        func.count(i.cur).label("currencies"),
        func.count(case((i.cur.is_(None), 1))).label("no_currency"),
        func.min(i.first).label("first_date"),
        func.max(i.last).label("last_date"),
    )
    if keys:
        positions = [literal_column(str(n + 1)) for n in range(len(keys))]
        stmt = stmt.group_by(*positions).order_by(*positions)
    return stmt


def _one_level(grain: int, cond: Any, columns: list[str], dims: list[Any]) -> Any:
    """The same statement when the grain's key is exactly the grouped columns and currency.

    Rows of one grain are unique on its key (the rollup groups by it), so the first level
    would copy every row: skip it. The grain rows of a group then hold one currency each,
    so counting them counts the currencies. (1M synthetic flows, by year and country:
    the grouped statement goes from ~30 ms to ~12 ms.)
    """
    r = FlowRollup.__table__.c
    keys = [(cast(r[c], String) if c == "year" else r[c]).label(d.value)
            for c, d in zip(columns, dims, strict=True)]
    stmt = select(
        *keys,
        cast(func.sum(r.flows), BigInteger).label("count"),
        money_sum(r.amount).label("sum"),
        money_sum(r.amount_usd).label("sum_usd"),
        cast(func.sum(r.flows_without_usd), BigInteger).label("count_without_usd"),
        func.count(r.currency).label("currencies"),
        func.count(case((r.currency.is_(None), 1))).label("no_currency"),
        func.min(r.first_date).label("first_date"),
        func.max(r.last_date).label("last_date"),
    ).where(r.grain == grain, cond)
    if keys:
        positions = [literal_column(str(n + 1)) for n in range(len(keys))]
        stmt = stmt.group_by(*positions).order_by(*positions)
    return stmt
