"""1325 accounting over GraphQL: report cards, fund scorecards, NAP coverage, gender summaries.

Every figure carries the name of the counting method that produced it. The computing is
in :mod:`fundtrack.accounting`; this module only shapes it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from fundtrack.accounting import league as leaguemod
from fundtrack.accounting import nap as napmod
from fundtrack.accounting import subject as subj
from fundtrack.accounting.items import load_items
from fundtrack.accounting.methods import count, get_method, methods, reported_shares
from fundtrack.accounting.reportcard import Card, donor_card, fund_scorecard
from fundtrack.api import filters as flt
from fundtrack.money import SUM_CONTEXT


@strawberry.type(description="A named way of counting 1325 money, with its source.")
class CountingMethod:
    name: str
    title: str
    source: str
    weights: str = strawberry.field(description="Weight per common marker value, as JSON.")


@strawberry.type(description="One line of a card: value, the base and coverage it rests on, "
                              "benchmark and grade (only when the thresholds are passed).")
class CardItem:
    key: str
    title: str
    value: Decimal | None = strawberry.field(description="A share 0..1 (null if not available).")
    numerator: Decimal | None
    denominator: Decimal | None
    unit: str
    status: str = strawberry.field(
        description="graded | insufficient-data (base or coverage below the thresholds: no "
                    "grade, see `insufficient`) | not-available | not-graded (no benchmark)")
    base: str = strawberry.field(description="What the measure is computed over.")
    base_count: int | None = strawberry.field(description="Items (flows, commitments) in the base.")
    base_usd: Decimal | None = strawberry.field(description="USD of the base.")
    coverage: Decimal | None = strawberry.field(
        description="Share of the base the measure can judge (null: all of it).")
    coverage_numerator: Decimal | None
    coverage_denominator: Decimal | None
    coverage_unit: str | None
    coverage_of: str | None = strawberry.field(description="What the coverage counts.")
    min_count: int | None = strawberry.field(description="Threshold: items the base needs.")
    min_coverage: Decimal | None = strawberry.field(description="Threshold: coverage needed.")
    insufficient: str | None = strawberry.field(
        description="Why there is no grade, with the numbers.")
    benchmark: Decimal | None
    benchmark_source: str | None
    grade: str | None
    method: str | None = strawberry.field(description="Counting method of this figure, if any.")
    not_available: str | None = strawberry.field(description="Why there is no value.")
    note: str | None


@strawberry.type(description="A donor's condition on its money and whether the trace meets it.")
class StipulationCheck:
    id: int | None
    donor_ref: str
    recipient_ref: str
    year: int | None
    kind: str
    target: str | None
    min_share: Decimal
    traced_usd: Decimal | None
    qualifying_usd: Decimal | None
    share: Decimal | None
    met: bool | None
    margin: Decimal | None
    margin_usd: Decimal | None
    not_available: str | None


@strawberry.type(description="A report card (donor) or scorecard (fund) for one year.")
class ReportCard:
    subject: str
    name: str | None = strawberry.field(description="The subject's name, where known.")
    kind: str = strawberry.field(description="donor | fund")
    year: int
    method: str = strawberry.field(description="The counting method selected for this card.")
    rules_fingerprint: str = strawberry.field(
        description="SHA-256 prefix of the rule and benchmark files used: cite it.")
    flow_filter: str = strawberry.field(
        description="The FlowWhere (JSON) of the disbursements counted: pass it to "
                    "flowsAggregate to reconcile.")
    items: list[CardItem]
    stipulations: list[StipulationCheck]
    figures: str = strawberry.field(description="Supporting figures by method, as JSON.")


@strawberry.type(description="Flows with one gender marker value, as reported and on the common scale.")
class GenderGroup:
    common: str = strawberry.field(description="principal | significant | not-targeted | not-screened")
    scale: str | None = strawberry.field(description="dac | gem | gam | pbf | iom | adb; null: no marker")
    score: str | None = strawberry.field(description="The score exactly as reported.")
    flows: int
    activities: int
    sum_usd: Decimal
    flows_without_usd: int


@strawberry.type(description="1325 money among the flows matched, by one counting method.")
class GenderSummary:
    method: str
    method_title: str
    method_source: str
    amount_usd: Decimal
    base_usd: Decimal
    share: Decimal | None
    flows: int
    flows_without_usd: int
    flows_without_share: int
    groups: list[GenderGroup]


@strawberry.type
class PillarCoverage:
    pillar: str
    costed_usd: Decimal
    funded_usd: Decimal
    coverage: Decimal | None


@strawberry.type
class NapLineCoverage:
    code: str
    pillar: str
    title: str | None
    costed_usd: Decimal | None = strawberry.field(
        description="The cost in USD that coverage divides by (null: not costed).")
    costed_amount: Decimal | None = strawberry.field(
        description="The cost as the plan states it, in costedCurrency.")
    costed_currency: str | None
    rule: strawberry.scalars.JSON | None = strawberry.field(
        description="How movements are linked to the line: sectors, sector_ranges, tags "
                    "(keywords only narrow them).")
    source: str | None
    funded_usd: Decimal
    coverage: Decimal | None
    flows: int = strawberry.field(description="Movements linked to the line (each once).")


@strawberry.type(description="A domestic budget line: the government's own allocation.")
class NapBudgetLine:
    code: str
    year: int
    institution: str | None
    line_code: str | None
    amount: Decimal
    currency: str
    amount_usd: Decimal | None
    source: str | None


@strawberry.type(description="Who sent money to a plan's lines (movements, each once).")
class Funder:
    ref: str
    usd: Decimal


@strawberry.type(description="A National Action Plan on UNSCR 1325 and how much of it is funded.")
class NationalActionPlan:
    id: int
    code: str | None
    country: str
    title: str
    period_start: date
    period_end: date
    source: str | None
    costed_usd: Decimal
    funded_usd: Decimal = strawberry.field(
        description="Movements linked to a line (each counted once), USD.")
    coverage: Decimal | None = strawberry.field(
        description="funded / costed (null: see coverageNote)")
    coverage_note: str | None = strawberry.field(
        description='Why there is no coverage: "insufficient data: ..." (no cost stated, '
                    "or no movement reported in the country and period).")
    unlinked_usd: Decimal = strawberry.field(
        description="Movements to the country in the period linked to no line.")
    unlinked_movements: int
    movements: int = strawberry.field(
        description="Movements to the country in the period (each counted once).")
    reports: int = strawberry.field(
        description="Reports of those movements (a disbursement and the receiver's "
                    "incoming funds are two reports of one movement).")
    onward_usd: Decimal = strawberry.field(
        description="Onward transfers' USD not counted again: an organisation passing on "
                    "money it received in the counted movements (counted once, there).")
    onward_movements: int
    movements_without_usd: int
    domestic_budget_usd: Decimal = strawberry.field(
        description="Sum of the domestic budget lines in USD (shown beside, never added "
                    "to fundedUsd).")
    counting: str = strawberry.field(description="What is counted, as a sentence.")
    matching: str = strawberry.field(description="How movements find their line.")
    pillars: list[PillarCoverage]
    lines: list[NapLineCoverage]
    budget_lines: list[NapBudgetLine]
    funders: list[Funder]


def _item(i: Any) -> CardItem:
    return CardItem(**dict(i.__dict__.items()))


def _card(card: Card, name: str | None = None) -> ReportCard:
    return ReportCard(
        subject=card.subject, name=name, kind=card.kind, year=card.year, method=card.method,
        rules_fingerprint=card.rules,
        flow_filter=json.dumps(card.filter), figures=json.dumps(card.figures, default=str),
        items=[_item(i) for i in card.items],
        stipulations=[StipulationCheck(**{k: (Decimal(v) if k in (
            "min_share", "traced_usd", "qualifying_usd", "share", "margin", "margin_usd")
            and v is not None else v) for k, v in s.items() if k != "source"})
            for s in card.stipulations])


#: Years a report card can be about: from the first reporting standards to far ahead.
YEARS = range(1950, 2101)


def _year(year: int) -> None:
    if year not in YEARS:
        raise GraphQLError(f"year {year} is out of range ({YEARS.start}-{YEARS.stop - 1})")


def _method(name: str) -> str:
    if name not in methods():
        raise GraphQLError(f"unknown counting method {name!r}; known: {', '.join(methods())}")
    return name


def gender_summary(conn: Any, where_clause: Any, method: str) -> GenderSummary:
    meth = get_method(method)
    items = load_items(conn, where_clause)
    from fundtrack.accounting.classify import apply_gender_overrides, load_overrides

    apply_gender_overrides(items, load_overrides(conn))
    fig = count(items, meth, reported_shares(conn))
    groups: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {"flows": 0, "acts": set(), "sum": Decimal(0), "nousd": 0})
    for it in items:
        g = groups[(it.marker.common, it.marker.scale, it.marker.score)]
        g["flows"] += 1
        if it.activity_id:
            g["acts"].add(it.activity_id)
        if it.amount_usd is None:
            g["nousd"] += 1
        else:
            g["sum"] = SUM_CONTEXT.add(g["sum"], it.amount_usd)
    return GenderSummary(
        method=meth.name, method_title=meth.title, method_source=meth.source,
        amount_usd=fig.amount_usd, base_usd=fig.base_usd, share=fig.share, flows=fig.flows,
        flows_without_usd=fig.flows_without_usd, flows_without_share=fig.flows_without_share,
        groups=[GenderGroup(common=k[0], scale=k[1], score=k[2], flows=v["flows"],
                            activities=len(v["acts"]), sum_usd=v["sum"],
                            flows_without_usd=v["nousd"])
                for k, v in sorted(groups.items(), key=lambda kv: tuple(x or "" for x in kv[0]))])


def _subject_card(conn: Any, ref: str, year: int | None, method: str, kind: str
                  ) -> ReportCard:
    try:
        subj.require_known(conn, ref)
    except subj.UnknownOrganisation as exc:
        raise GraphQLError(str(exc), extensions={"code": "NOT_FOUND"}) from None
    if year is None:
        year = subj.latest_year(conn, ref)
    card = (donor_card(conn, ref, year, method) if kind == "donor"
            else fund_scorecard(conn, ref, year))
    return _card(card, leaguemod.names(conn, {ref}).get(ref))


@strawberry.enum(description="Which league table: donors, or pooled funds.")
class LeagueKind(Enum):
    DONOR = "donor"
    FUND = "fund"


@strawberry.type(description="One year of a subject's measure, for the trend.")
class LeaguePoint:
    year: int
    value: Decimal | None
    grade: str | None
    status: str
    rank: int | None = strawberry.field(description="Rank in that year's table (null: not graded).")
    coverage: Decimal | None


@strawberry.type(description="A subject's line in a league table.")
class LeagueRow:
    rank: int | None = strawberry.field(
        description="1 = best; equal values share a rank; null when not graded (insufficient "
                    "data or not available: see item.status and item.insufficient).")
    subject: str
    name: str | None
    item: CardItem = strawberry.field(description="The card line: value, base, coverage, grade.")
    change: Decimal | None = strawberry.field(
        description="Value minus the value of the latest earlier graded year (both graded).")
    change_from: int | None = strawberry.field(description="The year `change` compares with.")
    trend: list[LeaguePoint]


@strawberry.type(description="A league table: one benchmark, one year, every subject with data.")
class LeagueTable:
    kind: str
    measure: str
    title: str
    year: int | None
    years: list[int] = strawberry.field(description="Years with data, latest first.")
    measures: list[str] = strawberry.field(description="The measures this kind of table ranks.")
    method: str
    rules_fingerprint: str
    min_count: int
    min_coverage: Decimal
    benchmark: Decimal | None
    benchmark_source: str | None
    rows: list[LeagueRow]


def _league(t: leaguemod.League) -> LeagueTable:
    return LeagueTable(
        kind=t.kind, measure=t.measure, title=t.title, year=t.year, years=t.years,
        measures=list(leaguemod.MEASURES[t.kind]), method=t.method, rules_fingerprint=t.rules,
        min_count=t.min_count, min_coverage=t.min_coverage, benchmark=t.benchmark,
        benchmark_source=t.benchmark_source,
        rows=[LeagueRow(rank=r.rank, subject=r.subject, name=r.name, item=_item(r.item),
                        change=r.change, change_from=r.change_from,
                        trend=[LeaguePoint(year=p.year, value=p.value, grade=p.grade,
                                           status=p.status, rank=p.rank, coverage=p.coverage)
                               for p in r.trend]) for r in t.rows])


def _nap(p: napmod.PlanCoverage) -> NationalActionPlan:
    return NationalActionPlan(
        id=p.id, code=p.code, country=p.country, title=p.title, period_start=p.period_start,
        period_end=p.period_end, source=p.source, costed_usd=p.costed_usd,
        funded_usd=p.funded_usd, coverage=p.coverage, coverage_note=p.coverage_note,
        unlinked_usd=p.unlinked_usd, unlinked_movements=p.unlinked_flows, movements=p.movements,
        reports=p.reports, onward_usd=p.onward_usd, onward_movements=p.onward_movements,
        movements_without_usd=p.movements_without_usd,
        domestic_budget_usd=p.domestic_budget_usd, counting=napmod.COUNTING,
        matching=napmod.MATCHING,
        pillars=[PillarCoverage(pillar=k, **v) for k, v in p.pillars().items()],  # type: ignore[arg-type]
        lines=[NapLineCoverage(code=ln.code, pillar=ln.pillar, title=ln.title,
                               costed_usd=ln.costed_usd, costed_amount=ln.costed_amount,
                               costed_currency=ln.costed_currency, rule=cast(Any, ln.rule),
                               source=ln.source, funded_usd=ln.funded_usd,
                               coverage=ln.coverage, flows=len(ln.flows)) for ln in p.lines],
        budget_lines=[NapBudgetLine(code=b["code"], year=b["year"], institution=b["institution"],
                                    line_code=b["nap_line_code"], amount=b["amount"],
                                    currency=b["currency"], amount_usd=b["amount_usd"],
                                    source=b["source"]) for b in p.budget_lines],
        funders=[Funder(ref=k, usd=v) for k, v in p.funders.items()])


@strawberry.type
class AccountingQuery:
    @strawberry.field(description="The counting methods fundtrack knows, with their sources.")
    def counting_methods(self) -> list[CountingMethod]:
        return [CountingMethod(name=m.name, title=m.title, source=m.source,
                               weights=json.dumps({k: str(v) for k, v in m.weights.items()}))
                for m in methods().values()]

    @strawberry.field(description="A donor's 1325 report card for a calendar year (default: "
                                  "the latest year the donor reports its own money). Null, with "
                                  "an error saying so, when no organisation has this reference.")
    async def report_card(self, info: Info, donor: str, year: int | None = None,
                          method: str = "principal") -> ReportCard | None:
        _method(method)
        if year is not None:
            _year(year)
        return await info.context.db(lambda c: _subject_card(c, donor, year, method, "donor"))

    @strawberry.field(description="A pooled fund's gender scorecard for a calendar year "
                                  "(default: the latest year with data). Null, with an error, "
                                  "when no organisation has this reference.")
    async def fund_scorecard(self, info: Info, fund: str, year: int | None = None,
                             ) -> ReportCard | None:
        if year is not None:
            _year(year)
        return await info.context.db(lambda c: _subject_card(c, fund, year, "principal", "fund"))

    @strawberry.field(description="Donors or pooled funds ranked on one benchmark in one year "
                                  "(default: the latest year in which someone is graded), "
                                  "coverage beside every rank, each row with its trend over "
                                  "the years. CSV: /league.csv.")
    async def league_table(self, info: Info, measure: str, kind: LeagueKind = LeagueKind.DONOR,
                           year: int | None = None, method: str = "principal") -> LeagueTable:
        _method(method)
        if year is not None:
            _year(year)
        k = kind.value
        if measure not in leaguemod.MEASURES[k]:
            raise GraphQLError(f"unknown measure {measure!r} for {k}s; known: "
                               f"{', '.join(leaguemod.MEASURES[k])}")
        t = await info.context.db(lambda c: leaguemod.league(c, k, measure, year, method))
        return _league(t)

    @strawberry.field(description="National Action Plans with funded / costed coverage.")
    async def national_action_plans(self, info: Info, country: str | None = None,
                                    ) -> list[NationalActionPlan]:
        plans = await info.context.db(lambda c: napmod.coverage(
            c, country=country.upper() if country else None))
        return [_nap(p) for p in plans]

    @strawberry.field(description="One National Action Plan by its code (null if none).")
    async def national_action_plan(self, info: Info, code: str) -> NationalActionPlan | None:
        plans = await info.context.db(lambda c: napmod.coverage(c, code=code))
        return _nap(plans[0]) if plans else None

    @strawberry.field(description="Gender marker summary of the flows matched, by a method.")
    async def gender_summary(self, info: Info, where: flt.FlowWhere | None = None,
                             method: str = "gender-focused") -> GenderSummary:
        _method(method)
        clause = flt.flow_where(where)
        return await info.context.db(lambda c: gender_summary(c, clause, method))
