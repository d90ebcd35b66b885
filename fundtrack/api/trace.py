"""The ``trace`` root field: follow money upstream (who paid) or downstream (what it paid for).

Results come from :mod:`fundtrack.trail.trace`; the rule is documented in
``docs/methodology.md``. Lists here are bounded by the graph below (or above) one start.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from fundtrack.api.ids import decode_id

MAX_TRACE_DEPTH = 12


@strawberry.enum(description="Follow the money towards its donors or towards its spending.")
class TraceDirection(enum.Enum):
    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"


@strawberry.input(description="Where a trace starts: exactly one of these.", one_of=True)
class TraceFrom:
    activity: str | None = strawberry.UNSET
    organization: str | None = strawberry.UNSET
    flow: strawberry.ID | None = strawberry.UNSET


@strawberry.input(description="Filters on what a trace returns.")
class TraceWhere:
    currency: str | None = None
    organization: str | None = strawberry.field(
        default=None, description="Only originators/terminals of this organisation ref.")


@strawberry.type(description="An organisation as the trail names it (its ref).")
class TraceOrganization:
    ref: str


@strawberry.type(description="An activity as the trail names it.")
class TraceActivity:
    iati_identifier: str


@strawberry.type(description="A donor whose money it was, in the flows' currency, USD beside.")
class TraceOriginator:
    organization: TraceOrganization
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None


@strawberry.type(description="Expenditure this money paid for.")
class TraceTerminal:
    activity: TraceActivity | None
    organization: TraceOrganization
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None


@strawberry.type(description="Money that cannot be followed, with the reason.")
class TraceUntraced:
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None
    reason: str
    organization: TraceOrganization | None
    activity: TraceActivity | None


@strawberry.type(description="An account: an organisation, optionally inside one of its activities.")
class TraceAccount:
    organization: TraceOrganization
    activity: TraceActivity | None


@strawberry.type(description="A movement of money in the traced sub-graph, with the traced amount.")
class TraceMovement:
    source: TraceAccount
    target: TraceAccount
    kind: str
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None
    depth: int | None


@strawberry.type(description="One line of a donor summary: a key and the donor's USD there.")
class SummaryLine:
    key: str
    amount_usd: Decimal


@strawberry.type(description="Where a donor's money ended.")
class DonorSummary:
    by_fund: list[SummaryLine]
    by_recipient: list[SummaryLine]
    by_country: list[SummaryLine]
    by_gender_significance: list[SummaryLine]
    by_kind: list[SummaryLine]


@strawberry.type(description="The traced sub-graph and its ends.")
class Trace:
    direction: TraceDirection
    accounts: list[TraceAccount]
    movements: list[TraceMovement]
    originators: list[TraceOriginator]
    terminals: list[TraceTerminal]
    untraced: list[TraceUntraced]


def _acc(org: str, act: str | None) -> TraceAccount:
    return TraceAccount(organization=TraceOrganization(ref=org),
                        activity=TraceActivity(iati_identifier=act) if act else None)


def _keep(row: dict[str, Any], where: TraceWhere | None) -> bool:
    if where is None:
        return True
    if where.currency and row.get("currency") != where.currency:
        return False
    return not (where.organization and row.get("organization") != where.organization)


def _build(res: Any, direction: TraceDirection, where: TraceWhere | None) -> Trace:
    movements = []
    for mv in res.movements:
        if "src" in mv:
            src, dst = mv["src"], mv["dst"]
        else:
            src, dst = (mv["src_org"], mv["src_activity"]), (mv["dst_org"], mv["dst_activity"])
        movements.append(TraceMovement(
            source=_acc(*src), target=_acc(*dst), kind=mv["kind"], amount=mv["amount"],
            currency=mv["currency"], amount_usd=mv["amount_usd"], depth=mv.get("depth")))
    return Trace(
        direction=direction,
        accounts=[_acc(*a) for a in res.accounts],
        movements=movements,
        originators=[TraceOriginator(organization=TraceOrganization(ref=o["organization"]),
                                     amount=o["amount"], currency=o["currency"],
                                     amount_usd=o["amount_usd"])
                     for o in res.originators if _keep(o, where)],
        terminals=[TraceTerminal(
            activity=TraceActivity(iati_identifier=t["activity"]) if t["activity"] else None,
            organization=TraceOrganization(ref=t["organization"]), amount=t["amount"],
            currency=t["currency"], amount_usd=t["amount_usd"])
            for t in res.terminals if _keep(t, where)],
        untraced=[TraceUntraced(
            amount=u["amount"], currency=u["currency"], amount_usd=u.get("amount_usd"),
            reason=u["reason"],
            organization=TraceOrganization(ref=u["organization"]) if u.get("organization") else None,
            activity=TraceActivity(iati_identifier=u["activity"]) if u.get("activity") else None)
            for u in res.untraced])


def _flow_pk(gid: str) -> int:
    if gid.isdigit():
        return int(gid)
    type_name, pk = decode_id(gid)
    if type_name != "Flow" or not pk.isdigit():
        raise GraphQLError(f"id {gid[:60]!r} is not a Flow id")
    return int(pk)


@strawberry.type
class TraceQuery:
    @strawberry.field(description=(
        "Follow money from an activity (iati-identifier), organisation (ref) or flow (id): "
        "UPSTREAM to the donors who paid, DOWNSTREAM to the expenditure it paid for. "
        "Attribution follows the documented rule (docs/methodology.md)."))
    async def trace(
        self, info: Info,
        from_: Annotated[TraceFrom, strawberry.argument(name="from")],
        direction: TraceDirection = TraceDirection.DOWNSTREAM,
        max_depth: int = 6,
        where: TraceWhere | None = None,
    ) -> Trace:
        from fundtrack.trail.trace import trace

        if not 1 <= max_depth <= MAX_TRACE_DEPTH:
            raise GraphQLError(f"maxDepth must be between 1 and {MAX_TRACE_DEPTH}")
        activity = from_.activity or None
        organization = from_.organization or None
        flow = _flow_pk(str(from_.flow)) if from_.flow else None
        if sum(x is not None for x in (activity, organization, flow)) != 1:
            raise GraphQLError("give exactly one of from.activity, from.organization, from.flow")
        res = await info.context.db(lambda c: trace(
            c, activity=activity, organization=organization, flow=flow,
            direction=direction.value, max_depth=max_depth))
        return _build(res, direction, where)

    @strawberry.field(description="Where a donor's money ended: by fund, recipient, country, "
                                  "gender significance and kind (USD).")
    async def donor_summary(self, info: Info, organization: str) -> DonorSummary:
        from fundtrack.trail.trace import donor_summary

        s = await info.context.db(lambda c: donor_summary(c, organization))

        def lines(k: str) -> list[SummaryLine]:
            return [SummaryLine(key=x["key"], amount_usd=x["amount_usd"]) for x in s[k]]

        return DonorSummary(by_fund=lines("fund"), by_recipient=lines("recipient"),
                            by_country=lines("country"), by_gender_significance=lines("gender"),
                            by_kind=lines("kind"))
