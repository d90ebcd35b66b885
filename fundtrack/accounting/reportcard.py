"""Report cards per donor and year, and scorecards per pooled fund.

A card is a pure function of the ledger, the accounting tables and the rule files: it
cites its method, the rule files' fingerprint and the flow filter it used, so anyone can
recompute it (and reconcile its totals with ``flowsAggregate`` for the same filter).

Every measure says what it rests on: its **base** (how many flows or commitments, how
many USD) and its **coverage** (the part of the base the measure can judge, e.g. the
disbursements that report their earmarking). A grade is given only when the base and the
coverage pass the thresholds of ``benchmarks.toml`` (``[thresholds]``); otherwise the
measure says "insufficient data" with the numbers. A card counts its subject's own
reports (:mod:`fundtrack.accounting.subject`); what others report about it is a separate,
labelled line.

Cards for many subjects and years (league tables) are computed in one pass by
:func:`cards`; :func:`donor_card` and :func:`fund_scorecard` are that pass for one
subject and year, so a card and its league-table row can never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, not_, select

from fundtrack.accounting import fulfilment
from fundtrack.accounting import trail_evidence as trace
from fundtrack.accounting.benchmarks import benchmark, grade, has_benchmark, threshold
from fundtrack.accounting.classify import Classification, classify_all
from fundtrack.accounting.config import fingerprint, load
from fundtrack.accounting.items import Item, earliest_publication, load_items, year_between
from fundtrack.accounting.markers import NOT_SCREENED
from fundtrack.accounting.methods import count, get_method, reported_shares
from fundtrack.accounting.stipulations import check
from fundtrack.accounting.subject import (
    api_filter,
    denotes,
    item_owner,
    own_reports,
    owner,
    party_is,
    reported_by_others,
    reporter_label,
    require_known,
)
from fundtrack.accounting.wro import channel_is_wro, reaches_wro, wro_refs
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.money import SUM_CONTEXT, exact_sum
from fundtrack.records import FlowKind

GRADED = "graded"
NOT_GRADED = "not-graded"          # a value, no benchmark to grade against
INSUFFICIENT = "insufficient-data"
NOT_AVAILABLE = "not-available"    # cannot be computed at all (e.g. links not computed)

DONOR, FUND = "donor", "fund"


@dataclass
class CardItem:
    key: str
    title: str
    value: Decimal | None = None          # a share 0..1 (or ratio)
    numerator: Decimal | None = None
    denominator: Decimal | None = None
    unit: str = "USD"
    #: The base: what the measure is computed over, how many items and how many USD.
    base: str = ""
    base_count: int | None = None
    base_usd: Decimal | None = None
    #: Coverage: the share of the base the measure can judge, and what that is.
    coverage: Decimal | None = None
    coverage_numerator: Decimal | None = None
    coverage_denominator: Decimal | None = None
    coverage_unit: str | None = None
    coverage_of: str | None = None
    min_count: int | None = None
    min_coverage: Decimal | None = None
    status: str = NOT_GRADED
    insufficient: str | None = None
    benchmark: Decimal | None = None
    benchmark_source: str | None = None
    grade: str | None = None
    method: str | None = None
    not_available: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (_text(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def _text(v: Decimal) -> str:
    """A Decimal as plain text: no exponent (a zero quotient reads "0E+2" otherwise)."""
    return format(v, "f")


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
    kind: str = DONOR

    def item(self, key: str) -> CardItem:
        return next(i for i in self.items if i.key == key)

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "year": self.year, "kind": self.kind,
                "method": self.method, "rules_fingerprint": self.rules, "filter": self.filter,
                "items": [i.as_dict() for i in self.items], "figures": self.figures,
                "stipulations": self.stipulations}


# --- grading ---------------------------------------------------------------------------

def _share(num: Decimal, den: Decimal) -> Decimal | None:
    if not den:
        return None
    return num / den if num else Decimal(0)


def _pct(v: Decimal | None) -> str:
    return "-" if v is None else f"{(v * 100).quantize(Decimal('0.1'))}%"


def _usd(v: Decimal | None) -> str:
    return "-" if v is None else f"USD {v.quantize(Decimal(1)):,}"


def judge(key: str, it: CardItem, bkey: str | None = None) -> CardItem:
    """Set the item's status: not available, insufficient data (with the numbers), graded
    against benchmark ``bkey`` (default: ``key``), or a value without a benchmark."""
    th = threshold(key)
    it.min_count, it.min_coverage = th.min_count, th.min_coverage
    bkey = key if bkey is None else bkey
    if bkey and has_benchmark(bkey):
        b = benchmark(bkey)
        it.benchmark, it.benchmark_source = b.target, b.source
    if it.not_available:
        it.status = NOT_AVAILABLE
        return it
    why = []
    if (it.base_count or 0) < th.min_count:
        why.append(f"the base holds {it.base_count or 0} "
                   f"{'item' if it.base_count == 1 else 'items'} ({it.base}); "
                   f"a grade needs at least {th.min_count}")
    if it.coverage is not None and it.coverage < th.min_coverage:
        cov_n, cov_d = it.coverage_numerator, it.coverage_denominator
        nums = (f"{_usd(cov_n)} of {_usd(cov_d)}" if it.coverage_unit == "USD"
                else f"{cov_n} of {cov_d} {it.coverage_unit or ''}".rstrip())
        why.append(f"coverage {_pct(it.coverage)} ({nums} {it.coverage_of}); "
                   f"a grade needs at least {_pct(th.min_coverage)}")
    if it.value is None and not why:
        why.append(f"nothing to measure ({it.base})")
    if why:
        it.status = INSUFFICIENT
        it.insufficient = "insufficient data: " + "; ".join(why)
        return it
    if it.benchmark is not None:
        it.status, it.grade = GRADED, grade(it.value, it.benchmark)
    else:
        it.status = NOT_GRADED
    return it


# --- what one computation shares ------------------------------------------------------

@dataclass
class _Data:
    """Everything the measures of many subject-years need, loaded once."""

    paid: dict[tuple[str, int], list[Item]]
    cls: dict[int, Classification]
    promises: dict[str, list[fulfilment.Commitment]]
    forward: set[int]
    backward: dict[int, int]
    own_only: set[int]
    links: bool
    attribution: bool
    onward: dict[tuple[str, int], dict[str, Any]]
    others: dict[tuple[str, int], dict[str, Any]]
    stipulated: set[str]
    wros: set[str]
    shares: dict[str, Decimal]


def _year_of(it: Item) -> int | None:
    return it.value_date.year if it.value_date else None


def _load(conn: Connection, org: str | None, years: set[int] | None) -> _Data:
    f = m.Flow.__table__
    where = and_(current(f), own_reports(org, (FlowKind.DISBURSEMENT,)))
    if years is not None and len(years) == 1:
        where = and_(where, year_between(f.c.value_date, next(iter(years))))
    paid: dict[tuple[str, int], list[Item]] = defaultdict(list)
    items = []
    loaded = load_items(conn, where)
    earliest_publication(conn, loaded)
    for it in loaded:
        who, y = item_owner(it), _year_of(it)
        if who is None or y is None or (years is not None and y not in years):
            continue
        if org is not None:  # the subject's card, whatever ref the report used (issue 15)
            who = org
        paid[(who, y)].append(it)
        items.append(it)
    promises: dict[str, list[fulfilment.Commitment]] = defaultdict(list)
    for c in fulfilment.commitments(conn, org):
        promises[c.org].append(c)
    links = trace.links_available(conn)
    ids = {it.flow_id for it in items}
    forward = trace.resolved_link_flows(conn, ids) if links else set()
    backward = trace.traced_by_receivers(conn, items) if links else {}
    own_only = (trace.self_link_flows(conn, ids) - forward - set(backward)) if links else set()
    attribution = trace.attribution_available(conn)
    wros = wro_refs(conn)
    from fundtrack.accounting.tables import Stipulation

    stipulated = {r[0] for r in conn.execute(select(Stipulation.donor_ref).distinct())}
    return _Data(paid=dict(paid), cls=classify_all(conn, items), promises=dict(promises),
                 forward=forward, backward=backward, own_only=own_only, links=links,
                 attribution=attribution,
                 onward=_onward(conn, org, wros) if attribution else {},
                 others=_others(conn, org, years), stipulated=stipulated, wros=wros,
                 shares=reported_shares(conn))


def _onward(conn: Connection, org: str | None, wros: set[str]) -> dict[tuple[str, int], Any]:
    """Per (originator, year): the donor's money its recipients report passing on
    (attribution depth 2: USD and parts) and the money reaching a WRO at depth >= 2."""
    from fundtrack.derived.trail.tables import Attribution as A
    from fundtrack.derived.trail.tables import Movement as M

    f = m.Flow.__table__
    q = (select(A.originator_ref, A.depth, A.amount_usd, M.value_date, M.dst_org, f.c.extra)
         .join(M, M.id == A.movement_id).join(f, f.c.id == M.flow_id)
         .where(A.depth >= 2, A.originator_ref.is_not(None)))
    if org is not None:
        q = q.where(denotes(A.originator_ref, org))
    out: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"usd": Decimal(0), "parts": 0, "wro_usd": Decimal(0)})
    for r in conn.execute(q):
        if r.value_date is None or r.amount_usd is None:
            continue
        d = out[(org if org is not None else r.originator_ref, r.value_date.year)]
        if r.depth == 2:
            d["usd"] = SUM_CONTEXT.add(d["usd"], r.amount_usd)
            d["parts"] += 1
        if r.dst_org in wros or channel_is_wro((r.extra or {}).get("channel_code"), wros):
            d["wro_usd"] = SUM_CONTEXT.add(d["wro_usd"], r.amount_usd)
    return dict(out)


def _others(conn: Connection, org: str | None, years: set[int] | None
            ) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (provider, year): disbursements other organisations report naming it as the
    provider (never counted as its own)."""
    f = m.Flow.__table__
    q = (select(f.c.provider_ref, f.c.reporting_org_ref, f.c.provider_name, f.c.extra,
                f.c.value_date, f.c.amount_usd)
         .where(current(f), reported_by_others(org, (FlowKind.DISBURSEMENT,))))
    if years is not None and len(years) == 1:
        q = q.where(year_between(f.c.value_date, next(iter(years))))
    out: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "usd": Decimal(0), "reporters": set()})
    for r in conn.execute(q):
        if r.value_date is None or owner(r.reporting_org_ref, r.provider_ref,
                                         r.provider_name, r.extra) == r.provider_ref:
            continue
        # one subject: its card, whatever ref the report used (issue 15)
        d = out[(org if org is not None else r.provider_ref, r.value_date.year)]
        d["count"] += 1
        if r.amount_usd is not None:
            d["usd"] = SUM_CONTEXT.add(d["usd"], r.amount_usd)
        d["reporters"].add(reporter_label(r.reporting_org_ref, r.extra))
    return dict(out)


# --- the measures ---------------------------------------------------------------------

def _total(items: list[Item]) -> Decimal:
    return exact_sum(it.amount_usd for it in items)


def _paid_base(paid: list[Item], year: int) -> dict[str, Any]:
    return {"base": f"own disbursements dated {year}", "base_count": len(paid),
            "base_usd": _total(paid)}


def m_pledge_fulfilment(d: _Data, who: str, year: int) -> CardItem:
    ful = fulfilment.of_year(d.promises.get(who, []), year)
    noun = "pledges" if ful.kind == FlowKind.OUTGOING_PLEDGE else "commitments"
    it = CardItem("pledge_fulfilment", benchmark("pledge_fulfilment").title,
                  value=ful.value, numerator=ful.paid_usd, denominator=ful.followable_usd,
                  base=f"own {noun} dated {year}", base_count=ful.count,
                  base_usd=ful.committed_usd, coverage=ful.coverage,
                  coverage_numerator=ful.settled_usd, coverage_denominator=ful.committed_usd,
                  coverage_unit="USD",
                  coverage_of="committed in commitments already settled (paid in full or "
                              "activity ended)")
    notes = [f"paid = disbursements of the commitment's activity (or its child activities) "
             f"to date, any year, filled in date order and capped at each commitment; "
             f"{ful.settled_count} of {ful.count} {noun} settled"]
    if ful.not_followable:
        notes.append(f"{ful.not_followable} {noun} name no activity to follow (left out of "
                     "the value, not settled)")
    if ful.without_usd:
        notes.append(f"{ful.without_usd} {noun} without USD left out")
    if ful.decommitted_usd:
        notes.append(f"amounts after later decommitments ({_usd(ful.decommitted_usd)} "
                     "taken off)")
    if ful.decommitments:
        notes.append(f"{ful.decommitments} decommitments dated {year} (negative "
                     "commitments) lower earlier commitments and are not counted as promises")
    it.note = "; ".join(notes)
    return judge("pledge_fulfilment", it)


def m_gender(d: _Data, paid: list[Item], year: int, key: str, method: str,
             *, scope: bool, bkey: str | None) -> tuple[CardItem, Any]:
    base = [i for i in paid if d.cls[i.flow_id].in_scope] if scope else paid
    fig = count(base, get_method(method), d.shares)
    screened = exact_sum(i.amount_usd for i in base if i.marker.common != NOT_SCREENED)
    what = (f"own peace-and-security disbursements dated {year}" if scope
            else f"own disbursements (allocations) dated {year}")
    title = {"gender_principal_share": "Gender-principal share",
             "gender_focused_share": "Gender-focused share (principal + significant)",
             "own_target": "Gender-principal share against the fund's own target"}[key]
    title += " of peace-and-security aid" if scope else " of allocations"
    it = CardItem(key, title, value=fig.share, numerator=fig.amount_usd,
                  denominator=fig.base_usd, method=method, base=what,
                  base_count=len(base), base_usd=fig.base_usd,
                  coverage=_share(screened, fig.base_usd), coverage_numerator=screened,
                  coverage_denominator=fig.base_usd, coverage_unit="USD",
                  coverage_of="with a screened gender marker")
    all_usd = _total(paid)
    if scope:
        it.note = (f"the base is {_pct(_share(fig.base_usd, all_usd))} of the "
                   f"{_usd(all_usd)} the organisation reports disbursing in {year}")
    if fig.flows_without_usd:
        it.note = ((it.note + "; ") if it.note else "") + (
            f"{fig.flows_without_usd} flows without USD left out")
    return judge(key, it, bkey), fig


def m_wro_direct(d: _Data, paid: list[Item], year: int) -> CardItem:
    direct = [i for i in paid if reaches_wro(i, d.wros)]
    named = exact_sum(i.amount_usd for i in paid
                      if i.receiver_ref or i.extra.get("channel_code"))
    total = _total(paid)
    it = CardItem("wro_direct_share", "Share of disbursements reaching WROs directly",
                  value=_share(_total(direct), total), numerator=_total(direct),
                  denominator=total, **_paid_base(paid, year),
                  coverage=_share(named, total), coverage_numerator=named,
                  coverage_denominator=total, coverage_unit="USD",
                  coverage_of="paid to an identified receiver (a ref or a CRS channel code)")
    return judge("wro_direct_share", it, "wro_share")


def m_wro_indirect(d: _Data, who: str, paid: list[Item], year: int) -> CardItem:
    total = _total(paid)
    it = CardItem("wro_indirect_share", "Share reaching WROs through intermediaries",
                  denominator=total, **_paid_base(paid, year))
    if not d.attribution:
        it.not_available = trace.NO_ATTRIBUTION
        return judge("wro_indirect_share", it, "")
    on = d.onward.get((who, year), {"usd": Decimal(0), "parts": 0, "wro_usd": Decimal(0)})
    it.numerator, it.value = on["wro_usd"], _share(on["wro_usd"], total)
    it.base_count, it.base_usd = on["parts"], on["usd"]
    it.base = (f"parts of the donor's money its recipients report passing on "
               f"(attribution depth 2), movements dated {year}")
    it.coverage, it.coverage_numerator = _share(on["usd"], total), on["usd"]
    it.coverage_denominator, it.coverage_unit = total, "USD"
    it.coverage_of = "of the donor's disbursements followed onward by recipients' reports"
    it.note = "donor's attributed money received by a WRO at depth >= 2 / own disbursements"
    return judge("wro_indirect_share", it, "")


def m_flexible(d: _Data, paid: list[Item], year: int) -> CardItem:
    known = [i for i in paid if i.earmarking is not None]
    flexible = [i for i in known if i.earmarking in (1, 2)]
    total, known_usd = _total(paid), _total(known)
    it = CardItem("flexible_share", "Unearmarked and softly earmarked share",
                  value=_share(_total(flexible), known_usd), numerator=_total(flexible),
                  denominator=known_usd, **_paid_base(paid, year),
                  coverage=_share(known_usd, total), coverage_numerator=known_usd,
                  coverage_denominator=total, coverage_unit="USD",
                  coverage_of="in disbursements that report their earmarking",
                  note=f"{len(known)} of {len(paid)} disbursements report their earmarking")
    return judge("flexible_share", it)


def m_traceability(d: _Data, paid: list[Item], year: int) -> CardItem:
    it = CardItem("traceability", benchmark("traceability").title, unit="flows",
                  denominator=Decimal(len(paid)), **_paid_base(paid, year))
    if not d.links:
        it.not_available = trace.NO_LINKS
        return judge("traceability", it)
    ids = {i.flow_id for i in paid}
    fwd = ids & d.forward
    back = {i for i in ids if i in d.backward} - fwd
    own = ids & d.own_only
    it.numerator = Decimal(len(fwd | back))
    it.value = _share(it.numerator, it.denominator)  # type: ignore[arg-type]
    it.note = (f"{len(fwd)} link to another activity themselves; {len(back)} more are linked "
               f"to by their receivers' reports ({sum(d.backward[i] for i in back)} links); "
               f"{len(own)} link only to their own activity (resolves by construction, "
               "traces nothing: not counted)")
    return judge("traceability", it)


def m_timeliness(d: _Data, paid: list[Item], year: int) -> CardItem:
    window = int(load("benchmarks")["benchmarks"]["timeliness"]["window_days"])
    dated = [i for i in paid if i.value_date and i.published]
    timely = [i for i in dated if (i.published - i.value_date).days <= window]  # type: ignore[operator]
    bases: dict[str, int] = defaultdict(int)
    for i in dated:
        bases[i.published_basis or ""] += 1
    it = CardItem("timeliness", f"Disbursements published within {window} days",
                  unit="flows", value=_share(Decimal(len(timely)), Decimal(len(dated))),
                  numerator=Decimal(len(timely)), denominator=Decimal(len(dated)),
                  **_paid_base(paid, year),
                  coverage=_share(Decimal(len(dated)), Decimal(len(paid))),
                  coverage_numerator=Decimal(len(dated)),
                  coverage_denominator=Decimal(len(paid)), coverage_unit="flows",
                  coverage_of="carry a publisher's own publication date")
    it.note = ("lag = the publisher's own date - value date (never the import date); dates: "
               + ("; ".join(f"{n} {b}" for b, n in sorted(bases.items())) or "none"))
    return judge("timeliness", it)


def m_stipulations(conn: Connection, d: _Data, who: str, year: int, card: Card) -> CardItem:
    results = check(conn, who, year) if who in d.stipulated else []
    card.stipulations = [r.as_dict() for r in results]
    judged = [r for r in results if r.met is not None]
    it = CardItem("stipulations", "Stipulations met", unit="stipulations",
                  numerator=Decimal(sum(1 for r in judged if r.met)),
                  denominator=Decimal(len(judged)),
                  base=f"stipulations registered for {year}", base_count=len(results),
                  coverage=_share(Decimal(len(judged)), Decimal(len(results))),
                  coverage_numerator=Decimal(len(judged)),
                  coverage_denominator=Decimal(len(results)), coverage_unit="stipulations",
                  coverage_of="could be checked against the attribution")
    it.value = _share(it.numerator, it.denominator)  # type: ignore[arg-type]
    if not results:
        it.not_available = "not available: no stipulations registered"
    elif not judged:
        it.not_available = results[0].not_available
    return judge("stipulations", it)


def m_received(conn: Connection, fund: str, year: int) -> CardItem:
    """What recipients report receiving from the fund (incoming funds and commitments
    whose provider resolves to it, issue 15): the fund's money as its recipients see it,
    however they name it (UNDP's donor code 11363, ``XM-DAC-41141``, a name alone).
    Not graded, never added to the fund's own figures."""
    f = m.Flow.__table__
    kinds = (FlowKind.INCOMING_FUNDS, FlowKind.INCOMING_COMMITMENT)
    rows = conn.execute(select(f.c.kind, f.c.amount_usd, f.c.reporting_org_ref).where(
        current(f), f.c.kind.in_(kinds), year_between(f.c.value_date, year),
        party_is("provider_org_id", [fund]),
        not_(party_is("reporter_org_id", [fund])))).all()
    funds = [r for r in rows if r.kind is FlowKind.INCOMING_FUNDS]
    usd = exact_sum(r.amount_usd for r in funds if r.amount_usd is not None)
    it = CardItem("received_from_fund",
                  "Funds recipients report receiving from this fund (not counted above)",
                  unit="USD", base_count=len(funds), base_usd=usd,
                  numerator=usd if funds else None,
                  base=f"incoming funds dated {year} whose provider is this fund")
    commitments = [r for r in rows if r.kind is FlowKind.INCOMING_COMMITMENT]
    reporters = sorted({r.reporting_org_ref or "?" for r in rows})
    it.note = (f"{len(funds)} incoming funds and {len(commitments)} incoming commitments "
               f"(USD {exact_sum(r.amount_usd for r in commitments if r.amount_usd is not None)}"
               f") reported by {', '.join(reporters)}" if rows else "none")
    it.status = NOT_GRADED
    return it


def m_others(d: _Data, who: str, year: int) -> CardItem:
    o = d.others.get((who, year))
    it = CardItem("reported_by_others",
                  "Disbursements others report with this organisation as provider "
                  "(not counted above)", unit="USD", base_count=o["count"] if o else 0,
                  base_usd=o["usd"] if o else Decimal(0), numerator=o["usd"] if o else None,
                  base=f"disbursements dated {year} reported by other organisations")
    if o:
        it.note = (f"{o['count']} disbursements reported by {', '.join(sorted(o['reporters']))}"
                   ": their own onward payments or their account of this organisation's "
                   "money, kept apart so nothing is counted twice")
    else:
        it.note = "none"
    it.status = NOT_GRADED
    return it


# --- cards ----------------------------------------------------------------------------

def _card(conn: Connection, d: _Data, who: str, year: int, method: str, kind: str) -> Card:
    paid = d.paid.get((who, year), [])
    card = Card(who, year, get_method(method).name, fingerprint(),
                api_filter(who, year, FlowKind.DISBURSEMENT), kind=kind)
    if kind == DONOR:
        card.items.append(m_pledge_fulfilment(d, who, year))
        gp, _ = m_gender(d, paid, year, "gender_principal_share", "principal", scope=True,
                         bkey="gender_principal_share")
        gf, _ = m_gender(d, paid, year, "gender_focused_share", "gender-focused",
                         scope=True, bkey="")
        card.items += [gp, gf, m_wro_direct(d, paid, year), m_wro_indirect(d, who, paid, year),
                       m_flexible(d, paid, year), m_traceability(d, paid, year),
                       m_timeliness(d, paid, year), m_stipulations(conn, d, who, year, card)]
        ps = [i for i in paid if d.cls[i.flow_id].in_scope]
        for mname in ("principal", "gender-focused"):
            card.figures[f"peace_and_security_{mname}"] = count(
                ps, get_method(mname), d.shares).as_dict()
        card.figures["peace_and_security_selected_method"] = count(
            ps, get_method(method), d.shares).as_dict()
        card.figures["all_disbursements_selected_method"] = count(
            paid, get_method(method), d.shares).as_dict()
    else:
        gp, fig = m_gender(d, paid, year, "gender_principal_share", "principal", scope=False,
                           bkey="gender_principal_share")
        card.items.append(gp)
        card.items.append(_own_target(conn, who, year, d, paid))
        card.items += [m_wro_direct(d, paid, year), m_traceability(d, paid, year),
                       m_timeliness(d, paid, year)]
        card.figures["allocations_principal"] = fig.as_dict()
        card.items.append(m_received(conn, who, year))
    card.items.append(m_others(d, who, year))
    card.figures["paid_usd"] = str(_total(paid))
    card.figures["paid_flows"] = len(paid)
    card.figures["paid_without_usd"] = sum(1 for i in paid if i.amount_usd is None)
    return card


def _own_target(conn: Connection, fund: str, year: int, d: _Data, paid: list[Item]) -> CardItem:
    from fundtrack.accounting.tables import FundTarget

    it, _ = m_gender(d, paid, year, "own_target", "principal", scope=False, bkey="")
    target = conn.execute(select(FundTarget.__table__).where(
        denotes(FundTarget.fund_ref, fund))).first()
    if target is None:
        it.not_available = "not available: no target registered for this fund"
        it.status, it.insufficient = NOT_AVAILABLE, None
        return it
    it.benchmark, it.benchmark_source = target.gender_principal_share, target.source
    if it.status == NOT_GRADED:
        it.status, it.grade = GRADED, grade(it.value, target.gender_principal_share)
    return it


def cards(conn: Connection, subjects: Iterable[str] | None, years: Iterable[int] | None,
          method: str = "principal", kind: str = DONOR) -> dict[tuple[str, int], Card]:
    """Cards of ``subjects`` (None: every organisation that reports its own money) for
    ``years`` (None: every year it has data), computed in one pass."""
    get_method(method)
    year_set = set(years) if years is not None else None
    subject_list = list(subjects) if subjects is not None else None
    org = subject_list[0] if subject_list is not None and len(subject_list) == 1 else None
    d = _load(conn, org, year_set)
    pairs: set[tuple[str, int]] = set(d.paid)
    for who, cs in d.promises.items():
        pairs |= {(who, c.year) for c in cs if c.year is not None}
    if subject_list is not None:
        if year_set is not None:
            pairs |= {(s, y) for s in subject_list for y in year_set}
        pairs = {(s, y) for s, y in pairs if s in subject_list}
    if year_set is not None:
        pairs = {(s, y) for s, y in pairs if y in year_set}
    return {(s, y): _card(conn, d, s, y, method, kind) for s, y in sorted(pairs)}


def donor_card(conn: Connection, donor: str, year: int, method: str = "principal") -> Card:
    """The report card of ``donor`` for ``year``; :class:`UnknownOrganisation` when nothing
    in the database names it."""
    require_known(conn, donor)
    return cards(conn, [donor], [year], method, DONOR)[(donor, year)]


def fund_scorecard(conn: Connection, fund: str, year: int) -> Card:
    """Share of a fund's allocations (its own disbursements) to gender-principal projects,
    against the 15% benchmark and against the fund's own registered target."""
    require_known(conn, fund)
    return cards(conn, [fund], [year], "principal", FUND)[(fund, year)]
