"""``flowsAggregate``: Hasura-style grouped totals, one SQL statement per call.

Sums are exact (:func:`fundtrack.money.money_sum`) and returned as decimal strings.
``sum`` is in the original currency and is null for a group that mixes currencies
(group by CURRENCY to get them); ``sumUsd`` adds the USD amounts and ``countWithoutUsd``
says how many flows of the group had no USD rate and are therefore missing from it.
"""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal
from typing import Any

import strawberry
from sqlalchemy import Connection, String, and_, case, cast, func, literal_column, select
from strawberry.types import Info

from fundtrack import models as m
from fundtrack.api.types import GENDER_CODE, GENDER_VOCABULARY, VALID_SIGNIFICANCE, FlowKind
from fundtrack.money import money_sum


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


def _activity_scalar(table: Any, column: Any, *extra: Any) -> Any:
    """The activity's single value of ``column`` (null when it has none or several)."""
    return (select(func.min(column)).where(table.c.activity_id == m.Flow.activity_id, *extra)
            .group_by(table.c.activity_id).having(func.count() == 1)
            .scalar_subquery())


def dimension_expr(dim: FlowDimension, dialect: str) -> Any:
    """The SQL expression a dimension groups by. Documented in docs/api.md."""
    f = m.Flow
    t = m.Base.metadata.tables
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
        ac = t["activity_country"]
        return func.coalesce(f.recipient_country, _activity_scalar(ac, ac.c.code))
    if dim is FlowDimension.SECTOR:
        # The flow's own DAC sector, else its activity's only DAC (vocabulary 1) sector.
        s = t["activity_sector"]
        return func.coalesce(f.sector_code, _activity_scalar(
            s, s.c.code, func.coalesce(s.c.vocabulary, "1") == "1"))
    if dim is FlowDimension.GENDER_SIGNIFICANCE:
        pm = t["policy_marker"]
        return (select(func.max(pm.c.significance))
                .where(pm.c.activity_id == f.activity_id, pm.c.vocabulary == GENDER_VOCABULARY,
                       pm.c.code == GENDER_CODE, pm.c.significance.in_(VALID_SIGNIFICANCE))
                .scalar_subquery())
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


def aggregate_statement(where_clause: Any, dims: list[FlowDimension], dialect: str) -> Any:
    f = m.Flow
    keys = [dimension_expr(d, dialect).label(d.value) for d in dims]
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
    stmt = select(*cols).where(and_(f.superseded_by.is_(None), where_clause))
    if keys:
        # Positions, not names: a label like "currency" would mean the raw column in GROUP BY.
        positions = [literal_column(str(i + 1)) for i in range(len(keys))]
        stmt = stmt.group_by(*positions).order_by(*positions)
    return stmt


def _group(row: Any, dims: list[FlowDimension]) -> FlowGroup:
    values: dict[str, Any] = {d.value: None for d in FlowDimension}
    for d in dims:
        values[d.value] = row[d.value]
    if values["year"] is not None:
        values["year"] = int(Decimal(str(values["year"])))
    if values["gender_significance"] is not None:
        values["gender_significance"] = int(values["gender_significance"])
    mixed = row["currencies"] + (1 if row["no_currency"] else 0) > 1
    return FlowGroup(
        **values, count=row["count"],
        sum=None if mixed or row["sum"] is None else Decimal(str(row["sum"])),
        sum_usd=None if row["sum_usd"] is None else Decimal(str(row["sum_usd"])),
        count_without_usd=row["count_without_usd"], currencies=row["currencies"],
        first_date=row["first_date"], last_date=row["last_date"],
    )


async def flows_aggregate(info: Info, where_clause: Any, group_by: list[FlowDimension],
                          ) -> FlowAggregate:
    ctx = info.context
    dims = list(dict.fromkeys(group_by))
    stmt = aggregate_statement(where_clause, dims, ctx.dialect)

    def run(conn: Connection) -> list[Any]:
        return list(conn.execute(stmt).mappings())

    rows = await ctx.db(run)
    groups = [_group(r, dims) for r in rows if r["count"]]
    return FlowAggregate(group_by=dims, groups=groups)
