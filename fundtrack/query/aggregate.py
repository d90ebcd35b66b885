"""Grouped totals over flows, one SQL statement per question (``flowsAggregate``, pages).

Sums are exact (:func:`fundtrack.money.money_sum`) and returned as decimal strings.
``sum`` is in the original currency and is null for a group that mixes currencies
(group by CURRENCY to get them); ``sumUsd`` adds the USD amounts and ``countWithoutUsd``
says how many flows of the group had no USD rate and are therefore missing from it.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal_column, select

from fundtrack.config import get_settings
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.query import rollup
from fundtrack.query.vocabulary import GENDER_STORED

#: Answer from ``flow_rollup`` when it can (fundtrack.query.rollup); tests switch it off to
#: compare both paths. FUNDTRACK_AGGREGATE_ROLLUP=0 turns it off for a server.
USE_ROLLUP = get_settings().aggregate_rollup
_NO_WHERE_GIVEN: Any = object()


class FlowDimension(enum.Enum):
    """What to group flows by."""

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


def joins(dims: list[FlowDimension]) -> dict[FlowDimension, Any]:
    t = m.Base.metadata.tables
    ac, s = t["activity_country"], t["activity_sector"]
    out: dict[FlowDimension, Any] = {}
    if FlowDimension.RECIPIENT_COUNTRY in dims:
        out[FlowDimension.RECIPIENT_COUNTRY] = _activity_single(ac, ac.c.code, "one_country")
    if FlowDimension.SECTOR in dims:
        out[FlowDimension.SECTOR] = _activity_single(
            s, s.c.code, "one_sector", func.coalesce(s.c.vocabulary, "1") == "1")
    if FlowDimension.GENDER_SIGNIFICANCE in dims:
        # The flow's stored crosswalk value (its own marker, else its activity's), as text
        # '2'/'1'/'0' like the rollup column; keyed by flow, see join_on.
        from fundtrack.accounting.tables import FlowClassification

        fc = FlowClassification.__table__
        out[FlowDimension.GENDER_SIGNIFICANCE] = (
            select(fc.c.flow_id.label("flow_id"),
                   case(*[(fc.c.dimension == d, str(n)) for d, n in GENDER_STORED.items()])
                   .label("value"))
            .where(fc.c.dimension.in_(list(GENDER_STORED)), fc.c.is_in)
            .subquery("gender"))
    return out


def join_on(sub: Any) -> Any:
    """How a derived table of :func:`joins` meets the flows: by flow or by activity."""
    f = m.Flow
    if "flow_id" in sub.c:
        return sub.c.flow_id == f.id
    return sub.c.activity_id == f.activity_id


_PARTIES = {FlowDimension.PROVIDER: ("provider_org_id", "provider_ref"),
            FlowDimension.RECEIVER: ("receiver_org_id", "receiver_ref"),
            FlowDimension.REPORTING_ORG: ("reporter_org_id", "reporting_org_ref")}


def canonical_party(dim: FlowDimension, joined: dict[FlowDimension, Any] | None = None
                    ) -> Any:
    """The canonical ref of a flow's provider, receiver or reporter (``flow_party``;
    the reported ref for a flow the identity step has not resolved): from the tables of
    :func:`party_joins` when given, else a correlated subquery."""
    from fundtrack.identity.tables import CanonicalOrg, FlowParty

    fp, co = FlowParty.__table__, CanonicalOrg.__table__
    id_col, raw = _PARTIES[dim]
    if joined is not None and dim in joined:
        return func.coalesce(joined[dim].c.ref, getattr(m.Flow, raw))
    canon = (select(co.c.ref).select_from(fp.join(co, co.c.id == fp.c[id_col]))
             .where(fp.c.flow_id == m.Flow.id).scalar_subquery())
    return func.coalesce(canon, getattr(m.Flow, raw))


def party_joins(source: Any, dims: list[FlowDimension]) -> tuple[Any, dict[FlowDimension, Any]]:
    """``source`` outer-joined once to ``flow_party`` and to ``canonical_org`` for each
    organisation dimension (one join per row rather than a subquery per row and group)."""
    from fundtrack.identity.tables import CanonicalOrg, FlowParty

    wanted = [d for d in dims if d in _PARTIES]
    if not wanted:
        return source, {}
    fp = FlowParty.__table__
    source = source.outerjoin(fp, fp.c.flow_id == m.Flow.id)
    out: dict[FlowDimension, Any] = {}
    for d in wanted:
        co = CanonicalOrg.__table__.alias(f"canon_{d.value}")
        source = source.outerjoin(co, co.c.id == fp.c[_PARTIES[d][0]])
        out[d] = co
    return source, out


def dimension_expr(dim: FlowDimension, dialect: str,
                   joined: dict[FlowDimension, Any] | None = None) -> Any:
    """The SQL expression a dimension groups by. Documented in docs/api.md.

    Activity-level dimensions read ``joined`` (the derived tables of :func:`joins`, for
    one grouped statement); without it they are correlated scalar subqueries, usable in
    any select over flows (e.g. :mod:`fundtrack.export`).
    """
    f = m.Flow
    if joined is None and dim in _ACTIVITY_DIMS:
        sub = joins([dim])[dim]
        return select(sub.c.value).where(join_on(sub)).scalar_subquery()
    if dim is FlowDimension.KIND:
        return f.kind
    if dim in _PARTIES:
        return canonical_party(dim, joined)
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


def aggregate_statement(where_clause: Any, dims: list[FlowDimension], dialect: str,
                        where: Any = _NO_WHERE_GIVEN) -> Any:
    """The one grouped statement: over ``flow_rollup`` when ``where`` (the filter input
    ``where_clause`` was compiled from) and ``dims`` allow it and USE_ROLLUP is on, else
    over the flows."""
    if USE_ROLLUP and where is not _NO_WHERE_GIVEN:
        stmt = rollup.rollup_statement(where, dims)
        if stmt is not None:
            return stmt
    f = m.Flow
    joined = joins(dims)
    source: Any = m.Flow.__table__
    for sub in joined.values():
        source = source.outerjoin(sub, join_on(sub))
    source, parties = party_joins(source, dims)
    keys = [dimension_expr(d, dialect, {**joined, **parties}).label(d.value) for d in dims]
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
    stmt = select(*cols).select_from(source).where(and_(current(f), where_clause))
    if keys:
        # Positions, not names: a label like "currency" would mean the raw column in GROUP BY.
        positions = [literal_column(str(i + 1)) for i in range(len(keys))]
        stmt = stmt.group_by(*positions).order_by(*positions)
    return stmt


#: The statement's columns after the dimension keys, in order.
TOTALS = ("count", "sum", "sum_usd", "count_without_usd", "currencies", "no_currency",
          "first_date", "last_date")
