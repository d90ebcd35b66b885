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
    reason: str = strawberry.field(description="The reason's key (stable, for grouping).")
    explanation: str = strawberry.field(
        description="The reason as a sentence (what the pages show; `organization` names "
                    "who holds it).")
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


@strawberry.type(description="An exact amount in one currency, USD beside when known.")
class CheckAmount:
    currency: str | None
    amount: Decimal
    amount_usd: Decimal | None
    count: int = strawberry.field(description="Reports or movements summed.")


@strawberry.type(description=(
    "Movements at the activity with one direction, origin of report, counterpart, currency "
    "and sign. `how`: PAIRED (this activity's report and the other side's, counted once), "
    "OWN (only this activity reports it), THEIRS (only the other side reports it, naming "
    "this activity)."))
class CheckLine:
    direction: str
    how: str
    counterpart: TraceOrganization | None
    currency: str | None
    negative: bool = strawberry.field(description="Corrections: never attributed.")
    amount: Decimal
    amount_usd: Decimal | None
    count: int


@strawberry.type(description=(
    "Money that this activity and one counterpart both report, in reports that could not "
    "be paired: each is its own movement, so up to `atMost` is counted twice."))
class CheckDouble:
    direction: str
    counterpart: TraceOrganization
    currency: str | None
    own_amount: Decimal
    own_count: int
    their_amount: Decimal
    their_count: int
    at_most: Decimal


@strawberry.type(description=(
    "What the traces of an activity count, against what it reports: the trace page's "
    "'originated against paid', with every difference explained."))
class TraceCheck:
    activity: str
    basis: str = strawberry.field(description="IN: the upstream counts the money coming in; "
                                              "OUT: nothing comes in, it counts what leaves.")
    paid: list[CheckAmount] = strawberry.field(
        description="Disbursements and expenditure this activity reports.")
    received: list[CheckAmount] = strawberry.field(
        description="Incoming funds this activity reports.")
    counted: list[CheckAmount] = strawberry.field(
        description="What the upstream trace counts (the movements of `basis`).")
    lines: list[CheckLine]
    doubles: list[CheckDouble]
    notes: list[str] = strawberry.field(description="The explanation, sentence by sentence.")
    warnings: list[str] = strawberry.field(
        description="Where both reports of one payment are counted.")


def _check(conn: Any, ident: str) -> TraceCheck:
    from fundtrack.query import explain, nodes
    from fundtrack.query.trace import _accounts_of, trace

    b = explain.activity_balance(conn, ident)
    names = nodes.names(conn, {ln.counterpart for ln in b.lines})
    down = trace(conn, activity=ident, direction="DOWNSTREAM")
    ends = explain.downstream_ends(down, _accounts_of(conn, ident, None))

    def book(d: dict[Any, list[Any]]) -> list[CheckAmount]:
        return [CheckAmount(currency=k, amount=v[0], amount_usd=v[1], count=v[2])
                for k, v in sorted(d.items(), key=lambda kv: kv[0] or "")]
    counted: dict[Any, list[Any]] = {}
    for ln in b.lines:
        if ln.direction == b.basis:
            cell = counted.setdefault(ln.currency, [Decimal(0), Decimal(0), 0])
            cell[0] += ln.amount
            cell[1] = None if cell[1] is None or ln.amount_usd is None \
                else cell[1] + ln.amount_usd
            cell[2] += ln.count

    def org(ref: str) -> TraceOrganization | None:
        return TraceOrganization(ref=ref) if ref else None
    notes = explain.upstream_notes(b, names) + explain.downstream_notes(b, ends)
    return TraceCheck(
        activity=ident, basis=b.basis.upper(), paid=book(b.paid), received=book(b.received),
        counted=book(counted),
        lines=[CheckLine(direction=ln.direction.upper(), how=ln.how.upper(),
                         counterpart=org(ln.counterpart), currency=ln.currency,
                         negative=ln.negative, amount=ln.amount, amount_usd=ln.amount_usd,
                         count=ln.count) for ln in b.lines],
        doubles=[CheckDouble(direction=d.direction.upper(),
                             counterpart=TraceOrganization(ref=d.counterpart),
                             currency=d.currency, own_amount=d.own_amount,
                             own_count=d.own_count, their_amount=d.their_amount,
                             their_count=d.their_count, at_most=d.at_most) for d in b.doubles],
        notes=[" ".join([n.text, *n.items]) for n in notes],
        warnings=[n.text for n in explain.double_notes(b, names)])


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
    from fundtrack.derived.trail.reasons import sentence
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
            reason=u["reason"], explanation=sentence(u["reason"], "The organisation"),
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

    @strawberry.field(description=(
        "What the traces of an activity (iati-identifier) count against what it reports "
        "paying and receiving, with the reason for every difference and a warning where "
        "both reports of one payment are counted (the trace page's first section)."))
    async def trace_check(self, info: Info, activity: str) -> TraceCheck:
        if not activity.strip() or len(activity) > 300:
            raise GraphQLError("`activity` must be an iati-identifier (1-300 characters)")
        return await info.context.db(lambda c: _check(c, activity.strip()))

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
