"""National Action Plans on UNSCR 1325: costed lines, flows linked to them, coverage.

A disbursement counts towards a plan when it goes to the plan's country and is dated in
its period. It is linked to one line: a hand link (``nap_link``, by activity identifier)
first, else the first line (in id order) whose rule matches (same matching as
``rules.toml``: sectors, sector_ranges, keywords, tags). Coverage = funded / costed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, select

from fundtrack.accounting.classify import _rule_matches
from fundtrack.accounting.items import Item, load_items
from fundtrack.ledger import tables as m
from fundtrack.money import SUM_CONTEXT, exact_sum
from fundtrack.records import FlowKind


@dataclass
class LineCoverage:
    id: int
    code: str
    pillar: str
    title: str | None
    costed_usd: Decimal | None
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
    unlinked_usd: Decimal = Decimal(0)
    unlinked_flows: int = 0

    @property
    def costed_usd(self) -> Decimal:
        return exact_sum(ln.costed_usd for ln in self.lines)

    @property
    def funded_usd(self) -> Decimal:
        return exact_sum(ln.funded_usd for ln in self.lines)

    @property
    def coverage(self) -> Decimal | None:
        return self.funded_usd / self.costed_usd if self.costed_usd else None

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
            "id": self.id, "country": self.country, "title": self.title,
            "period_start": str(self.period_start), "period_end": str(self.period_end),
            "source": self.source, "costed_usd": s(self.costed_usd),
            "funded_usd": s(self.funded_usd), "coverage": s(self.coverage),
            "unlinked_usd": s(self.unlinked_usd), "unlinked_flows": self.unlinked_flows,
            "pillars": {k: {kk: s(vv) for kk, vv in v.items()} for k, v in self.pillars().items()},
            "lines": [{"code": ln.code, "pillar": ln.pillar, "title": ln.title,
                       "costed_usd": s(ln.costed_usd), "funded_usd": s(ln.funded_usd),
                       "coverage": s(ln.coverage), "flows": ln.flows} for ln in self.lines],
        }


def _flows(conn: Connection, country: str, start: Any, end: Any) -> list[Item]:
    f = m.Flow.__table__.c
    items = load_items(conn, and_(f.kind == FlowKind.DISBURSEMENT, f.value_date >= start,
                                  f.value_date <= end))
    return [it for it in items if country in it.countries]


def coverage(conn: Connection, nap_id: int | None = None) -> list[PlanCoverage]:
    from fundtrack.accounting.tables import NapLine, NapLink, NationalActionPlan

    q = select(NationalActionPlan.__table__).order_by(NationalActionPlan.id)
    if nap_id is not None:
        q = q.where(NationalActionPlan.id == nap_id)
    out = []
    for plan in conn.execute(q):
        lines = list(conn.execute(select(NapLine.__table__).where(NapLine.nap_id == plan.id)
                                  .order_by(NapLine.id)))
        cov = {ln.id: LineCoverage(ln.id, ln.code, ln.pillar, ln.title, ln.costed_usd)
               for ln in lines}
        hand = {r.activity_identifier: r.nap_line_id for r in conn.execute(
            select(NapLink.activity_identifier, NapLink.nap_line_id)
            .where(NapLink.nap_line_id.in_(list(cov) or [-1])).order_by(NapLink.id))}
        pc = PlanCoverage(plan.id, plan.country, plan.title, plan.period_start,
                          plan.period_end, plan.source, list(cov.values()))
        for it in _flows(conn, plan.country, plan.period_start, plan.period_end):
            line_id, how = hand.get(it.activity_identifier or ""), "hand"
            if line_id is None:
                how = "rule"
                line_id = next((ln.id for ln in lines if ln.rule and _rule_matches(ln.rule, it)),
                               None)
            usd = it.amount_usd or Decimal(0)
            if line_id is None:
                pc.unlinked_usd = SUM_CONTEXT.add(pc.unlinked_usd, usd)
                pc.unlinked_flows += 1
                continue
            lc = cov[line_id]
            lc.funded_usd = SUM_CONTEXT.add(lc.funded_usd, usd)
            lc.flows.append({"flow_id": it.flow_id, "activity": it.activity_identifier,
                             "amount_usd": str(it.amount_usd), "linked_by": how})
        out.append(pc)
    return out
