"""What the pages show, read with the API's own aggregate statement.

Every total on the overview and every Sankey band is one group of
:func:`fundtrack.query.aggregate.aggregate_statement` (the SQL behind ``flowsAggregate``)
under a :class:`~fundtrack.web.filters.FlowFilter`, so a figure on screen equals what
``flowsAggregate(where: <the filter's graphql()>, groupBy: [...])`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select

from fundtrack.db.base import current
from fundtrack.db.metadata import metadata
from fundtrack.ledger import tables as m
from fundtrack.query import nodes
from fundtrack.query.aggregate import FlowDimension, aggregate_statement
from fundtrack.records import FlowKind
from fundtrack.web.filters import FlowFilter

T = TypeVar("T")

#: The two halves of the Sankey, per basis: (donor -> agency kinds, agency -> country kinds).
SANKEY_BASES: dict[str, tuple[str, tuple[FlowKind, ...], tuple[FlowKind, ...]]] = {
    "cash": ("cash: incoming funds, then disbursements and expenditure",
             (FlowKind.INCOMING_FUNDS,), (FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE)),
    "commitments": ("commitments: incoming, then outgoing",
                    (FlowKind.INCOMING_COMMITMENT,), (FlowKind.OUTGOING_COMMITMENT,)),
}
CASH_KINDS = (FlowKind.INCOMING_FUNDS, FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE)
UNNAMED = "(not named)"
NO_COUNTRY = "(no country on the flow)"


def read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run ``fn`` in a read transaction (deferred BEGIN on SQLite, as the API does)."""
    with engine.connect().execution_options(readonly=True) as conn:
        try:
            return fn(conn)
        finally:
            conn.rollback()


def groups(conn: Connection, flt: FlowFilter, dims: list[FlowDimension]) -> list[dict[str, Any]]:
    """``flowsAggregate`` groups as plain dicts (``sum_usd`` a Decimal or None)."""
    stmt = aggregate_statement(flt.clause(), dims, conn.dialect.name)
    out = []
    for r in conn.execute(stmt).mappings():
        if not r["count"]:
            continue
        row = {d.value: r[d.value] for d in dims}
        # SQLite hands some integer dimensions back as text ('2'): the pages look them up
        # by number, so both databases give ints here.
        for dim in ("year", "gender_significance"):
            if row.get(dim) is not None:
                row[dim] = int(Decimal(str(row[dim])))
        row["count"] = r["count"]
        row["sum_usd"] = None if r["sum_usd"] is None else Decimal(str(r["sum_usd"]))
        row["count_without_usd"] = r["count_without_usd"]
        out.append(row)
    return out


def org_names(conn: Connection, refs: set[str]) -> dict[str, str]:
    """A readable name per ref: the registry's, else the canonical organisation's
    (:func:`fundtrack.query.nodes.names`, the one place that says how a page names one)."""
    return nodes.names(conn, refs)


@dataclass
class Overview:
    by_year: list[dict[str, Any]] = field(default_factory=list)      # year, kind, ...
    years: list[int] = field(default_factory=list)
    by_gender: list[dict[str, Any]] = field(default_factory=list)
    donors: list[dict[str, Any]] = field(default_factory=list)
    agencies: list[dict[str, Any]] = field(default_factory=list)
    funds: list[dict[str, Any]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    flows: int = 0
    activities: int = 0
    batches: int = 0


def _top(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-(r["sum_usd"] or 0), str(r.get("provider")
                                                                  or r.get("reporting_org"))))[:n]


def overview(conn: Connection, flt: FlowFilter) -> Overview:
    """Totals by year and kind, by gender marker, top donors, agencies and pooled funds."""
    from sqlalchemy import func

    cash = flt.with_kinds(flt.kinds or CASH_KINDS)
    ov = Overview()
    ov.by_year = groups(conn, cash, [FlowDimension.YEAR, FlowDimension.KIND])
    ov.years = sorted({r["year"] for r in ov.by_year if r["year"] is not None})
    ov.by_gender = groups(conn, cash, [FlowDimension.GENDER_SIGNIFICANCE, FlowDimension.KIND])
    ov.donors = _top(groups(conn, flt.with_kinds((FlowKind.INCOMING_FUNDS,)),
                            [FlowDimension.PROVIDER]), 15)
    ov.agencies = _top(groups(conn, flt.with_kinds((FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE)),
                              [FlowDimension.REPORTING_ORG]), 15)
    funds = metadata.tables["fund"]
    fund_rows = list(conn.execute(select(funds.c.organisation_ref, funds.c.name, funds.c.acronym)
                                  .order_by(funds.c.name)).mappings())
    out = {r["reporting_org"]: r for r in groups(
        conn, flt.with_kinds((FlowKind.DISBURSEMENT,)), [FlowDimension.REPORTING_ORG])}
    inc = {r["reporting_org"]: r for r in groups(
        conn, flt.with_kinds((FlowKind.INCOMING_FUNDS,)), [FlowDimension.REPORTING_ORG])}
    for f in fund_rows:
        ref = f["organisation_ref"]
        ov.funds.append({"ref": ref, "name": f["name"], "acronym": f["acronym"],
                         "in": inc.get(ref), "out": out.get(ref)})
    ov.names = org_names(conn, {r["provider"] for r in ov.donors}
                         | {r["reporting_org"] for r in ov.agencies})
    ov.flows = sum(r["count"] for r in ov.by_year)
    ov.activities = conn.execute(select(func.count()).select_from(m.Activity.__table__).where(
        current(m.Activity))).scalar_one()
    ov.batches = conn.execute(select(func.count()).select_from(m.ImportBatch.__table__).where(
        m.ImportBatch.status == "applied")).scalar_one()
    return ov


@dataclass
class Sankey:
    basis: str
    nodes: list[str] = field(default_factory=list)      # labels
    node_keys: list[str] = field(default_factory=list)  # "donor:REF", "agency:REF", "country:AF"
    links: list[dict[str, Any]] = field(default_factory=list)
    left_filter: dict[str, Any] = field(default_factory=dict)
    right_filter: dict[str, Any] = field(default_factory=dict)
    without_usd: int = 0
    not_drawn: list[dict[str, Any]] = field(default_factory=list)  # net negative groups


def sankey(conn: Connection, flt: FlowFilter, basis: str = "cash", limit: int = 40) -> Sankey:
    """Donors -> agencies and pooled funds -> recipient countries, in USD.

    Left bands: ``flowsAggregate(where: {kind: incoming funds, ...}, groupBy: [PROVIDER,
    REPORTING_ORG])`` -- what each agency reports receiving from each donor. Right bands:
    ``flowsAggregate(where: {kind: disbursement/expenditure, ...}, groupBy: [REPORTING_ORG,
    RECIPIENT_COUNTRY])`` -- what the agency reports sending on, by country. A donor filter
    selects the donor's bands on the left and, on the right, all outflows of the agencies
    it funds (not the donor's attributed share: that is the trace page's job).
    """
    label, left_kinds, right_kinds = SANKEY_BASES[basis]
    left_f = flt.with_kinds(left_kinds)
    right_f = FlowFilter(year=flt.year, kinds=right_kinds, country=flt.country, gender=flt.gender,
                         pillar=flt.pillar, reporting_org=flt.reporting_org,
                         activity=flt.activity)
    left = groups(conn, left_f, [FlowDimension.PROVIDER, FlowDimension.REPORTING_ORG])
    negative = [r for r in left if r["sum_usd"] is not None and r["sum_usd"] < 0]
    left = [r for r in left if r["sum_usd"] and r["sum_usd"] > 0]
    left.sort(key=lambda r: -r["sum_usd"])
    left = left[:limit]
    right = groups(conn, right_f, [FlowDimension.REPORTING_ORG, FlowDimension.RECIPIENT_COUNTRY])
    negative += [r for r in right if r["sum_usd"] is not None and r["sum_usd"] < 0]
    right = [r for r in right if r["sum_usd"] and r["sum_usd"] > 0]
    if flt.donor:
        agencies = {r["reporting_org"] for r in left}
        right = [r for r in right if r["reporting_org"] in agencies]
    right.sort(key=lambda r: -r["sum_usd"])
    right = right[:limit]
    sk = Sankey(basis=label, left_filter=left_f.graphql(), right_filter=right_f.graphql(),
                not_drawn=negative)
    from fundtrack.query.sankey import place_label

    names = nodes.names(conn, {r["provider"] for r in left} | {r["reporting_org"] for r in left}
                        | {r["reporting_org"] for r in right})
    index: dict[str, int] = {}

    def node(key: str, text: str) -> int:
        if key not in index:
            index[key] = len(sk.nodes)
            sk.nodes.append(text)
            sk.node_keys.append(key)
        return index[key]

    def org_label(ref: str | None) -> str:
        return nodes.label(ref, names) if ref else UNNAMED

    for r in left:  # one node per organisation however its ref is spelled
        s = node(f"donor:{nodes.identity(r['provider'])}", "donor " + org_label(r["provider"]))
        t = node(f"agency:{nodes.identity(r['reporting_org'])}", org_label(r["reporting_org"]))
        sk.links.append({"source": s, "target": t, "value": r["sum_usd"], "count": r["count"],
                         "from": r["provider"], "to": r["reporting_org"], "side": "left",
                         "without_usd": r["count_without_usd"]})
    for r in right:
        s = node(f"agency:{nodes.identity(r['reporting_org'])}", org_label(r["reporting_org"]))
        c = r["recipient_country"]
        t = node(f"country:{c or ''}", place_label("country", c) if c else NO_COUNTRY)
        sk.links.append({"source": s, "target": t, "value": r["sum_usd"], "count": r["count"],
                         "from": r["reporting_org"], "to": c, "side": "right",
                         "without_usd": r["count_without_usd"]})
    sk.without_usd = sum(link["without_usd"] for link in sk.links)
    return sk


#: The last column of the donor Sankey: by recipient country or by DAC sector.
SANKEY_BY = {"country": "recipient country", "sector": "DAC sector"}


def donor_filter(flt: FlowFilter) -> FlowFilter:
    """The part of a page filter that selects a donor's disbursement reports (and the
    onward reports): everything but the donor itself, the kinds and the reporting org."""
    return FlowFilter(year=flt.year, country=flt.country, gender=flt.gender, pillar=flt.pillar)


def donor_sankey(conn: Connection, flt: FlowFilter, by: str = "country") -> Any:
    """The Sankey from the donor's side (:mod:`fundtrack.query.sankey`), for ``flt.donor``
    under the rest of the filter; the API's ``donorSankey`` with ``where`` =
    ``donor_filter(flt).graphql()`` answers the same."""
    from fundtrack.query.sankey import donor_sankey as build

    assert flt.donor
    rest = donor_filter(flt)
    return build(conn, flt.donor, rest.clause() if rest.params() else None, by=by)


def sankey_donors(conn: Connection, flt: FlowFilter, n: int = 30) -> list[tuple[str, str]]:
    """(ref, label) of the organisations reporting the most disbursements (USD) under the
    filter: the donors a reader can pick."""

    rows = groups(conn, donor_filter(flt).with_kinds((FlowKind.DISBURSEMENT,)),
                  [FlowDimension.REPORTING_ORG])
    rows = [r for r in rows if r["reporting_org"]]
    rows.sort(key=lambda r: (-(r["sum_usd"] or 0), r["reporting_org"]))
    names = nodes.names(conn, {r["reporting_org"] for r in rows[:n]})
    return [(r["reporting_org"], nodes.label(r["reporting_org"], names)) for r in rows[:n]]
