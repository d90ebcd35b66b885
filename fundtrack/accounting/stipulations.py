"""Stipulations: conditions a donor put on its money, checked against the attribution.

A stipulation says: of the donor's money leaving ``recipient`` (a pooled fund, an agency)
in ``year``, at least ``min_share`` must go to gender-principal projects / women's rights
organisations / a pillar / a country. The attribution (follow-the-money) says which parts
of each outflow are the donor's; we classify those outflows and compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, or_, select

from fundtrack.accounting import trail_evidence as trace
from fundtrack.accounting.classify import Classification, classify_all
from fundtrack.accounting.items import Item
from fundtrack.accounting.markers import PRINCIPAL
from fundtrack.accounting.wro import reaches_wro, wro_refs
from fundtrack.money import SUM_CONTEXT

KINDS = ("gender-principal", "wro", "pillar", "country")


@dataclass
class StipulationResult:
    id: int | None
    donor_ref: str
    recipient_ref: str
    year: int | None
    kind: str
    target: str | None
    min_share: Decimal
    traced_usd: Decimal | None = None
    qualifying_usd: Decimal | None = None
    share: Decimal | None = None
    met: bool | None = None
    margin: Decimal | None = None        # share - min_share
    margin_usd: Decimal | None = None    # qualifying - min_share * traced
    not_available: str | None = None
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def qualifies(kind: str, target: str | None, it: Item, c: Classification,
              wros: set[str]) -> bool:
    if kind == "gender-principal":
        return it.marker.common == PRINCIPAL
    if kind == "wro":
        return reaches_wro(it, wros) is not None
    if kind == "pillar":
        return target in c.pillars
    if kind == "country":
        return bool(target) and target in it.countries
    raise ValueError(f"unknown stipulation kind {kind!r}")


def evaluate(res: StipulationResult, parts: list[tuple[Decimal | None, Item]],
             test: Callable[[Item], bool]) -> StipulationResult:
    """Fill ``res`` from the donor's attributed parts; exact decimals."""
    traced = qualifying = Decimal(0)
    for usd, it in parts:
        if usd is None:
            continue
        traced = SUM_CONTEXT.add(traced, usd)
        if test(it):
            qualifying = SUM_CONTEXT.add(qualifying, usd)
    if not traced:
        res.not_available = ("not available: none of the donor's money is traced out of "
                             f"{res.recipient_ref}" + (f" in {res.year}" if res.year else ""))
        return res
    res.traced_usd, res.qualifying_usd = traced, qualifying
    res.share = qualifying / traced
    res.met = res.share >= res.min_share
    res.margin = res.share - res.min_share
    res.margin_usd = qualifying - SUM_CONTEXT.multiply(res.min_share, traced)
    return res


def check(conn: Connection, donor: str | None = None, year: int | None = None,
          ) -> list[StipulationResult]:
    """Every stipulation (of ``donor``, applying to ``year``) with whether it was met."""
    from fundtrack.accounting.tables import Stipulation as S

    q = select(S.__table__).order_by(S.id)
    if donor is not None:
        q = q.where(S.donor_ref == donor)
    if year is not None:
        q = q.where(or_(S.year == year, S.year.is_(None)))
    stips = list(conn.execute(q))
    out = []
    available = trace.attribution_available(conn) if stips else False
    wros = wro_refs(conn) if stips else set()
    for s in stips:
        res = StipulationResult(s.id, s.donor_ref, s.recipient_ref, s.year, s.kind, s.target,
                                s.min_share, source=s.source)
        if not available:
            res.not_available = trace.NO_ATTRIBUTION
            out.append(res)
            continue
        parts = trace.donor_parts(conn, s.donor_ref, src_org=s.recipient_ref,
                                  year=s.year if s.year is not None else year)
        cls = classify_all(conn, [it for _, it in parts])
        out.append(evaluate(res, parts, lambda it, s=s, cls=cls: qualifies(
            s.kind, s.target, it, cls[it.flow_id], wros)))
    return out
