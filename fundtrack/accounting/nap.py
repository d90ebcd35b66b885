"""National Action Plans on UNSCR 1325: costed lines, the money linked to them, coverage.

What counts: **movements** (``movement``, the money trail's one row per piece of cash,
whoever reported it) of kind transfer, dated in the plan's period, that either of their
reports (the sender's disbursement, the receiver's incoming funds) places in the plan's
country (the flow's recipient country, else its activity's). A disbursement and the
receiver's report of the same money are one movement, counted once; a receiver's report
alone (the sender did not publish) counts too. Expenditure is not a transfer and is left
out. An onward transfer (an implementer passing money to a partner in the country) is a
movement of its own, but its money may already be counted: an organisation's onward
transfers count only for the part beyond what it received in the movements counted for
the plan (taken in date order, :func:`_not_yet_counted`), so money that passes two hands
inside the country is funded once; see docs/wps-data.md.

Which line: a hand link (``nap_link``, by the activity identifier of either report)
first, else the first line (in code order) whose rule matches either report
(:func:`line_matches`); otherwise the movement is reported as unlinked.
Coverage = funded / costed (USD), per line, pillar and plan; "not costed" when the plan
states no cost. Domestic budget lines are shown beside, never added to funded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select

from fundtrack.accounting.classify import CompiledRule, Features, _keyword_re
from fundtrack.accounting.items import Item, load_items
from fundtrack.accounting.wps import RULE_CODE_KEYS
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.money import SUM_CONTEXT, exact_sum

#: The rule that decides which line a movement funds, as people read it.
MATCHING = ("a hand link by activity identifier first; else the first line, in code order, "
            "with a DAC sector, sector range or donor code of either report (keywords, "
            "if any, must also appear in its title or description)")
COUNTING = ("movements of the money trail (transfers) in the plan's period that either "
            "report places in the country, each counted once however many reports it has; "
            "an organisation's onward transfers count only beyond what it received in those "
            "movements (money passing two hands in the country is counted once)")


def _not_yet_counted(movements: list[CountryMovement]) -> dict[int, Decimal]:
    """USD of each movement not already counted as money its sender received.

    Per sender, what it received in these movements is a pool its onward transfers use up
    first (movements in date order, then id); only the rest is new money. A donor's
    300,000 to an agency and the agency's 120,000 + 180,000 onward: 300,000 counted.
    """
    pool: dict[str, Decimal] = defaultdict(Decimal)
    for mvt in movements:
        if mvt.amount_usd is not None:
            pool[mvt.dst_org] = SUM_CONTEXT.add(pool[mvt.dst_org], mvt.amount_usd)
    out: dict[int, Decimal] = {}
    for mvt in sorted(movements, key=lambda x: (x.value_date is None, x.value_date, x.id)):
        usd = mvt.amount_usd or Decimal(0)
        used = min(usd, pool[mvt.src_org]) if usd > 0 else Decimal(0)
        pool[mvt.src_org] = SUM_CONTEXT.subtract(pool[mvt.src_org], used)
        out[mvt.id] = SUM_CONTEXT.subtract(usd, used)
    return out


def line_matcher(rule: dict[str, Any] | None) -> Callable[[Item], bool]:
    """A line's rule compiled once: whether it matches one report. The one place NAP lines
    meet flows (a plan's coverage asks every line of every movement's reports).

    Code-gated: a sector code, a sector range or a donor's own code must match (the
    classifier's matcher does that part); keywords only narrow such a match. A rule with
    keywords alone (stored before this rule existed) matches nothing.
    """
    codes = {k: rule[k] for k in RULE_CODE_KEYS if rule.get(k)} if rule else {}
    if not codes:
        return lambda it: False
    compiled = CompiledRule(codes)
    rx = _keyword_re(tuple((rule or {}).get("keywords", [])))

    def matches(it: Item) -> bool:
        if not compiled.matches(Features.of(it)):
            return False
        return rx is None or bool(it.text and rx.search(it.text))
    return matches


def line_matches(rule: dict[str, Any] | None, it: Item) -> bool:
    """Whether a line's rule matches one report (:func:`line_matcher`, for one call)."""
    return line_matcher(rule)(it)


@dataclass
class LineCoverage:
    id: int
    code: str
    pillar: str
    title: str | None
    costed_usd: Decimal | None
    costed_amount: Decimal | None = None
    costed_currency: str | None = None
    rule: dict[str, Any] | None = None
    source: str | None = None
    funded_usd: Decimal = Decimal(0)
    flows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def coverage(self) -> Decimal | None:
        return self.funded_usd / self.costed_usd if self.costed_usd else None


@dataclass
class PlanCoverage:
    id: int
    country: str
    title: str
    period_start: Any
    period_end: Any
    source: str | None
    lines: list[LineCoverage]
    code: str | None = None
    unlinked_usd: Decimal = Decimal(0)
    unlinked_flows: int = 0
    movements: int = 0
    reports: int = 0
    movements_without_usd: int = 0
    #: Onward transfers' USD not counted again (the sender's receipts already counted it).
    onward_usd: Decimal = Decimal(0)
    onward_movements: int = 0
    budget_lines: list[dict[str, Any]] = field(default_factory=list)
    funders: dict[str, Decimal] = field(default_factory=dict)

    @property
    def costed_usd(self) -> Decimal:
        return exact_sum(ln.costed_usd for ln in self.lines)

    @property
    def funded_usd(self) -> Decimal:
        return exact_sum(ln.funded_usd for ln in self.lines)

    @property
    def coverage(self) -> Decimal | None:
        """funded / costed; None without a cost or without any reported movement."""
        if not self.costed_usd or not self.movements:
            return None
        return self.funded_usd / self.costed_usd

    @property
    def coverage_note(self) -> str | None:
        """Why there is no coverage figure ("insufficient data ..."), if there is none."""
        if not self.costed_usd:
            return "insufficient data: the plan states no cost"
        if not self.movements:
            return (f"insufficient data: no movement of money to {self.country} is reported "
                    f"between {self.period_start} and {self.period_end}")
        return None

    @property
    def domestic_budget_usd(self) -> Decimal:
        return exact_sum(b["amount_usd"] for b in self.budget_lines)

    def pillars(self) -> dict[str, dict[str, Decimal | None]]:
        out: dict[str, dict[str, Any]] = {}
        for ln in self.lines:
            p = out.setdefault(ln.pillar, {"costed_usd": Decimal(0), "funded_usd": Decimal(0)})
            p["costed_usd"] = SUM_CONTEXT.add(p["costed_usd"], ln.costed_usd or Decimal(0))
            p["funded_usd"] = SUM_CONTEXT.add(p["funded_usd"], ln.funded_usd)
        for p in out.values():
            p["coverage"] = p["funded_usd"] / p["costed_usd"] if p["costed_usd"] else None
        return out

    def as_dict(self) -> dict[str, Any]:
        s = lambda v: None if v is None else str(v)  # noqa: E731
        return {
            "id": self.id, "code": self.code, "country": self.country, "title": self.title,
            "period_start": str(self.period_start), "period_end": str(self.period_end),
            "source": self.source, "costed_usd": s(self.costed_usd),
            "funded_usd": s(self.funded_usd), "coverage": s(self.coverage),
            "coverage_note": self.coverage_note, "unlinked_usd": s(self.unlinked_usd),
            "unlinked_flows": self.unlinked_flows,
            "movements": self.movements, "reports": self.reports,
            "onward_usd": str(self.onward_usd), "onward_movements": self.onward_movements,
            "domestic_budget_usd": s(self.domestic_budget_usd),
            "pillars": {k: {kk: s(vv) for kk, vv in v.items()} for k, v in self.pillars().items()},
            "lines": [{"code": ln.code, "pillar": ln.pillar, "title": ln.title,
                       "costed_usd": s(ln.costed_usd), "funded_usd": s(ln.funded_usd),
                       "coverage": s(ln.coverage), "flows": ln.flows} for ln in self.lines],
        }


@dataclass
class CountryMovement:
    """One movement placed in a country, with the reports that place it there."""

    id: int
    amount_usd: Decimal | None
    value_date: Any
    src_org: str
    dst_org: str
    reports: list[Item]


def country_movements(conn: Connection, country: str, start: Any = None, end: Any = None,
                      ) -> list[CountryMovement]:
    """Transfers (movements) dated in [start, end] that a report places in ``country``."""
    from fundtrack.derived.trail.tables import Movement

    mv, f, ac = Movement.__table__, m.Flow.__table__, m.ActivityCountry.__table__
    in_country = select(f.c.id).where(current(f), or_(
        f.c.recipient_country == country,
        and_(f.c.recipient_country.is_(None), exists(select(ac.c.id).where(
            ac.c.activity_id == f.c.activity_id, ac.c.code == country)))))
    q = select(mv.c.id, mv.c.flow_id, mv.c.mirror_flow_id, mv.c.amount_usd, mv.c.value_date,
               mv.c.src_org, mv.c.dst_org).where(
        mv.c.kind == "transfer",
        or_(mv.c.flow_id.in_(in_country), mv.c.mirror_flow_id.in_(in_country)))
    if start is not None:
        q = q.where(mv.c.value_date >= start)
    if end is not None:
        q = q.where(mv.c.value_date <= end)
    rows = list(conn.execute(q.order_by(mv.c.id)))
    ids = {i for r in rows for i in (r.flow_id, r.mirror_flow_id) if i is not None}
    items: dict[int, Item] = {}
    id_list = sorted(ids)
    for i in range(0, len(id_list), 5000):
        for it in load_items(conn, f.c.id.in_(id_list[i:i + 5000])):
            items[it.flow_id] = it
    out = []
    for r in rows:
        reports = [items[i] for i in (r.flow_id, r.mirror_flow_id) if i in items]
        if any(country in it.countries for it in reports):
            out.append(CountryMovement(r.id, r.amount_usd, r.value_date, r.src_org, r.dst_org,
                                       reports))
    return out


def budget_lines(conn: Connection, nap_id: int) -> list[dict[str, Any]]:
    from fundtrack.accounting.tables import NapBudgetLine as B

    return [dict(r) for r in conn.execute(select(B.__table__).where(B.nap_id == nap_id)
                                          .order_by(B.year, B.code)).mappings()]


def coverage(conn: Connection, nap_id: int | None = None, code: str | None = None,
             country: str | None = None) -> list[PlanCoverage]:
    from fundtrack.accounting.tables import NapLine, NapLink
    from fundtrack.accounting.tables import NationalActionPlan as P

    q = select(P.__table__).order_by(P.country, P.period_start, P.id)
    if nap_id is not None:
        q = q.where(P.id == nap_id)
    if code is not None:
        q = q.where(P.code == code)
    if country is not None:
        q = q.where(P.country == country)
    out = []
    for plan in conn.execute(q):
        lines = list(conn.execute(select(NapLine.__table__).where(NapLine.nap_id == plan.id)
                                  .order_by(NapLine.code, NapLine.id)))
        cov = {ln.id: LineCoverage(ln.id, ln.code, ln.pillar, ln.title, ln.costed_usd,
                                   ln.costed_amount, ln.costed_currency, ln.rule, ln.source)
               for ln in lines}
        hand = {r.activity_identifier: r.nap_line_id for r in conn.execute(
            select(NapLink.activity_identifier, NapLink.nap_line_id)
            .where(NapLink.nap_line_id.in_(list(cov) or [-1])).order_by(NapLink.id))}
        pc = PlanCoverage(plan.id, plan.country, plan.title, plan.period_start,
                          plan.period_end, plan.source, list(cov.values()), code=plan.code,
                          budget_lines=budget_lines(conn, plan.id))
        funders: dict[str, Decimal] = defaultdict(Decimal)
        movements = country_movements(conn, plan.country, plan.period_start, plan.period_end)
        new_money = _not_yet_counted(movements)
        matchers = [(ln.id, line_matcher(ln.rule)) for ln in lines]
        for mvt in movements:
            pc.movements += 1
            pc.reports += len(mvt.reports)
            line_id, how = next(((hand[it.activity_identifier], "hand") for it in mvt.reports
                                 if it.activity_identifier in hand), (None, "rule"))
            if line_id is None:
                line_id = next((lid for lid, match in matchers
                                if any(match(it) for it in mvt.reports)), None)
            if mvt.amount_usd is None:
                pc.movements_without_usd += 1
            usd = new_money[mvt.id]
            if usd != (mvt.amount_usd or Decimal(0)):
                pc.onward_usd = SUM_CONTEXT.add(pc.onward_usd, SUM_CONTEXT.subtract(
                    mvt.amount_usd or Decimal(0), usd))
                pc.onward_movements += 1
            if line_id is None:
                pc.unlinked_usd = SUM_CONTEXT.add(pc.unlinked_usd, usd)
                pc.unlinked_flows += 1
                continue
            lc = cov[line_id]
            lc.funded_usd = SUM_CONTEXT.add(lc.funded_usd, usd)
            if usd or mvt.amount_usd is None:  # an onward transfer counted already: not a funder
                funders[mvt.src_org] = SUM_CONTEXT.add(funders[mvt.src_org], usd)
            lc.flows.append({"movement_id": mvt.id, "flow_id": mvt.reports[0].flow_id,
                             "reports": [it.flow_id for it in mvt.reports],
                             "activity": mvt.reports[0].activity_identifier,
                             "provider": mvt.src_org, "receiver": mvt.dst_org,
                             "amount_usd": None if mvt.amount_usd is None else str(mvt.amount_usd),
                             "counted_usd": str(usd), "linked_by": how})
        pc.funders = dict(sorted(funders.items(), key=lambda kv: (-kv[1], kv[0])))
        out.append(pc)
    return out
