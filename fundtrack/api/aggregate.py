"""``flowsAggregate``: Hasura-style grouped totals, one SQL statement per call.

Sums are exact (:func:`fundtrack.money.money_sum`) and returned as decimal strings.
``sum`` is in the original currency and is null for a group that mixes currencies
(group by CURRENCY to get them); ``sumUsd`` adds the USD amounts and ``countWithoutUsd``
says how many flows of the group had no USD rate and are therefore missing from it.
"""

from __future__ import annotations

import enum
import os
from datetime import date
from decimal import Decimal
from typing import Any

import strawberry
from sqlalchemy import Connection, String, and_, case, cast, func, literal_column, select
from strawberry.types import Info

from fundtrack import models as m
from fundtrack.api.types import GENDER_CODE, GENDER_VOCABULARY, VALID_SIGNIFICANCE, FlowKind
from fundtrack.money import money_sum

#: Answer from ``flow_rollup`` when it can (fundtrack.api.rollup); tests switch it off to
#: compare both paths. FUNDTRACK_AGGREGATE_ROLLUP=0 turns it off for a server.
USE_ROLLUP = os.environ.get("FUNDTRACK_AGGREGATE_ROLLUP", "1") != "0"
_NO_WHERE_GIVEN: Any = object()


@strawberry.enum(description="What to group flows by.")
class FlowDimension(enum.Enum):
    KIND = "kind"
    PROVIDER = "provider"
    RECEIVER = "receiver"
    REPORTING_ORG = "reporting_org"
    RECIPIENT_COUNTRY = "recipient_country"
    SECTOR = "sector"
    YEAR = "year"
    CURRENCY = "currency"
    GENDER_SIGNIFICANCE = "gender_significance"
    EARMARKING = "earmarking"


def _year(dialect: str) -> Any:
    f = m.Flow.value_date
    if dialect == "sqlite":
        return cast(func.strftime("%Y", f), String)
    return cast(func.extract("year", f), String)


def _activity_single(table: Any, column: Any, name: str, *extra: Any) -> Any:
    """Per activity, its single value of ``column`` (absent when it has none or several).

    A derived table joined once (not a subquery per flow): over 1M flows the correlated
    form cost a lookup per row.
    """
    return (select(table.c.activity_id.label("activity_id"), func.min(column).label("value"))
            .where(*extra).group_by(table.c.activity_id).having(func.count() == 1)
            .subquery(name))


_ACTIVITY_DIMS = (FlowDimension.RECIPIENT_COUNTRY, FlowDimension.SECTOR,
                  FlowDimension.GENDER_SIGNIFICANCE)


def _joins(dims: list[FlowDimension]) -> dict[FlowDimension, Any]:
    t = m.Base.metadata.tables
    ac, s, pm = t["activity_country"], t["activity_sector"], t["policy_marker"]
    out: dict[FlowDimension, Any] = {}
    if FlowDimension.RECIPIENT_COUNTRY in dims:
        out[FlowDimension.RECIPIENT_COUNTRY] = _activity_single(ac, ac.c.code, "one_country")
    if FlowDimension.SECTOR in dims:
        out[FlowDimension.SECTOR] = _activity_single(
            s, s.c.code, "one_sector", func.coalesce(s.c.vocabulary, "1") == "1")
    if FlowDimension.GENDER_SIGNIFICANCE in dims:
        out[FlowDimension.GENDER_SIGNIFICANCE] = (
            select(pm.c.activity_id.label("activity_id"),
                   func.max(pm.c.significance).label("value"))
            .where(pm.c.vocabulary == GENDER_VOCABULARY, pm.c.code == GENDER_CODE,
                   pm.c.significance.in_(VALID_SIGNIFICANCE))
            .group_by(pm.c.activity_id).subquery("gender"))
    return out


def dimension_expr(dim: FlowDimension, dialect: str,
                   joined: dict[FlowDimension, Any] | None = None) -> Any:
    """The SQL expression a dimension groups by. Documented in docs/api.md.

    Activity-level dimensions read ``joined`` (the derived tables of :func:`_joins`, for
    one grouped statement); without it they are correlated scalar subqueries, usable in
    any select over flows (e.g. :mod:`fundtrack.export`).
    """
    f = m.Flow
    if joined is None and dim in _ACTIVITY_DIMS:
        sub = _joins([dim])[dim]
        return select(sub.c.value).where(sub.c.activity_id == f.activity_id).scalar_subquery()
    if dim is FlowDimension.KIND:
        return f.kind
    if dim is FlowDimension.PROVIDER:
        return f.provider_ref
    if dim is FlowDimension.RECEIVER:
        return f.receiver_ref
    if dim is FlowDimension.REPORTING_ORG:
        return f.reporting_org_ref
    if dim is FlowDimension.CURRENCY:
        return f.currency
    if dim is FlowDimension.EARMARKING:
        return f.earmarking
    if dim is FlowDimension.YEAR:
        return _year(dialect)
    if dim is FlowDimension.RECIPIENT_COUNTRY:
        # The flow's own country, else its activity's only country.
        assert joined is not None
        return func.coalesce(f.recipient_country, joined[dim].c.value)
    if dim is FlowDimension.SECTOR:
        # The flow's own DAC sector, else its activity's only DAC (vocabulary 1) sector.
        assert joined is not None
        return func.coalesce(f.sector_code, joined[dim].c.value)
    if dim is FlowDimension.GENDER_SIGNIFICANCE:
        assert joined is not None
        return joined[dim].c.value
    raise AssertionError(dim)


@strawberry.type(description="Totals for one combination of the grouped dimensions.")
class FlowGroup:
    kind: FlowKind | None  # type: ignore[valid-type]
    provider: str | None
    receiver: str | None
    reporting_org: str | None
    recipient_country: str | None
    sector: str | None
    year: int | None
    currency: str | None
    gender_significance: int | None
    earmarking: int | None
    count: int
    sum: Decimal | None = strawberry.field(
        description="Sum in the original currency; null when the group mixes currencies.")
    sum_usd: Decimal | None = strawberry.field(
        description="Sum of the USD amounts of the flows that have one.")
    count_without_usd: int = strawberry.field(
        description="Flows in this group with no USD rate (left out of sumUsd).")
    currencies: int = strawberry.field(description="How many currencies the group holds.")
    first_date: date | None
    last_date: date | None


@strawberry.type
class FlowAggregate:
    group_by: list[FlowDimension]
    groups: list[FlowGroup]

    @strawberry.field(description="Number of flows matched, over all groups.")
    def count(self) -> int:
        return sum(g.count for g in self.groups)


def aggregate_statement(where_clause: Any, dims: list[FlowDimension], dialect: str,
                        where: Any = _NO_WHERE_GIVEN) -> Any:
    """The one grouped statement: over ``flow_rollup`` when ``where`` (the filter input
    ``where_clause`` was compiled from) and ``dims`` allow it and USE_ROLLUP is on, else
    over the flows."""
    if USE_ROLLUP and where is not _NO_WHERE_GIVEN:
        from fundtrack.api.rollup import rollup_statement

        stmt = rollup_statement(where, dims)
        if stmt is not None:
            return stmt
    f = m.Flow
    joined = _joins(dims)
    keys = [dimension_expr(d, dialect, joined).label(d.value) for d in dims]
    cols = [
        *keys,
        func.count().label("count"),
        money_sum(f.amount).label("sum"),
        money_sum(f.amount_usd).label("sum_usd"),
        (func.count() - func.count(f.amount_usd)).label("count_without_usd"),
        func.count(func.distinct(f.currency)).label("currencies"),
        func.count(case((f.currency.is_(None), 1))).label("no_currency"),
        func.min(f.value_date).label("first_date"),
        func.max(f.value_date).label("last_date"),
    ]
    source: Any = m.Flow.__table__
    for sub in joined.values():
        source = source.outerjoin(sub, sub.c.activity_id == f.activity_id)
    stmt = select(*cols).select_from(source).where(and_(f.superseded_by.is_(None), where_clause))
    if keys:
        # Positions, not names: a label like "currency" would mean the raw column in GROUP BY.
        positions = [literal_column(str(i + 1)) for i in range(len(keys))]
        stmt = stmt.group_by(*positions).order_by(*positions)
    return stmt


_NO_VALUES = {d.value: None for d in FlowDimension}
#: The statement's columns after the dimension keys, in order.
_TOTALS = ("count", "sum", "sum_usd", "count_without_usd", "currencies", "no_currency",
           "first_date", "last_date")


def _decimal(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _int(v: Any) -> int:
    """A year or score as the database returns it: int, or text such as "2015"."""
    return v if type(v) is int else int(v) if isinstance(v, str) and v.isdigit() \
        else int(Decimal(str(v)))


def _groups(rows: list[Any], dims: list[str]) -> list[FlowGroup]:
    """One ``FlowGroup`` per row with flows (rows are tuples: the keys, then ``_TOTALS``;
    plain tuples and positions rather than row mappings and names: 2,265 groups by year
    and country went from ~9 ms to ~6 ms)."""
    n = len(dims)
    ints = [i for i, d in enumerate(dims) if d in ("year", "gender_significance")]
    out = []
    for row in rows:
        count, total, usd, without, currencies, no_currency, first, last = row[n:]
        if not count:
            continue
        keys = list(row[:n])
        for i in ints:
            if keys[i] is not None:
                keys[i] = _int(keys[i])
        mixed = currencies + (1 if no_currency else 0) > 1
        out.append(FlowGroup(
            **{**_NO_VALUES, **dict(zip(dims, keys, strict=True))}, count=int(count),
            sum=None if mixed or total is None else _decimal(total),
            sum_usd=None if usd is None else _decimal(usd), count_without_usd=int(without),
            currencies=currencies, first_date=first, last_date=last))
    return out


async def flows_aggregate(info: Info, where_clause: Any, group_by: list[FlowDimension],
                          where: Any = _NO_WHERE_GIVEN) -> FlowAggregate:
    """``where_clause`` is ``where`` compiled over flows; ``where`` itself (the input) lets
    the rollup answer instead. Without it, the flows are always scanned."""
    ctx = info.context
    dims = list(dict.fromkeys(group_by))
    stmt = aggregate_statement(where_clause, dims, ctx.dialect, where)

    def run(conn: Connection) -> list[Any]:
        if ctx.dialect == "postgresql":
            # JIT compiling this plan costs about a second and saves less than it costs.
            conn.exec_driver_sql("SET LOCAL jit = off")
            # Exact NUMERIC sums make wide hash-aggregate states; 4MB spills to disk.
            conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
        result = conn.execute(stmt)
        assert list(result.keys())[len(dims):] == list(_TOTALS)
        return [tuple(r) for r in result]

    rows = await ctx.db(run)
    return FlowAggregate(group_by=dims, groups=_groups(rows, [d.value for d in dims]))
