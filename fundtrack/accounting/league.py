"""League tables: donors and funds ranked per year on each benchmark (the seeds' "carrots
and sticks": recognise high performers, expose those who fall short).

Each row is the subject's report-card line for that year (:func:`reportcard.cards`, the
same computation as the card page), so a rank never disagrees with a card. Only graded
lines are ranked (highest value first; equal values share a rank); lines with
insufficient data are listed after them, unranked, with their base and coverage. Every
row carries its trend: the measure in every year the subject has data, with that
year's rank.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from fundtrack.accounting.benchmarks import threshold
from fundtrack.accounting.config import fingerprint
from fundtrack.accounting.reportcard import DONOR, FUND, GRADED, Card, CardItem, cards
from fundtrack.ledger import tables as m

#: The measures each table ranks (card item keys), in card order.
MEASURES = {
    DONOR: ("pledge_fulfilment", "gender_principal_share", "wro_direct_share",
            "flexible_share", "traceability", "timeliness", "stipulations"),
    FUND: ("gender_principal_share", "own_target", "wro_direct_share", "traceability",
           "timeliness"),
}


@dataclass
class Point:
    year: int
    value: Decimal | None
    grade: str | None
    status: str
    rank: int | None
    coverage: Decimal | None


@dataclass
class Row:
    rank: int | None
    subject: str
    name: str | None
    item: CardItem
    trend: list[Point] = field(default_factory=list)
    #: value minus the value of the latest earlier graded year (both graded), else None
    change: Decimal | None = None
    change_from: int | None = None


@dataclass
class League:
    kind: str
    measure: str
    title: str
    year: int | None
    years: list[int]
    method: str
    rules: str
    min_count: int
    min_coverage: Decimal
    benchmark: Decimal | None = None
    benchmark_source: str | None = None
    rows: list[Row] = field(default_factory=list)

    @property
    def ranked(self) -> list[Row]:
        return [r for r in self.rows if r.rank is not None]

    @property
    def unranked(self) -> list[Row]:
        return [r for r in self.rows if r.rank is None]


def subjects(conn: Connection, kind: str) -> set[str] | None:
    """The pooled funds (the registry and organisations marked as pooled funds) for
    ``fund``; None (everyone else who reports its own money) for ``donor``."""
    from fundtrack.derived.trail.tables import Fund

    o = m.Organisation.__table__
    funds = {r[0] for r in conn.execute(select(Fund.organisation_ref))}
    funds |= {r[0] for r in conn.execute(select(o.c.ref).where(o.c.is_pooled_fund.is_(True)))}
    return funds if kind == FUND else None


def names(conn: Connection, refs: set[str]) -> dict[str, str]:
    """Registry names, else the name the organisation's own activities give it."""
    o, a = m.Organisation.__table__, m.Activity.__table__
    out: dict[str, str] = {}
    ordered = sorted(refs)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i:i + 500]
        for ref, name in conn.execute(select(a.c.reporting_org_ref, a.c.reporting_org_name)
                                      .where(a.c.reporting_org_ref.in_(chunk))):
            if name:
                out.setdefault(ref, name)
        for ref, name in conn.execute(select(o.c.ref, o.c.name).where(o.c.ref.in_(chunk))):
            if name:
                out[ref] = name
    return out


def _rank(items: list[tuple[str, CardItem]]) -> dict[str, int]:
    """Competition ranking of the graded items, highest value first."""
    graded = sorted(((s, it) for s, it in items if it.status == GRADED and it.value is not None),
                    key=lambda p: (-p[1].value, p[0]))  # type: ignore[operator]
    out: dict[str, int] = {}
    prev: Decimal | None = None
    for n, (s, it) in enumerate(graded, start=1):
        out[s] = out[graded[n - 2][0]] if prev is not None and it.value == prev else n
        prev = it.value
    return out


def _all(conn: Connection, kind: str, method: str) -> dict[tuple[str, int], Card]:
    subs = subjects(conn, kind)
    got = cards(conn, subs, None, method, kind)
    if kind == DONOR:
        funds = subjects(conn, FUND) or set()
        got = {k: v for k, v in got.items() if k[0] not in funds}
    return got


def _measure_title(kind: str, measure: str, got: dict[tuple[str, int], Card]) -> str:
    for card in got.values():
        return card.item(measure).title
    return measure


def tables(conn: Connection, kind: str, method: str = "principal"
           ) -> tuple[dict[tuple[str, int], Card], dict[str, str]]:
    """Every card of ``kind`` (all subjects, all years) and the subjects' names."""
    if kind not in MEASURES:
        raise ValueError(f"unknown league {kind!r}; known: {', '.join(MEASURES)}")
    got = _all(conn, kind, method)
    return got, names(conn, {s for s, _ in got})


def league(conn: Connection, kind: str, measure: str, year: int | None = None,
           method: str = "principal") -> League:
    """The ``measure`` table of ``kind`` (donor | fund) for ``year`` (None: the latest
    year in which some subject is graded, else the latest year with data)."""
    if kind not in MEASURES:
        raise ValueError(f"unknown league {kind!r}; known: {', '.join(MEASURES)}")
    if measure not in MEASURES[kind]:
        raise ValueError(f"unknown measure {measure!r} for {kind}s; known: "
                         f"{', '.join(MEASURES[kind])}")
    got, nm = tables(conn, kind, method)
    return build(kind, measure, year, method, got, nm)


def build(kind: str, measure: str, year: int | None, method: str,
          got: dict[tuple[str, int], Card], nm: dict[str, str]) -> League:
    by_year: dict[int, list[tuple[str, CardItem]]] = defaultdict(list)
    for (s, y), card in got.items():
        by_year[y].append((s, card.item(measure)))
    ranks = {y: _rank(items) for y, items in by_year.items()}
    years = sorted(by_year, reverse=True)
    if year is None:
        year = next((y for y in years if ranks[y]), years[0] if years else None)
    th = threshold(measure)
    out = League(kind, measure, _measure_title(kind, measure, got), year, years, method,
                 fingerprint(), th.min_count, th.min_coverage)
    trend: dict[str, list[Point]] = defaultdict(list)
    for y in sorted(by_year):
        for s, it in by_year[y]:
            trend[s].append(Point(y, it.value, it.grade, it.status, ranks[y].get(s),
                                  it.coverage))
    if year is None:
        return out
    for s, it in by_year.get(year, []):
        if out.benchmark is None and measure != "own_target":
            out.benchmark, out.benchmark_source = it.benchmark, it.benchmark_source
        row = Row(ranks[year].get(s), s, nm.get(s), it, trend[s])
        if it.status == GRADED:
            this = year
            before = [p for p in trend[s] if p.year < this and p.status == GRADED]
            if before and it.value is not None and before[-1].value is not None:
                row.change, row.change_from = it.value - before[-1].value, before[-1].year
        out.rows.append(row)
    out.rows.sort(key=lambda r: (r.rank is None, r.rank or 0,
                                 -(r.item.base_usd or Decimal(0)), r.subject))
    return out


CSV_FIELDS = ("kind", "measure", "year", "rank", "subject", "name", "value", "grade",
              "status", "base", "base_count", "base_usd", "coverage", "coverage_of",
              "coverage_numerator", "coverage_denominator", "coverage_unit", "min_count",
              "min_coverage", "benchmark", "numerator", "denominator", "unit", "method",
              "insufficient", "not_available", "rules_fingerprint")


def to_csv(conn: Connection, kind: str, measure: str | None = None,
           method: str = "principal") -> str:
    """Every year's table (one measure, or all) as CSV, long format: one row per
    subject, year and measure; the trend is the rows of other years."""
    got, nm = tables(conn, kind, method)
    measures = [measure] if measure else list(MEASURES[kind])
    for mkey in measures:
        if mkey not in MEASURES[kind]:
            raise ValueError(f"unknown measure {mkey!r} for {kind}s")
    years = sorted({y for _, y in got}, reverse=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    rules = fingerprint()
    for mkey in measures:
        for y in years:
            table = build(kind, mkey, y, method, got, nm)
            for r in table.rows:
                d = r.item.as_dict()
                w.writerow({**{k: d.get(k) for k in CSV_FIELDS if k in d}, "kind": kind,
                            "measure": mkey, "year": y, "rank": r.rank, "subject": r.subject,
                            "name": r.name, "rules_fingerprint": rules})
    return buf.getvalue()


def as_dict(t: League) -> dict[str, Any]:
    return {"kind": t.kind, "measure": t.measure, "title": t.title, "year": t.year,
            "years": t.years, "rows": [{"rank": r.rank, "subject": r.subject, "name": r.name,
                                        **r.item.as_dict()} for r in t.rows]}
