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
step runs before this one), which an import never changes for other flows. So after an
import only the keys of the flows it added or superseded change, and the rollup is kept
by delta, key by key (work in proportion to the batch, not to the years it touches):
:func:`before_import` reads the superseded flows' keys (before the classification step
deletes their gender), :func:`after_import` adds the batch's flows, takes those out and
updates, inserts or deletes the rows. Counts and sums subtract exactly; a first/last
date or a sum's scale (its decimals: the largest of its flows') held by a removed flow
is probed from the key's flows (:func:`_probe`). A hand gender decision changes
existing flows' keys after their old gender is gone: :func:`refresh_flows` recomputes
their years (rare). A revert rebuilds everything (reverts are rare; the rows it removed
are gone by then). The dimension rules are those of
:func:`fundtrack.query.aggregate.dimension_expr`: one place for each rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)

from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.derived.rollup.tables import FlowRollup
from fundtrack.ledger import tables as m
from fundtrack.money import SUM_CONTEXT, money_sum
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


#: The grain holding every other grain's columns: computed from the flows, the others from
#: its rows.
_WIDEST = 2


def _roll_up(conn: Connection, grain: int, condition: Any) -> int:
    """Insert ``grain``'s rows summed from the widest grain's rows that ``condition`` picks
    (on ``flow_rollup``): the same counts, exact sums (their scale: the largest of the
    parts'), first and last dates as from the flows, over a tenth of the rows and without
    the joins (on SQLite the flows' sums are Python ``dsum`` calls: 4 grains x 2 sums a
    flow)."""
    r: Any = FlowRollup.__table__
    keys = [r.c[c] for c in GRAINS[grain]]
    sel = (select(literal(grain), *keys, func.sum(r.c.flows), func.sum(r.c.flows_without_usd),
                  money_sum(r.c.amount), money_sum(r.c.amount_usd), func.min(r.c.first_date),
                  func.max(r.c.last_date))
           .where(r.c.grain == _WIDEST, condition).group_by(*keys))
    target = [r.c.grain, *keys, r.c.flows, r.c.flows_without_usd, r.c.amount, r.c.amount_usd,
              r.c.first_date, r.c.last_date]
    return conn.execute(r.insert().from_select(target, sel)).rowcount


def _insert_grains(conn: Connection, flows: Any, rows: Any) -> int:
    """Every grain's rows for the flows ``flows`` picks (on the flow table), whose rows
    ``rows`` picks (on ``flow_rollup``, none there yet): the widest grain from the flows,
    the others rolled up from it."""
    n = _insert(conn, _WIDEST, flows)
    return n + sum(_roll_up(conn, g, rows) for g in range(len(GRAINS)) if g != _WIDEST)


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
        rows = _insert_grains(conn, true(), true())
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
        rows = _insert_grains(conn, or_(false(), *flows_in), or_(false(), *in_range))
    return {"rollup_rows": rows}


def _correlated(sub: Any) -> Any:
    """A derived table of :func:`joins` as a scalar subquery for the current flow row.

    The same rule (the activity's single value, the flow's stored gender value), looked up
    per flow through the child table's index: for the few flows of a batch, joining the
    derived table would aggregate the whole child table.
    """
    inner = sub.element
    table = inner.get_final_froms()[0]
    f = m.Flow
    on = table.c.flow_id == f.id if "flow_id" in sub.c else table.c.activity_id == f.activity_id
    return inner.where(on).with_only_columns(inner.selected_columns.value).scalar_subquery()


#: The widest grain: every other grain's columns are among its columns.
_ALL = GRAINS[2]
_POS = {g: [_ALL.index(c) for c in cols] for g, cols in enumerate(GRAINS)}


def _key_exprs(conn: Connection) -> list[Any]:
    """Per flow row, the widest grain's key columns (year as the value date), by
    :func:`dimension_expr`: one rule for the rebuild and the delta."""
    f = m.Flow
    by_column = {c: FlowDimension(d) for d, c in DIMENSION_COLUMNS.items()}
    dims = [by_column[c] for c in _ALL if c != "year"]
    # dimension_expr reads ``joined[d].c.value``: the per-flow subqueries stand in for it.
    joined = {d: SimpleNamespace(c=SimpleNamespace(value=_correlated(sub)))
              for d, sub in joins(dims).items()}
    return [f.value_date if c == "year" else getattr(f, c) if c in _REPORTED
            else dimension_expr(by_column[c], conn.dialect.name, joined) for c in _ALL]


def _flow_rows(conn: Connection, condition: Any) -> list[Any]:
    """Each flow matching ``condition``: its :func:`_key_exprs`, amount, amount in USD."""
    f = m.Flow
    return list(conn.execute(select(*_key_exprs(conn), f.amount, f.amount_usd)
                             .where(condition)))


_ZERO = Decimal(0)


@dataclass
class _Sums:
    """What a set of flows adds to one rollup key (or the stored row: ``row_id`` set)."""

    flows: int = 0
    without_usd: int = 0
    amount: Decimal | None = None
    amount_usd: Decimal | None = None
    first: date | None = None
    last: date | None = None
    row_id: int | None = None

    def add(self, amount: Decimal, usd: Decimal | None, day: date | None) -> None:
        # From 0 like ``dsum`` (a reported -0 sums to 0; PostgreSQL has no -0).
        self.flows += 1
        # (Not ``or``: a zero sum such as 0E-10 still carries its scale.)
        self.amount = SUM_CONTEXT.add(_ZERO if self.amount is None else self.amount, amount)
        if usd is None:
            self.without_usd += 1
        else:
            self.amount_usd = SUM_CONTEXT.add(
                _ZERO if self.amount_usd is None else self.amount_usd, usd)
        if day is not None:
            self.first = day if self.first is None else min(self.first, day)
            self.last = day if self.last is None else max(self.last, day)


Key = tuple[Any, ...]


def _by_key(rows: list[Any]) -> dict[tuple[int, Key], _Sums]:
    """Sum flows (rows of :func:`_flow_rows`) per grain and key, as the GROUP BY does."""
    out: dict[tuple[int, Key], _Sums] = {}
    year = _ALL.index("year")
    n = len(_ALL)
    for row in rows:
        day = row[year]
        wide = tuple(day.year if i == year and day is not None else v
                     for i, v in enumerate(row[:n]))
        for g, pos in _POS.items():
            key = (g, tuple(wide[i] for i in pos))
            out.setdefault(key, _Sums()).add(row[n], row[n + 1], day)
    return out


def _stored(conn: Connection, keys: list[tuple[int, Key]]) -> dict[tuple[int, Key], _Sums]:
    """The rollup rows of these keys, read per grain through its (grain, year) index; the
    other key columns narrow by IN (and IS NULL), the exact match is made here."""
    r = FlowRollup.__table__
    out: dict[tuple[int, Key], _Sums] = {}
    wanted = set(keys)
    for g in sorted({g for g, _ in keys}):
        cols = GRAINS[g]
        conds: list[Any] = [r.c.grain == g]
        for i, c in enumerate(cols):
            if c not in ("year", "currency", "kind", "reporting_org_ref"):
                continue
            values = {k[i] for gg, k in keys if gg == g}
            known = sorted((v for v in values if v is not None), key=repr)
            cond = [r.c[c].in_(known)] if known else []
            if None in values:
                cond.append(r.c[c].is_(None))
            conds.append(or_(*cond))
        sel = select(r.c.id, *[r.c[c] for c in cols], r.c.flows, r.c.flows_without_usd,
                     r.c.amount, r.c.amount_usd, r.c.first_date, r.c.last_date).where(*conds)
        n = len(cols)
        for row in conn.execute(sel):
            key = (g, tuple(row[1:n + 1]))
            if key in wanted:
                out[key] = _Sums(row[n + 1], row[n + 2], row[n + 3], row[n + 4], row[n + 5],
                                 row[n + 6], row[0])
    return out


def _covers(removed: Any, stored: Any, added: Any, wider: Any) -> bool:
    """Whether a min/max (or a sum's scale) stays known without the removed flows: the
    removed value was not the stored extreme, or an added value reaches it. ``wider(x, y)``:
    x is at least as far out as y."""
    if removed is None or stored is None:
        return True
    if removed != stored:
        return True
    return added is not None and wider(added, stored)


def _exp(d: Decimal | None) -> int | None:
    return None if d is None else int(d.as_tuple().exponent)


def _keeps_scale(stored: Decimal | None, removed: Decimal | None) -> bool:
    """Whether the flows left still have the stored sum's scale: their sum has a non-zero
    last decimal there (flows of fewer decimals could not sum to it)."""
    if stored is None or removed is None:
        return False
    left = SUM_CONTEXT.subtract(stored, removed)
    t = left.as_tuple()
    return t.exponent == stored.as_tuple().exponent and t.digits[-1] != 0


def _combine(old: _Sums, plus: _Sums, minus: _Sums) -> tuple[_Sums, set[str]] | None:
    """The stored row with the batch's flows added and its superseded flows removed, and
    the parts only the flows can tell (``first``, ``last``: a removed flow held the
    stored extreme; ``scale``, ``scale_usd``: it held the sum's scale); None when the
    counts do not add up (not the rows the rollup was built from: recompute).

    Counts and sums are exact by difference; a sum's scale (its decimals) is the largest
    of its flows' (PostgreSQL ``sum`` and ``dsum`` alike), so it is known like a min/max.
    """
    flows = old.flows + plus.flows - minus.flows
    without = old.without_usd + plus.without_usd - minus.without_usd
    if flows < 0 or without < 0 or without > flows:
        return None
    if flows == 0:
        return _Sums(0, row_id=old.row_id), set()
    if old.flows == minus.flows:  # none of the stored flows left: the batch's alone
        return replace(plus, row_id=old.row_id), set()
    unknown: set[str] = set()
    # Some stored flows are left; if they all shared one date, they still do.
    if not (old.first is not None and old.first == old.last):
        if not _covers(minus.first, old.first, plus.first, lambda a, b: a <= b):
            unknown.add("first")
        if not _covers(minus.last, old.last, plus.last, lambda a, b: a >= b):
            unknown.add("last")
    if not (_covers(_exp(minus.amount), _exp(old.amount), _exp(plus.amount),
                    lambda a, b: a <= b) or _keeps_scale(old.amount, minus.amount)):
        unknown.add("scale")
    if flows > without and not (_covers(_exp(minus.amount_usd), _exp(old.amount_usd),
                                        _exp(plus.amount_usd), lambda a, b: a <= b)
                                or _keeps_scale(old.amount_usd, minus.amount_usd)):
        unknown.add("scale_usd")

    def total(*parts: Decimal | None, sub: Decimal | None) -> Decimal:
        acc = Decimal(0)
        for p in parts:
            if p is not None:
                acc = SUM_CONTEXT.add(acc, p)
        return acc if sub is None else SUM_CONTEXT.subtract(acc, sub)

    out = _Sums(flows, without, row_id=old.row_id)
    out.amount = total(old.amount, plus.amount, sub=minus.amount)
    if flows > without:
        out.amount_usd = total(old.amount_usd, plus.amount_usd, sub=minus.amount_usd)
    firsts = [d for d in (old.first, plus.first) if d is not None]
    lasts = [d for d in (old.last, plus.last) if d is not None]
    out.first = min(firsts) if firsts else None
    out.last = max(lasts) if lasts else None
    return out, unknown


def _scale_expr(conn: Connection, column: Any) -> Any:
    """The decimals of a stored amount (canonical text on SQLite, NUMERIC on PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        dot = func.instr(column, ".")
        return case((dot > 0, func.length(column) - dot), else_=0)
    return func.scale(column)


def _probe(conn: Connection, g: int, key: Key, parts: set[str], row: _Sums) -> None:
    """Fill the ``parts`` of ``row`` the delta could not tell, from the key's current flows.

    Each part is one indexed probe that stops at its first flow: the first or last
    value date (the date index, in order), and for a scale, whether a flow of that many
    decimals exists (from the stored scale down; usually the first answers). A big group
    answers at once; a small one is bounded by the flows of its year and plain columns.
    """
    f = m.Flow
    exprs = dict(zip(_ALL, _key_exprs(conn), strict=True))
    conds: list[Any] = [current(f)]
    for c, v in zip(GRAINS[g], key, strict=True):
        if c == "year":
            conds.append(f.value_date.is_(None) if v is None else
                         and_(f.value_date >= date(v, 1, 1), f.value_date <= date(v, 12, 31)))
        else:
            conds.append(exprs[c].is_(None) if v is None else exprs[c] == v)
    if "first" in parts:
        row.first = conn.execute(select(f.value_date).where(*conds)
                                 .order_by(f.value_date).limit(1)).scalar()
    if "last" in parts:
        row.last = conn.execute(select(f.value_date).where(*conds)
                                .order_by(f.value_date.desc()).limit(1)).scalar()
    for part, column in (("scale", f.amount), ("scale_usd", f.amount_usd)):
        value = row.amount if part == "scale" else row.amount_usd
        if part not in parts or value is None:
            continue
        scale = _scale_expr(conn, column)
        for k in range(-int(value.as_tuple().exponent), -1, -1):
            if conn.execute(select(literal(1)).where(*conds, column.is_not(None), scale == k)
                            .limit(1)).first() is not None:
                break
        else:
            k = 0
        value = value.quantize(Decimal(1).scaleb(-k), context=SUM_CONTEXT)
        if part == "scale":
            row.amount = value
        else:
            row.amount_usd = value


def _scales_kept(conn: Connection, rows: dict[tuple[int, Key], _Sums],
                 asked: dict[tuple[int, Key], set[str]]) -> None:
    """The common answer to a scale probe, for many keys at once: a flow of the stored
    scale is left (then the sum is right as it is). One statement per grain, year, amount
    column and scale reads the flows of those keys' plain columns once; the part is taken
    out of ``asked`` for every key that has such a flow."""
    f = m.Flow
    plain = {"kind": f.kind, "currency": f.currency, "earmarking": f.earmarking,
             **{c: getattr(f, c) for c in _REPORTED}}
    sets: dict[tuple[int, Any, str, int], list[Key]] = {}
    for (g, key), parts in asked.items():
        for part in ("scale", "scale_usd"):
            value = rows[(g, key)].amount if part == "scale" else rows[(g, key)].amount_usd
            if part in parts and value is not None:
                year = key[GRAINS[g].index("year")]
                sets.setdefault((g, year, part, -int(value.as_tuple().exponent)), []).append(key)
    for (g, year, part, k), keys in sets.items():
        cols = GRAINS[g]
        exprs = dict(zip(_ALL, _key_exprs(conn), strict=True))
        column = f.amount if part == "scale" else f.amount_usd
        each = [and_(true(), *[plain[c].is_(None) if v is None else plain[c] == v
                               for c, v in zip(cols, key, strict=True) if c in plain])
                for key in keys]
        when = (f.value_date.is_(None) if year is None else
                and_(f.value_date >= date(year, 1, 1), f.value_date <= date(year, 12, 31)))
        sel = (select(*[exprs[c] for c in cols if c != "year"])
               .where(current(f), when, column.is_not(None), _scale_expr(conn, column) == k,
                      or_(false(), *each)).distinct())
        at = cols.index("year")
        have = {(*r[:at], year, *r[at:]) for r in conn.execute(sel)}
        for key in keys:
            if key in have:
                asked[(g, key)].discard(part)


def _recompute(conn: Connection, keys: list[tuple[int, Key]]) -> dict[tuple[int, Key], _Sums]:
    """These keys summed afresh from their current flows (the groups a delta cannot tell).

    Keys sharing their plain columns (value-date range of the year, currency, kind,
    earmarking, reported organisations) are read in one statement; the flow's own country
    and sector narrow further (a key's country or sector, when set, is the flow's own or,
    without one, its activity's). The keys are then matched here exactly.
    """
    f = m.Flow
    plain = {"kind": f.kind, "currency": f.currency, "earmarking": f.earmarking,
             **{c: getattr(f, c) for c in _REPORTED}}
    own = {"recipient_country": f.recipient_country, "sector": f.sector_code}
    sets: dict[tuple[int, Key], list[Key]] = {}
    for g, key in keys:
        shared = tuple(v if c == "year" or c in plain else None
                       for c, v in zip(GRAINS[g], key, strict=True))
        sets.setdefault((g, shared), []).append(key)
    found: dict[tuple[int, Key], _Sums] = {}
    for (g, shared), members in sets.items():
        conds: list[Any] = [current(f)]
        for i, (c, v) in enumerate(zip(GRAINS[g], shared, strict=True)):
            if c == "year":
                conds.append(f.value_date.is_(None) if v is None else
                             and_(f.value_date >= date(v, 1, 1), f.value_date <= date(v, 12, 31)))
            elif c in plain:
                conds.append(plain[c].is_(None) if v is None else plain[c] == v)
            elif c in own:
                values = {k[i] for k in members}
                known = sorted(v for v in values if v is not None)
                conds.append(or_(own[c].is_(None), *([own[c].in_(known)] if known else [])))
        sums = _by_key(_flow_rows(conn, and_(*conds)))
        for key in members:
            found[(g, key)] = sums.get((g, key)) or _Sums(0)
    return found


def _apply(conn: Connection, new: dict[tuple[int, Key], _Sums]) -> None:
    """Write the rows: update the stored ones, insert new keys, delete emptied ones."""
    r = FlowRollup
    gone = [s.row_id for s in new.values() if s.flows == 0 and s.row_id is not None]
    changed = [s for s in new.values() if s.flows and s.row_id is not None]
    added = [(g, k, s) for (g, k), s in new.items() if s.flows and s.row_id is None]
    values = {"flows": "flows", "flows_without_usd": "without_usd", "amount": "amount",
              "amount_usd": "amount_usd", "first_date": "first", "last_date": "last"}
    for i in range(0, len(gone), 5_000):
        conn.execute(delete(r).where(r.id.in_(gone[i:i + 5_000])))
    if changed:
        conn.execute(update(r).where(r.id == bindparam("rid")).values(
            {c: bindparam(f"v_{c}") for c in values}),
            [{"rid": s.row_id, **{f"v_{c}": getattr(s, a) for c, a in values.items()}}
             for s in changed])
    for grain in sorted({g for g, _, _ in added}):  # one column set per statement
        conn.execute(insert(r), [
            {"grain": g, **dict(zip(GRAINS[g], k, strict=True)),
             **{c: getattr(s, a) for c, a in values.items()}} for g, k, s in added if g == grain])


def _delta(conn: Connection, plus: dict[tuple[int, Key], _Sums],
           minus: dict[tuple[int, Key], _Sums]) -> dict[str, int]:
    """Apply the batch's contribution (``plus`` added, ``minus`` superseded) per key."""
    keys = sorted(plus.keys() | minus.keys(), key=repr)
    stored = _stored(conn, keys)
    new: dict[tuple[int, Key], _Sums] = {}
    unknown: list[tuple[int, Key]] = []
    asked: dict[tuple[int, Key], set[str]] = {}
    probed = 0
    for key in keys:
        old = stored.get(key)
        if old is None:
            old = _Sums()
        found = _combine(old, plus.get(key, _Sums()), minus.get(key, _Sums()))
        if found is None:
            unknown.append(key)
            continue
        row, parts = found
        if parts:
            asked[key] = parts
        new[key] = row
    _scales_kept(conn, {k: new[k] for k in asked}, asked)
    for key, parts in asked.items():
        if parts:
            _probe(conn, key[0], key[1], parts, new[key])
            probed += 1
    for key, row in _recompute(conn, unknown).items():
        old = stored.get(key)
        row.row_id = None if old is None else old.row_id
        new[key] = row
    _apply(conn, new)
    return {"rollup_rows": len(new), "rollup_probed": probed, "rollup_recomputed": len(unknown)}


_REMOVED = "fundtrack.rollup.removed"


def before_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Read what the flows the batch superseded took from the rollup, before later steps
    run: their key holds the stored gender value, which the classification step deletes
    for superseded flows. Kept on the connection for :func:`after_import`, tied to this
    transaction."""
    minus = _by_key(_flow_rows(conn, m.Flow.superseded_by == batch_id))
    conn.info[_REMOVED] = (conn.get_transaction(), batch_id, minus)
    return {}


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Add the batch's flows to the rollup and take out the ones it superseded (read by
    :func:`before_import`), key by key: work in proportion to the batch. Without that
    reading (a caller that skipped it) a batch that superseded flows recomputes its years."""
    f = m.Flow
    stash = conn.info.pop(_REMOVED, None)
    if stash is not None and stash[0] is conn.get_transaction() and stash[1] == batch_id:
        minus = stash[2]
    elif conn.execute(select(f.id).where(f.superseded_by == batch_id).limit(1)).first():
        return _after_import_by_years(conn, batch_id)
    else:
        minus = {}
    plus = _by_key(_flow_rows(conn, and_(f.batch_id == batch_id, current(f))))
    return _delta(conn, plus, minus)


def _after_import_by_years(conn: Connection, batch_id: int) -> dict[str, int]:
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
