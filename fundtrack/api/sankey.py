"""``donorSankey``: a donor's money from its own reports onward (the Sankey page's data).

The bands come from :func:`fundtrack.query.sankey.donor_sankey`; the rule is documented
there and in ``docs/methodology.md``. The page at ``/sankey?donor=...`` draws exactly
these bands.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from fundtrack.api import filters as flt

MAX_SANKEY_LIMIT = 200


@strawberry.enum(description="What the last band set of a donor Sankey groups by.")
class SankeyBy(enum.Enum):
    COUNTRY = "country"
    SECTOR = "sector"


@strawberry.type(description="An exact amount in one currency.")
class CurrencyAmount:
    currency: str | None
    amount: Decimal


@strawberry.type(description="A node of the Sankey: an organisation, a country or sector, "
                             "or one of the fixed nodes (spent, not reported passed on).")
class SankeyNode:
    key: str = strawberry.field(description="Stable key; organisations by identity "
                                            "(refs that differ only in case are one).")
    label: str


@strawberry.type(description="One band. Stage 1: the donor's reported disbursements to a "
                             "receiver; 2: what the receiver reports passing on or spending "
                             "of it, or the rest (not reported); 3: where the money of stage "
                             "2 went, by country or sector.")
class SankeyBand:
    stage: int
    source: SankeyNode
    target: SankeyNode
    amount_usd: Decimal = strawberry.field(
        description="Width in USD, at the rate of the donor's payments (stage 1: each "
                    "payment's own stored USD).")
    amounts: list[CurrencyAmount] = strawberry.field(
        description="The same money exactly in the reports' currencies (none for the "
                    "'not reported' rest).")
    count: int = strawberry.field(description="Movements (or parts of them) in the band.")
    without_usd: int


@strawberry.type(description="A donor's money as a Sankey, from the donor's own reports.")
class DonorSankey:
    donor: str
    by: SankeyBy
    disbursed: list[CurrencyAmount] = strawberry.field(
        description="The donor's reported disbursements under the filter, each counted once: "
                    "the first band set, exact per currency.")
    disbursed_usd: Decimal
    disbursements: int = strawberry.field(description="The donor's disbursement reports.")
    paired: int = strawberry.field(description="Of them, paired with the receiver's report.")
    without_usd: int
    passed_on_usd: Decimal
    spent_usd: Decimal
    untraced_usd: Decimal = strawberry.field(
        description="Not reported passed on or spent by the receivers (its own band).")
    coverage: Decimal | None = strawberry.field(
        description="(passed on + spent) / drawn first band set; null without money.")
    low_coverage: bool = strawberry.field(description="coverage below 50%: the page says so.")
    receiver_only: list[SankeyBand] = strawberry.field(
        description="Receivers' reports of money from the donor that could not be paired "
                    "with a disbursement the donor reports (not in the bands).")
    receiver_only_usd: Decimal
    receiver_only_count: int
    not_drawn: list[SankeyBand] = strawberry.field(
        description="Receivers with a negative net total (reversals): not drawable.")
    nodes: list[SankeyNode]
    bands: list[SankeyBand]


def _band(b: Any, labels: dict[str, str]) -> SankeyBand:
    return SankeyBand(
        stage=b.stage, source=SankeyNode(key=b.source, label=labels.get(b.source, b.source)),
        target=SankeyNode(key=b.target, label=labels.get(b.target, b.target)),
        amount_usd=b.amount_usd, count=b.count, without_usd=b.without_usd,
        amounts=[CurrencyAmount(currency=c, amount=a)
                 for c, a in sorted(b.amounts.items(), key=lambda kv: kv[0] or "")])


@strawberry.type
class SankeyQuery:
    @strawberry.field(description=(
        "A donor's money from its own reports onward (the /sankey page with a donor): "
        "its reported disbursements counted once, what the receivers report passing on or "
        "spending of them (the attribution rule), the rest as its own band, then countries "
        "or sectors. `where` selects the donor's disbursement reports (year, gender "
        "marker, ...); `donor` is the organisation ref (spellings that differ only in "
        "case are one organisation)."))
    async def donor_sankey(
        self, info: Info, donor: str, where: flt.FlowWhere | None = None,
        by: SankeyBy = SankeyBy.COUNTRY,
        limit: Annotated[int, strawberry.argument(
            description="Largest receivers, onward organisations and places drawn one by "
                        "one; the rest gathered.")] = 40,
    ) -> DonorSankey:
        from fundtrack.query.sankey import donor_sankey

        donor = donor.strip()
        if not donor or len(donor) > 200:
            raise GraphQLError("`donor` must be an organisation ref (1-200 characters)")
        if not 1 <= limit <= MAX_SANKEY_LIMIT:
            raise GraphQLError(f"limit must be between 1 and {MAX_SANKEY_LIMIT}")
        clause = flt.flow_where(where) if where is not None else None
        sk = await info.context.db(lambda c: donor_sankey(c, donor, clause, by=by.value,
                                                          limit=limit))
        return DonorSankey(
            donor=sk.donor, by=by,
            disbursed=[CurrencyAmount(currency=c, amount=a)
                       for c, a in sorted(sk.disbursed.items(), key=lambda kv: kv[0] or "")],
            disbursed_usd=sk.disbursed_usd, disbursements=sk.disbursements, paired=sk.paired,
            without_usd=sk.without_usd, passed_on_usd=sk.passed_on_usd,
            spent_usd=sk.spent_usd, untraced_usd=sk.untraced_usd, coverage=sk.coverage,
            low_coverage=sk.low_coverage,
            receiver_only=[_band(b, sk.nodes) for b in sk.receiver_only],
            receiver_only_usd=sk.receiver_only_usd, receiver_only_count=sk.receiver_only_count,
            not_drawn=[_band(b, sk.nodes) for b in sk.not_drawn],
            nodes=[SankeyNode(key=k, label=v) for k, v in sk.nodes.items()],
            bands=[_band(b, sk.nodes) for b in sk.bands])
