"""Maintain ``flow_rollup`` so ``flowsAggregate`` need not scan every flow.

A full-table GROUP BY over 1M flows costs seconds whatever the indexes; the rollup holds
the same counts and exact sums per key, a few thousand rows for the common questions.

Grains (column sets; the query picks the narrowest that covers its columns):

3. currency, year, recipient country
0. kind, currency, year, recipient country
1. kind, currency, year, sector, gender significance, earmarking
2. every dimension (adds reporting org, provider, receiver)

Every grain holds currency and year: currency keeps each row's sum in one currency, and
year partitions the maintenance. A flow's key is a function of the flow row, its
activity's children and its stored classification (the gender value; the classification
step runs before this one, and a hand gender decision refreshes its flows' years), which an
import never changes for other flows, so after an import only the years of
the flows it added or replaced change; they are recomputed set-based (DELETE + INSERT ...
SELECT ... GROUP BY) inside the batch transaction. A revert rebuilds everything (reverts
are rare; the rows it removed are gone by then). The dimension rules are those of
:func:`fundtrack.query.aggregate.dimension_expr`: one place for each rule.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    cast,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    true,
)

from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.derived.rollup.tables import FlowRollup
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.query.aggregate import FlowDimension, dimension_expr, join_on, joins
from fundtrack.query.rollup import DIMENSION_COLUMNS, GRAINS

_REPORTED = ("reporting_org_ref", "provider_ref", "receiver_ref")


def _year_int(dialect: str) -> Any:
    f = m.Flow.value_date
    if dialect == "sqlite":
        return cast(func.strftime("%Y", f), Integer)
    return cast(func.extract("year", f), Integer)


def _insert(conn: Connection, grain: int, condition: Any) -> int:
    dialect = conn.dialect.name
    by_column = {c: FlowDimension(d) for d, c in DIMENSION_COLUMNS.items()}
    columns = GRAINS[grain]
    dims = [by_column[c] for c in columns]
    joined = joins(dims)
    # Organisations as reported (the rollup never answers by canonical organisation,
    # which a later identity rebuild may change for flows of earlier batches).
    keys = [_year_int(dialect) if c == "year" else
            getattr(m.Flow, c) if c in _REPORTED else dimension_expr(d, dialect, joined)
            for c, d in zip(columns, dims, strict=True)]
    f = m.Flow
    source: Any = m.Flow.__table__
    for sub in joined.values():
        source = source.outerjoin(sub, join_on(sub))
    sel = (select(literal(grain), *keys, func.count(), func.count() - func.count(f.amount_usd),
                  money_sum(f.amount), money_sum(f.amount_usd), func.min(f.value_date),
                  func.max(f.value_date))
           .select_from(source).where(current(f), condition)
           .group_by(*keys))
    r = FlowRollup.__table__
    target = [r.c.grain, *[r.c[c] for c in columns], r.c.flows, r.c.flows_without_usd,
              r.c.amount, r.c.amount_usd, r.c.first_date, r.c.last_date]
    return conn.execute(r.insert().from_select(target, sel)).rowcount


def _hash_joins(conn: Connection) -> Any:
    """PostgreSQL: hash-join the per-activity derived tables for the statements inside.

    Inside an import the new rows have no statistics yet; the planner then guesses one row
    per derived table and rescans it for every flow (seconds for 50k flows, past the
    statement timeout).
    """
    return dialect.planner_off(conn, "enable_nestloop")


def rebuild(conn: Connection) -> dict[str, int]:
    """Recompute the whole rollup from the current flows."""
    dialect.empty(conn, "flow_rollup")
    with _hash_joins(conn):
        rows = sum(_insert(conn, g, true()) for g in range(len(GRAINS)))
    dialect.analyze(conn, "flow_rollup")  # the planner's estimates for the API
    return {"rollup_rows": rows}


def _year_runs(years: list[int]) -> list[tuple[int, int]]:
    """Sorted years as runs of consecutive years: [2019, 2020, 2023] -> [(2019, 2020), (2023, 2023)]."""
    runs: list[tuple[int, int]] = []
    for y in sorted(set(years)):
        if runs and runs[-1][1] == y - 1:
            runs[-1] = (runs[-1][0], y)
        else:
            runs.append((y, y))
    return runs


def _years(conn: Connection, years: list[int], nulls: bool) -> dict[str, int]:
    """Recompute the rollup rows of exactly these value ``years`` (and of undated flows if ``nulls``).

    Each run of consecutive years is one value-date range, so the flows' date index serves
    it; a stray far date (year 9999 in a hostile file) adds one small range, not the span.
    """
    r = FlowRollup.__table__
    f = m.Flow.value_date
    in_range: list[Any] = []
    flows_in: list[Any] = []
    for lo, hi in _year_runs(years):
        in_range.append(and_(r.c.year >= lo, r.c.year <= hi))
        flows_in.append(and_(f >= date(lo, 1, 1), f <= date(hi, 12, 31)))
    if nulls:
        in_range.append(r.c.year.is_(None))
        flows_in.append(f.is_(None))
    if not in_range:
        return {"rollup_rows": 0}
    conn.execute(delete(r).where(or_(false(), *in_range)))
    with _hash_joins(conn):
        rows = sum(_insert(conn, g, or_(false(), *flows_in)) for g in range(len(GRAINS)))
    return {"rollup_rows": rows}


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Recompute the years of the flows the batch added or replaced (after the merge)."""
    f = m.Flow
    year = _year_int(conn.dialect.name)
    touched = or_(f.batch_id == batch_id, f.superseded_by == batch_id)
    found = conn.execute(select(year).where(touched).group_by(year)).scalars().all()
    years = [y for y in found if y is not None]
    return _years(conn, years, len(years) < len(found))


def refresh_flows(conn: Connection, flow_ids: list[int]) -> dict[str, int]:
    """Recompute the years of these flows (a hand gender decision changed their key)."""
    f = m.Flow
    year = _year_int(conn.dialect.name)
    found: set[int | None] = set()
    for i in range(0, len(flow_ids), 5_000):
        found.update(conn.execute(select(year).where(f.id.in_(flow_ids[i:i + 5_000]))
                                  .group_by(year)).scalars())
    years = [y for y in found if y is not None]
    return _years(conn, years, len(years) < len(found))


def after_revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """A revert deletes rows before this runs, so their years are unknown: rebuild."""
    return rebuild(conn)
