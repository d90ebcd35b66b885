"""Who is who in the API (issue 15): an organisation's identifiers, names, matches and
decisions; the review list (``matchCandidates``); people's decisions as admin mutations
(``decideOrganization``, ``undoOrganizationDecision``).

The ``Organization`` fields are a mixin that :mod:`fundtrack.api.types` puts under it.
Reads are :mod:`fundtrack.query.identity`; decisions are
:mod:`fundtrack.registry.decisions` (the same rules as ``fundtrack orgs``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from fundtrack.api.paging import Connection, PageArgs, connection
from fundtrack.query import identity as q

if TYPE_CHECKING:
    from fundtrack.api.mutations import UserError


@strawberry.type(description="A code that denotes the organisation in one scheme.")
class OrganizationIdentifier:
    scheme: str = strawberry.field(description=(
        "iati-org | crs-channel | dac-donor | fts-org | agency-code | 360giving | fundtrack"))
    value: str
    origin: str = strawberry.field(description="seed | codelist | registry | reported | decision")
    source: str | None = strawberry.field(description="Where a seeded identifier comes from.")
    requires_name: bool = strawberry.field(description=(
        "The code is known to be put on other bodies too: it identifies this organisation "
        "only with a reported name that agrees (rule identifier+name)."))


@strawberry.type(description="A name of the organisation: seeded, from a codelist, or seen "
                 "in reports.")
class OrganizationName:
    name: str
    lang: str | None
    origin: str
    source: str | None


@strawberry.type(description="How one reported party (ref and name as a report gave them) "
                 "was matched to the organisation.")
class PartyMatch:
    ref: str | None
    name: str | None
    rule: str = strawberry.field(description=(
        "decision | identifier | identifier+name | name | ambiguous | new"))
    evidence: str

    @classmethod
    def from_row(cls, r: Any) -> PartyMatch:
        return cls(ref=r["ref"] or None, name=r["name_key"] or None, rule=r["rule"],
                   evidence=r["evidence"])


@strawberry.type(description="The one organisation however reports name it (issue 15).")
class CanonicalOrganization:
    ref: str = strawberry.field(description=(
        "Its key: a seed's reference (FT-FUND-PBF), else the first reported ref, else "
        "name:<normalised name> for a body only ever named."))
    name: str | None
    type: str | None
    country: str | None
    origin: str
    source: str | None
    is_pooled_fund: bool
    is_womens_rights_org: bool

    @classmethod
    def from_row(cls, r: Any) -> CanonicalOrganization:
        return cls(ref=r["ref"], name=r["name"], type=r["type"], country=r["country"],
                   origin=r["origin"], source=r["source"],
                   is_pooled_fund=bool(r["is_pooled_fund"]),
                   is_womens_rights_org=bool(r["is_womens_rights_org"]))


@strawberry.type(description="A decision a person took about who is who.")
class OrganizationDecision:
    number: int = strawberry.field(description="Its number (`undoOrganizationDecision`, "
                                   "`fundtrack orgs undo`).")
    action: str
    subject: str
    target: str | None
    value: str | None
    reason: str
    decided_by: str
    decided_at: datetime
    via: str | None = strawberry.field(description="api | cli | file:<name>")
    undone_at: datetime | None
    undone_by: str | None

    @classmethod
    def from_row(cls, r: Any) -> OrganizationDecision:
        return cls(number=r["id"], action=r["action"], subject=r["subject"],
                   target=r["target"], value=r["value"], reason=r["reason"],
                   decided_by=r["decided_by"], decided_at=r["decided_at"], via=r["via"],
                   undone_at=r["reverted_at"], undone_by=r["reverted_by"])


@strawberry.type(description="A party the rules would not match alone: it waits for a "
                 "person's decision (a merge into the candidate, or nothing).")
class MatchCandidate:
    party_ref: str | None
    party_name: str
    left_as: str = strawberry.field(description="The organisation the party was left as.")
    candidate_ref: str
    candidate_name: str | None
    rule: str
    evidence: str

    @classmethod
    def from_row(cls, r: Any) -> MatchCandidate:
        return cls(party_ref=r["party_ref"] or None, party_name=r["party_name"],
                   left_as=r["org_ref"], candidate_ref=r["candidate_ref"],
                   candidate_name=r["candidate_name"], rule=r["rule"], evidence=r["evidence"])


@strawberry.type(description="An organisation the stated rules suggest as a women's rights "
                 "organisation (docs/methodology.md, 'Women's rights organisations'). A "
                 "suggestion flags nothing: a FLAG_WRO decision does.")
class WroCandidate:
    organization: CanonicalOrganization
    rules: list[str] = strawberry.field(description=(
        "The rules that suggested it: purpose (receiver of DAC 15170), name (says so in "
        "one of the listed languages), type (an NGO type or none reported: the condition)."))
    evidence: list[str] = strawberry.field(description="One line per rule.")
    why: str = strawberry.field(description="'suggested as a women's rights organisation "
                                "because ...': the evidence in one line.")
    flagged: bool = strawberry.field(description="Already flagged (list, registry or decision).")
    flows: int = strawberry.field(description="Current flows of purpose 15170 it receives.")
    flows_usd: Decimal = strawberry.field(description="Their USD, summed exactly.")
    flows_without_usd: int
    example_activity: str | None
    decide: str = strawberry.field(description="How to decide: the CLI command (the "
                                   "mutation is decideOrganization with FLAG_WRO).")


def _wro_candidate(c: Any, row: Any) -> WroCandidate:
    return WroCandidate(
        organization=CanonicalOrganization.from_row(row), rules=c.rules, evidence=c.evidence,
        why=c.why, flagged=c.flagged, flows=c.flows, flows_usd=c.flows_usd,
        flows_without_usd=c.flows_without_usd, example_activity=c.example_activity,
        decide=f'fundtrack orgs flag "{c.ref}" wro --reason WHY' + (
            " --off" if c.flagged else ""))


@strawberry.type
class OrganizationIdentity:
    """Identity fields of ``Organization`` (a mixin)."""

    if TYPE_CHECKING:
        ref: str

    @strawberry.field(description="The canonical organisation this ref denotes (merges "
                      "followed); null before the identity step ran.")
    async def canonical(self, info: Info) -> CanonicalOrganization | None:
        row = await info.context.db(lambda c: q.canonical(c, self.ref))
        return CanonicalOrganization.from_row(row) if row else None

    @strawberry.field(description="Its identifiers in every scheme (scheme, value, source).")
    async def identifiers(self, info: Info) -> list[OrganizationIdentifier]:
        def run(c: Any) -> list[Any]:
            org = q.canonical(c, self.ref)
            return q.identifiers(c, org["id"]) if org else []
        return [OrganizationIdentifier(scheme=r["scheme"], value=r["value"], origin=r["origin"],
                                       source=r["source"], requires_name=bool(r["requires_name"]))
                for r in await info.context.db(run)]

    @strawberry.field(description="Every name it goes by: seeded, from the CRS codelist, in "
                      "the registry, or seen in reports.")
    async def names(self, info: Info) -> list[OrganizationName]:
        def run(c: Any) -> list[Any]:
            org = q.canonical(c, self.ref)
            return q.names(c, org["id"]) if org else []
        return [OrganizationName(name=r["name"], lang=r["lang"], origin=r["origin"],
                                 source=r["source"]) for r in await info.context.db(run)]

    @strawberry.field(description="How each reported party (ref, name) was matched to it: "
                      "the rule and its evidence.")
    async def matches(self, info: Info, first: int | None = None, after: str | None = None,
                      last: int | None = None, before: str | None = None,
                      ) -> Connection[PartyMatch]:
        from fundtrack.identity.tables import PartyResolution

        org = await info.context.db(lambda c: q.canonical(c, self.ref))
        t = PartyResolution.__table__
        query = q.matches_query(org["id"] if org else -1)
        return connection(info.context, query, [t.c.ref, t.c.name_key, t.c.id],
                          PartyMatch.from_row, PageArgs(first, after, last, before))

    @strawberry.field(description="The organisation a decision merged this one into, if any.")
    async def merged_into(self, info: Info) -> CanonicalOrganization | None:
        row = await info.context.db(lambda c: q.merged_into(c, self.ref))
        return CanonicalOrganization.from_row(row) if row else None

    @strawberry.field(description="Decisions that name this organisation (by any of its "
                      "refs, identifiers or name-only parties), oldest first.")
    async def decisions(self, info: Info, include_undone: bool = False,
                        ) -> list[OrganizationDecision]:
        from fundtrack.identity.tables import OrgDecision

        def run(c: Any) -> list[Any]:
            org = q.canonical(c, self.ref)
            keys = q.keys_of(c, org) if org else [self.ref]
            t = OrgDecision.__table__
            return list(c.execute(q.decisions_query(keys, include_undone)
                                  .order_by(t.c.decided_at, t.c.id)).mappings())
        return [OrganizationDecision.from_row(r) for r in await info.context.db(run)]


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The review list: parties the matching rules would not "
                      "merge alone, each with a candidate organisation.")
    def match_candidates(self, info: Info, first: int | None = None, after: str | None = None,
                         last: int | None = None, before: str | None = None,
                         ) -> Connection[MatchCandidate]:
        from fundtrack.identity.tables import MatchCandidate as Row

        t = Row.__table__
        return connection(info.context, q.candidates_query(),
                          [t.c.party_name, t.c.party_ref, t.c.id], MatchCandidate.from_row,
                          PageArgs(first, after, last, before))

    @strawberry.field(description="Organisations the stated rules suggest as women's rights "
                      "organisations, each with its rules and evidence, by ref.")
    async def wro_candidates(self, info: Info, include_flagged: bool = False,
                             first: int | None = None, after: str | None = None,
                             last: int | None = None, before: str | None = None,
                             ) -> Connection[WroCandidate]:
        from fundtrack.identity.tables import CanonicalOrg
        from fundtrack.identity.wro import candidates

        found = {c.org_id: c for c in await info.context.db(candidates)
                 if include_flagged or not c.flagged}
        t = CanonicalOrg.__table__
        query = select(t).where(t.c.id.in_(sorted(found)))
        return connection(info.context, query, [t.c.ref, t.c.id],
                          lambda r: _wro_candidate(found[r["id"]], r),
                          PageArgs(first, after, last, before))

    @strawberry.field(description="People's decisions about who is who, oldest first.")
    def organization_decisions(self, info: Info, include_undone: bool = False,
                               first: int | None = None, after: str | None = None,
                               last: int | None = None, before: str | None = None,
                               ) -> Connection[OrganizationDecision]:
        from fundtrack.identity.tables import OrgDecision

        t = OrgDecision.__table__
        return connection(info.context, q.decisions_query(None, include_undone),
                          [t.c.decided_at, t.c.id], OrganizationDecision.from_row,
                          PageArgs(first, after, last, before))


@strawberry.enum(description="What a person decides about an organisation.")
class DecisionAction(enum.Enum):
    MERGE = "merge"
    SPLIT = "split"
    SET_TYPE = "set_type"
    FLAG_POOLED_FUND = "flag_pooled_fund"
    FLAG_WRO = "flag_wro"


@strawberry.input(description="A decision: `subject` is a ref, an identifier or "
                  "name:<name as reported> (name-only parties too).")
class OrganizationDecisionInput:
    action: DecisionAction
    subject: str
    reason: str = strawberry.field(description="Why (kept with the decision).")
    target: str | None = strawberry.field(default=None, description=(
        "MERGE: the organisation the subject is; SPLIT: only off this organisation."))
    value: str | None = strawberry.field(default=None, description=(
        "SET_TYPE: an IATI OrganisationType code; FLAG_*: true or false."))


@strawberry.input
class UndoOrganizationDecisionInput:
    number: int


@strawberry.type
class OrganizationDecisionPayload:
    decision: OrganizationDecision | None
    errors: list[Annotated[UserError, strawberry.lazy("fundtrack.api.mutations")]]


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description=(
        "Record a decision about who is who (admin only): it is applied first on every "
        "rebuild, so it survives re-imports and `recompute`; the derived tables are "
        "refreshed before the answer."))
    async def decide_organization(self, info: Info, input: OrganizationDecisionInput,
                                  ) -> OrganizationDecisionPayload:
        from fundtrack.api.mutations import UserError, _require_admin
        from fundtrack.registry import decisions as dec

        ctx = info.context
        _require_admin(ctx.viewer, "decideOrganization")
        d = dec.Decision(input.action.value, input.subject, input.reason, input.target,
                         input.value)

        def run() -> Any:
            with ctx.engine.begin() as conn:
                return dec.decide(conn, d, ctx.viewer.who, "api")
        try:
            row = await run_in_threadpool(run)
        except dec.DecisionError as exc:
            return OrganizationDecisionPayload(decision=None, errors=[UserError(
                code="INVALID", message=str(exc), field=exc.field)])
        return OrganizationDecisionPayload(decision=OrganizationDecision.from_row(row),
                                           errors=[])

    @strawberry.mutation(description=(
        "Undo a decision (admin only): the answers are those from before it; the decision "
        "stays on record with who undid it and when."))
    async def undo_organization_decision(self, info: Info, input: UndoOrganizationDecisionInput,
                                         ) -> OrganizationDecisionPayload:
        from fundtrack.api.mutations import UserError, _require_admin
        from fundtrack.registry import decisions as dec

        ctx = info.context
        _require_admin(ctx.viewer, "undoOrganizationDecision")

        def run() -> Any:
            with ctx.engine.begin() as conn:
                return dec.undo(conn, input.number, ctx.viewer.who)
        try:
            row = await run_in_threadpool(run)
        except dec.DecisionError as exc:
            code = "NOT_FOUND" if "no decision" in str(exc) else "INVALID"
            return OrganizationDecisionPayload(decision=None, errors=[UserError(
                code=code, message=str(exc), field="number")])
        return OrganizationDecisionPayload(decision=OrganizationDecision.from_row(row),
                                           errors=[])
