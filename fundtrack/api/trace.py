"""The ``trace`` root field: follow money upstream (who paid) or downstream (what it paid for).

Results come from :mod:`fundtrack.query.trace`; the rule is documented in
``docs/methodology.md``. A donor's money can reach tens of thousands of accounts, so every
list is bounded the way GitHub's API bounds lists: largest first, ``first:`` items
(default 50, at most 500), with the exact count and per-currency totals beside it.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from fundtrack.query.ids import decode_id, int_pk

MAX_TRACE_DEPTH = 12
DEFAULT_FIRST = 50
MAX_FIRST = 500
LIST_FIELDS = ("accounts", "movements", "originators", "terminals", "untraced")
FIRST_HELP = f"The largest items first; how many (default {DEFAULT_FIRST}, at most {MAX_FIRST})."


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


@strawberry.type(description="The exact sum of a whole list in one currency.")
class TraceTotal:
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None = strawberry.field(
        description="USD beside; null if any item of the list has no USD value.")


def _first(first: int) -> int:
    if first is None or not 0 <= first <= MAX_FIRST:
        raise GraphQLError(f"first must be between 0 and {MAX_FIRST} (got {first})")
    return first


@strawberry.type(description=(
    "The traced sub-graph and its ends. Each list holds its largest items first (by USD); "
    "its count and per-currency totals cover the whole list."))
class Trace:
    direction: TraceDirection
    accounts_count: int
    movements_count: int
    originators_count: int
    originators_total: list[TraceTotal]
    terminals_count: int
    terminals_total: list[TraceTotal]
    untraced_count: int
    untraced_total: list[TraceTotal]
    all_accounts: strawberry.Private[list[TraceAccount]]
    all_movements: strawberry.Private[list[TraceMovement]]
    all_originators: strawberry.Private[list[TraceOriginator]]
    all_terminals: strawberry.Private[list[TraceTerminal]]
    all_untraced: strawberry.Private[list[TraceUntraced]]

    @strawberry.field(description="Accounts the money passed through, most money first.")
    def accounts(self, first: Annotated[int, strawberry.argument(description=FIRST_HELP)]
                 = DEFAULT_FIRST) -> list[TraceAccount]:
        return self.all_accounts[:_first(first)]

    @strawberry.field(description="Movements with the traced amount, largest first.")
    def movements(self, first: Annotated[int, strawberry.argument(description=FIRST_HELP)]
                  = DEFAULT_FIRST) -> list[TraceMovement]:
        return self.all_movements[:_first(first)]

    @strawberry.field(description="Upstream: the donors who paid, largest first.")
    def originators(self, first: Annotated[int, strawberry.argument(description=FIRST_HELP)]
                    = DEFAULT_FIRST) -> list[TraceOriginator]:
        return self.all_originators[:_first(first)]

    @strawberry.field(description="Downstream: the expenditure paid for, largest first.")
    def terminals(self, first: Annotated[int, strawberry.argument(description=FIRST_HELP)]
                  = DEFAULT_FIRST) -> list[TraceTerminal]:
        return self.all_terminals[:_first(first)]

    @strawberry.field(description="Money that cannot be followed further, largest first.")
    def untraced(self, first: Annotated[int, strawberry.argument(description=FIRST_HELP)]
                 = DEFAULT_FIRST) -> list[TraceUntraced]:
        return self.all_untraced[:_first(first)]


def _acc(org: str, act: str | None) -> TraceAccount:
    return TraceAccount(organization=TraceOrganization(ref=org),
                        activity=TraceActivity(iati_identifier=act) if act else None)


def _keep(row: dict[str, Any], where: TraceWhere | None) -> bool:
    if where is None:
        return True
    if where.currency and row.get("currency") != where.currency:
        return False
    return not (where.organization and row.get("organization") != where.organization)


def _totals(rows: list[dict[str, Any]]) -> list[TraceTotal]:
    return [TraceTotal(amount=t["amount"], currency=t["currency"], amount_usd=t["amount_usd"])
            for t in rows]


def _build(res: Any, direction: TraceDirection, where: TraceWhere | None) -> Trace:
    from fundtrack.query.trace import totals_of

    movements = []
    for mv in res.movements:
        if "src" in mv:
            src, dst = mv["src"], mv["dst"]
        else:
            src, dst = (mv["src_org"], mv["src_activity"]), (mv["dst_org"], mv["dst_activity"])
        movements.append(TraceMovement(
            source=_acc(*src), target=_acc(*dst), kind=mv["kind"], amount=mv["amount"],
            currency=mv["currency"], amount_usd=mv["amount_usd"], depth=mv.get("depth")))
    originators = [o for o in res.originators if _keep(o, where)]
    terminals = [t for t in res.terminals if _keep(t, where)]
    counts, totals = dict(res.counts), dict(res.totals)
    if where is not None:  # the lists came whole: count and total what the filter kept
        counts.update(originators=len(originators), terminals=len(terminals))
        totals.update(originators=totals_of(originators), terminals=totals_of(terminals))
    return Trace(
        direction=direction,
        accounts_count=counts["accounts"], movements_count=counts["movements"],
        originators_count=counts["originators"],
        originators_total=_totals(totals["originators"]),
        terminals_count=counts["terminals"], terminals_total=_totals(totals["terminals"]),
        untraced_count=counts["untraced"], untraced_total=_totals(totals["untraced"]),
        all_accounts=[_acc(*a) for a in res.accounts],
        all_movements=movements,
        all_originators=[TraceOriginator(organization=TraceOrganization(ref=o["organization"]),
                                         amount=o["amount"], currency=o["currency"],
                                         amount_usd=o["amount_usd"]) for o in originators],
        all_terminals=[TraceTerminal(
            activity=TraceActivity(iati_identifier=t["activity"]) if t["activity"] else None,
            organization=TraceOrganization(ref=t["organization"]), amount=t["amount"],
            currency=t["currency"], amount_usd=t["amount_usd"]) for t in terminals],
        all_untraced=[TraceUntraced(
            amount=u["amount"], currency=u["currency"], amount_usd=u.get("amount_usd"),
            reason=u["reason"],
            organization=TraceOrganization(ref=u["organization"]) if u.get("organization") else None,
            activity=TraceActivity(iati_identifier=u["activity"]) if u.get("activity") else None)
            for u in res.untraced])


def _flat(selections: list[Any]) -> list[SelectedField]:
    out: list[SelectedField] = []
    for s in selections:
        if isinstance(s, SelectedField):
            out.append(s)
        elif isinstance(s, InlineFragment | FragmentSpread):
            out.extend(_flat(s.selections))
    return out


def _limit(info: Info) -> int:
    """How many items of each list the query asks for at most (validated before any work)."""
    wanted = 0
    for top in info.selected_fields:
        for f in _flat(top.selections):
            if f.name in LIST_FIELDS:
                first = f.arguments.get("first", DEFAULT_FIRST)
                try:  # literals come as text, variables as numbers
                    n = DEFAULT_FIRST if first is None else int(first)
                except (TypeError, ValueError):
                    n = MAX_FIRST  # not an Int: validation reports it
                wanted = max(wanted, _first(n))
    return wanted


def _flow_pk(gid: str) -> int:
    plain = int_pk(gid)
    if plain is not None:
        return plain
    type_name, pk = decode_id(gid)
    value = int_pk(pk)
    if type_name != "Flow" or value is None:
        raise GraphQLError(f"id {gid[:60]!r} is not a Flow id")
    return value


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
        from fundtrack.query.trace import trace

        if not 1 <= max_depth <= MAX_TRACE_DEPTH:
            raise GraphQLError(f"maxDepth must be between 1 and {MAX_TRACE_DEPTH}")
        activity = from_.activity or None
        organization = from_.organization or None
        flow = _flow_pk(str(from_.flow)) if from_.flow else None
        if sum(x is not None for x in (activity, organization, flow)) != 1:
            raise GraphQLError("give exactly one of from.activity, from.organization, from.flow")
        limit = None if where is not None else _limit(info)  # a filter needs the whole lists
        res = await info.context.db(lambda c: trace(
            c, activity=activity, organization=organization, flow=flow,
            direction=direction.value, max_depth=max_depth, limit=limit))
        return _build(res, direction, where)

    @strawberry.field(description="Where a donor's money ended: by fund, recipient, country, "
                                  "gender significance and kind (USD).")
    async def donor_summary(self, info: Info, organization: str) -> DonorSummary:
        from fundtrack.query.trace import donor_summary

        s = await info.context.db(lambda c: donor_summary(c, organization))

        def lines(k: str) -> list[SummaryLine]:
            return [SummaryLine(key=x["key"], amount_usd=x["amount_usd"]) for x in s[k]]

        return DonorSummary(by_fund=lines("fund"), by_recipient=lines("recipient"),
                            by_country=lines("country"), by_gender_significance=lines("gender"),
                            by_kind=lines("kind"))
