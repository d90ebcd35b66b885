"""One-page fact sheets: a country (money placed there, counted once, and its plans) and
a National Action Plan (its coverage). The printable pages and the GraphQL
``countryFactSheet`` / ``nationalActionPlan`` fields read these same functions, so the
paper and the API say the same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from fundtrack.accounting import nap
from fundtrack.accounting.classify import classify_all
from fundtrack.accounting.markers import PRINCIPAL
from fundtrack.ingest import codelists
from fundtrack.money import SUM_CONTEXT

#: How many funders a sheet names (the rest are summed as "others").
TOP = 5
COUNTING = ("Transfers (disbursements and the receivers' reports of them) that either "
            "report places in the country, each movement counted once; USD at the stored "
            "rate; 1325 scope and gender-principal as either report is classified "
            "(docs/accounting.md).")


@dataclass
class YearFigures:
    year: int
    movements: int = 0
    usd: Decimal = Decimal(0)
    in_scope_usd: Decimal = Decimal(0)
    gender_principal_usd: Decimal = Decimal(0)
    without_usd: int = 0


@dataclass
class CountrySheet:
    country: str
    name: str | None
    years: list[YearFigures]
    funders: list[tuple[str, Decimal]]
    others_usd: Decimal
    plans: list[nap.PlanCoverage]
    movements: int = 0
    without_usd: int = 0
    counting: str = COUNTING
    totals: dict[str, Decimal] = field(default_factory=dict)


def country_name(code: str) -> str | None:
    for name, c in codelists.names("Country").items():
        if c == code:
            return name.title()
    return None


def country_sheet(conn: Connection, country: str) -> CountrySheet:
    country = country.upper()
    moves = nap.country_movements(conn, country)
    firsts = [it for mv in moves for it in mv.reports]
    cls = classify_all(conn, firsts) if firsts else {}
    years: dict[int, YearFigures] = {}
    funders: dict[str, Decimal] = defaultdict(Decimal)
    without = 0
    for mv in moves:
        if mv.value_date is None:
            continue
        y = years.setdefault(mv.value_date.year, YearFigures(mv.value_date.year))
        y.movements += 1
        if mv.amount_usd is None:
            y.without_usd += 1
            without += 1
            continue
        y.usd = SUM_CONTEXT.add(y.usd, mv.amount_usd)
        if any(cls[it.flow_id].in_scope for it in mv.reports):
            y.in_scope_usd = SUM_CONTEXT.add(y.in_scope_usd, mv.amount_usd)
        if any(it.marker.common == PRINCIPAL for it in mv.reports):
            y.gender_principal_usd = SUM_CONTEXT.add(y.gender_principal_usd, mv.amount_usd)
        funders[mv.src_org] = SUM_CONTEXT.add(funders[mv.src_org], mv.amount_usd)
    ranked = sorted(funders.items(), key=lambda kv: (-kv[1], kv[0]))
    others = sum((v for _, v in ranked[TOP:]), Decimal(0))
    ys = [years[k] for k in sorted(years)]
    return CountrySheet(
        country=country, name=country_name(country), years=ys, funders=ranked[:TOP],
        others_usd=others, plans=nap.coverage(conn, country=country), movements=len(moves),
        without_usd=without,
        totals={"usd": sum((y.usd for y in ys), Decimal(0)),
                "in_scope_usd": sum((y.in_scope_usd for y in ys), Decimal(0)),
                "gender_principal_usd": sum((y.gender_principal_usd for y in ys), Decimal(0))})


def plan_sheet(conn: Connection, code: str) -> nap.PlanCoverage | None:
    plans = nap.coverage(conn, code=code)
    return plans[0] if plans else None


def as_jsonable(v: Any) -> Any:
    return str(v) if isinstance(v, Decimal) else v
