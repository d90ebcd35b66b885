"""Report cards per donor and year, and scorecards per pooled fund.

A card is a pure function of the ledger, the accounting tables and the rule files: it
cites its method, the rule files' fingerprint and the flow filter it used, so anyone can
recompute it (and reconcile its totals with ``flowsAggregate`` for the same filter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from fundtrack.accounting import trail_evidence as trace
from fundtrack.accounting.benchmarks import benchmark, grade
from fundtrack.accounting.classify import classify_all
from fundtrack.accounting.config import fingerprint, load
from fundtrack.accounting.items import Item, load_items, year_between
from fundtrack.accounting.methods import Figure, count, get_method, reported_shares
from fundtrack.accounting.stipulations import check
from fundtrack.accounting.wro import reaches_wro, wro_refs
from fundtrack.ledger import tables as m
from fundtrack.money import exact_sum
from fundtrack.records import FlowKind


@dataclass
class CardItem:
    key: str
    title: str
    value: Decimal | None = None          # a share 0..1 (or ratio)
    numerator: Decimal | None = None
    denominator: Decimal | None = None
    unit: str = "USD"
    benchmark: Decimal | None = None
    benchmark_source: str | None = None
    grade: str | None = None
    method: str | None = None
    not_available: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


@dataclass
class Card:
    subject: str
    year: int
    method: str
    rules: str
    filter: dict[str, Any]
    items: list[CardItem] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    stipulations: list[dict[str, Any]] = field(default_factory=list)

    def item(self, key: str) -> CardItem:
        return next(i for i in self.items if i.key == key)

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "year": self.year, "method": self.method,
                "rules_fingerprint": self.rules, "filter": self.filter,
                "items": [i.as_dict() for i in self.items], "figures": self.figures,
                "stipulations": self.stipulations}


def _ratio(num: Decimal, den: Decimal) -> Decimal | None:
    return num / den if den else None


def _graded(key: str, item: CardItem) -> CardItem:
    b = benchmark(key)
    item.benchmark, item.benchmark_source = b.target, b.source
    item.grade = grade(item.value, b.target)
    return item


def _usd(items: list[Item]) -> Decimal:
    return exact_sum(it.amount_usd for it in items)


def outgoing_where(org: str, year: int, kinds: tuple[FlowKind, ...]) -> Any:
    """An organisation's own outgoing flows of ``kinds`` dated in ``year``: flows it provides,
    or that it reports with no provider named. Mirrors the ``flowsAggregate`` filter in
    :func:`api_filter`."""
    f = m.Flow.__table__.c
    return and_(f.kind.in_(kinds), year_between(f.value_date, year),
                or_(f.provider_ref == org, and_(f.provider_ref.is_(None),
                                                f.reporting_org_ref == org)))


def api_filter(org: str, year: int, kind: FlowKind) -> dict[str, Any]:
    """The same filter as a GraphQL ``FlowWhere`` (for reconciling with flowsAggregate)."""
    return {"kind": {"_eq": kind.name},
            "valueDate": {"_gte": f"{year}-01-01", "_lte": f"{year}-12-31"},
            "_or": [{"providerRef": {"_eq": org}},
                    {"providerRef": {"_is_null": True}, "reportingOrgRef": {"_eq": org}}]}


def donor_card(conn: Connection, donor: str, year: int, method: str = "principal") -> Card:
    meth = get_method(method)
    card = Card(donor, year, meth.name, fingerprint(),
                api_filter(donor, year, FlowKind.DISBURSEMENT))
    paid = load_items(conn, outgoing_where(donor, year, (FlowKind.DISBURSEMENT,)))
    cls = classify_all(conn, paid)
    shares = reported_shares(conn)

    # 1. pledge fulfilment
    pledges = load_items(conn, outgoing_where(donor, year, (FlowKind.OUTGOING_PLEDGE,)))
    basis = "outgoing pledges"
    if not pledges:
        pledges = load_items(conn, outgoing_where(donor, year, (FlowKind.OUTGOING_COMMITMENT,)))
        basis = "outgoing commitments (no pledges reported)"
    it = CardItem("pledge_fulfilment", "Pledge fulfilment (paid / pledged)",
                  numerator=_usd(paid), denominator=_usd(pledges),
                  note=f"pledged = {basis} dated {year}; paid = disbursements dated {year}")
    it.value = _ratio(it.numerator, it.denominator)  # type: ignore[arg-type]
    if it.value is None:
        it.not_available = f"not available: no pledges or commitments dated {year}"
    card.items.append(_graded("pledge_fulfilment", it))

    # 2-3. gender shares of peace-and-security aid
    ps = [i for i in paid if cls[i.flow_id].in_scope]
    for key, mname, title, bkey in (
            ("gender_principal_share", "principal",
             "Gender-principal share of peace-and-security aid", "gender_principal_share"),
            ("gender_focused_share", "gender-focused",
             "Gender-focused share of peace-and-security aid", None)):
        fig = count(ps, get_method(mname), shares)
        ci = CardItem(key, title, value=fig.share, numerator=fig.amount_usd,
                      denominator=fig.base_usd, method=mname)
        if fig.share is None:
            ci.not_available = "not available: no peace-and-security disbursements with USD"
        card.items.append(_graded(bkey, ci) if bkey else ci)
        card.figures[f"peace_and_security_{mname}"] = fig.as_dict()
    sel = count(ps, meth, shares)
    card.figures["peace_and_security_selected_method"] = sel.as_dict()
    card.figures["all_disbursements_selected_method"] = count(paid, meth, shares).as_dict()

    # 4. women's rights organisations, directly and through intermediaries
    wros = wro_refs(conn)
    direct = [i for i in paid if reaches_wro(i, wros)]
    ci = CardItem("wro_direct_share", "Share of disbursements reaching WROs directly",
                  numerator=_usd(direct), denominator=_usd(paid))
    ci.value = _ratio(ci.numerator, ci.denominator)  # type: ignore[arg-type]
    card.items.append(_graded("wro_share", ci))
    ci = CardItem("wro_indirect_share", "Share reaching WROs through intermediaries",
                  denominator=_usd(paid))
    if trace.attribution_available(conn):
        parts = trace.donor_parts(conn, donor, year=year, min_depth=2)
        ci.numerator = exact_sum(u for u, i in parts if reaches_wro(i, wros))
        ci.value = _ratio(ci.numerator, ci.denominator)  # type: ignore[arg-type]
        ci.note = "donor's attributed money in movements at depth >= 2 received by a WRO"
    else:
        ci.not_available = trace.NO_ATTRIBUTION
    card.items.append(ci)

    # 5. unearmarked + softly earmarked (Grand Bargain categories 1-2)
    known = [i for i in paid if i.earmarking is not None]
    flexible = [i for i in known if i.earmarking in (1, 2)]
    ci = CardItem("flexible_share", "Unearmarked and softly earmarked share",
                  numerator=_usd(flexible), denominator=_usd(known),
                  note=f"{len(paid) - len(known)} disbursements "
                       f"(USD {_usd([i for i in paid if i.earmarking is None])}) report no "
                       "earmarking and are left out")
    ci.value = _ratio(ci.numerator, ci.denominator)  # type: ignore[arg-type]
    if ci.value is None:
        ci.not_available = "not available: no disbursement reports its earmarking"
    card.items.append(_graded("flexible_share", ci))

    # 6. traceability
    ci = CardItem("traceability", "Outgoing flows whose links resolve", unit="flows",
                  denominator=Decimal(len(paid)))
    if trace.links_available(conn):
        ids = {i.flow_id for i in paid}
        ok = trace.resolved_link_flows(conn, ids)
        own = trace.self_link_flows(conn, ids) - ok
        ci.numerator = Decimal(len(ok))
        ci.note = (f"{len(ok)} link to another activity; {len(own)} link only to their own "
                   "activity (resolves by construction, traces nothing: not counted)")
        ci.value = _ratio(ci.numerator, ci.denominator)  # type: ignore[arg-type]
    else:
        ci.not_available = trace.NO_LINKS
    card.items.append(_graded("traceability", ci))

    # 7. timeliness
    window = int(load("benchmarks")["benchmarks"]["timeliness"]["window_days"])
    dated = [i for i in paid if i.value_date and i.batch_created]
    timely = [i for i in dated if (_day(i.batch_created) - i.value_date).days <= window]
    ci = CardItem("timeliness", f"Disbursements published within {window} days", unit="flows",
                  numerator=Decimal(len(timely)), denominator=Decimal(len(dated)),
                  note="lag = date the file was imported - value date")
    ci.value = _ratio(ci.numerator, ci.denominator)  # type: ignore[arg-type]
    card.items.append(_graded("timeliness", ci))

    # 8. stipulations met
    results = check(conn, donor, year)
    card.stipulations = [r.as_dict() for r in results]
    judged = [r for r in results if r.met is not None]
    ci = CardItem("stipulations", "Stipulations met", unit="stipulations",
                  numerator=Decimal(sum(1 for r in judged if r.met)),
                  denominator=Decimal(len(judged)))
    ci.value = _ratio(ci.numerator, ci.denominator)  # type: ignore[arg-type]
    if ci.value is None:
        ci.not_available = ("not available: no stipulations registered" if not results
                            else results[0].not_available)
    card.items.append(_graded("stipulations", ci))
    card.figures["paid_usd"] = str(_usd(paid))
    card.figures["paid_flows"] = len(paid)
    card.figures["paid_without_usd"] = sum(1 for i in paid if i.amount_usd is None)
    return card


def _day(v: Any) -> date:
    return v.date() if hasattr(v, "date") else v


def fund_scorecard(conn: Connection, fund: str, year: int) -> Card:
    """Share of a fund's allocations (disbursements) to gender-principal projects, against
    the 15% benchmark and against the fund's own registered target."""
    from fundtrack.accounting.tables import FundTarget

    card = Card(fund, year, "principal", fingerprint(),
                api_filter(fund, year, FlowKind.DISBURSEMENT))
    alloc = load_items(conn, outgoing_where(fund, year, (FlowKind.DISBURSEMENT,)))
    classify_all(conn, alloc)  # applies hand gender overrides
    fig: Figure = count(alloc, get_method("principal"))
    card.figures["allocations_principal"] = fig.as_dict()
    base = CardItem("gender_principal_share", "Allocations to gender-principal projects",
                    value=fig.share, numerator=fig.amount_usd, denominator=fig.base_usd,
                    method="principal")
    if fig.share is None:
        base.not_available = f"not available: no allocations with USD dated {year}"
    card.items.append(_graded("gender_principal_share", base))
    target = conn.execute(select(FundTarget.__table__).where(FundTarget.fund_ref == fund)).first()
    own = CardItem("own_target", "Against the fund's own target", value=fig.share,
                   numerator=fig.amount_usd, denominator=fig.base_usd, method="principal")
    if target is None:
        own.not_available = "not available: no target registered for this fund"
    else:
        own.benchmark, own.benchmark_source = target.gender_principal_share, target.source
        own.grade = grade(fig.share, target.gender_principal_share)
    card.items.append(own)
    return card
