"""One organisation and what it touches: the statements behind ``organization(ref:)``,
its connections (activities; flows as provider, receiver, reporter), ``Activity.flows``
and ``Activity.budgets``, and the organisation page (``/organization?ref=``).

An organisation is its canonical organisation (issue 15, :mod:`fundtrack.identity`):
flows match by their resolved parties (:func:`fundtrack.accounting.subject.party_is`, the
same rule as the API's ``provider``/``receiver``/``reportingOrg`` filters), so a flow that
names it by another identifier or by name alone is its flow; activities (which carry refs
as reported) match by any ref of it (:func:`ref_set`). Everything here reads current rows
only (:func:`fundtrack.db.base.current`), except an activity's own flows and budgets,
which belong to that version of the activity whether it is current or not.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    union,
)

from fundtrack.accounting.subject import org_ids, party_is
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.query.aggregate import FlowDimension, aggregate_statement
from fundtrack.records import FlowKind

#: Kinds whose money comes in to the reporting organisation: a flow of these kinds that
#: names no receiver is money into the organisation that reports it (IATI: the reporting
#: organisation is the receiver when none is given).
INCOMING = (FlowKind.INCOMING_FUNDS, FlowKind.INCOMING_COMMITMENT, FlowKind.INCOMING_PLEDGE)
#: Kinds whose money goes out of the reporting organisation (no provider named: its own).
OUTGOING = (FlowKind.OUTGOING_COMMITMENT, FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE,
            FlowKind.OUTGOING_PLEDGE)

#: IATI OrganisationRole codes of participating organisations.
PARTICIPATION = {"1": "funding", "2": "accountable", "3": "extending", "4": "implementing"}


class FlowRole(enum.Enum):
    """Which end of a flow an organisation is on, or that it reports the flow."""

    PROVIDER = "provider"
    RECEIVER = "receiver"
    REPORTER = "reporter"


class Direction(enum.Enum):
    """Money into or out of an organisation (:func:`money_where`)."""

    IN = "in"
    OUT = "out"


def ref_set(ref: str) -> Any:
    """SQL: every ref that denotes the organisation ``ref`` names: ``ref`` itself, its
    canonical organisation's identifiers, and the refs of the parties resolved to it."""
    from fundtrack.identity.tables import OrgIdentifier, PartyResolution

    oi, pr = OrgIdentifier.__table__, PartyResolution.__table__
    ids = org_ids(ref)
    return union(select(literal(ref).label("ref")),
                 select(oi.c.value).where(oi.c.org_id.in_(ids)),
                 select(pr.c.ref).where(pr.c.org_id.in_(ids), pr.c.ref != ""))


def refs(conn: Connection, ref: str) -> tuple[str, ...]:
    """The refs of :func:`ref_set`, ``ref`` first."""
    ref = ref.strip()
    found = sorted(r for r in conn.execute(select(ref_set(ref).subquery().c.ref)).scalars()
                   if r and r != ref)
    return (ref, *found)


def registry_row(conn: Connection, ref: str) -> Any:
    """The organisation registry's entry for ``ref`` (the exact ref first, then the
    canonical organisation's other refs), or None when the registry knows none of them."""
    o = m.Organisation.__table__
    ref = ref.strip()
    exact = conn.execute(select(o).where(o.c.ref == ref)).mappings().first()
    if exact is not None:
        return exact
    wanted = refs(conn, ref)
    rows = {r["ref"]: r for r in conn.execute(select(o).where(o.c.ref.in_(wanted))).mappings()}
    return next((rows[r] for r in wanted if r in rows), None)


def not_elsewhere(ref: str, ref_col: Any, name_col: Any) -> ColumnElement[bool]:
    """SQL: the party (``ref_col``, ``name_col``) as reported is not resolved to another
    organisation than ``ref``'s: a ref of the organisation put on another body, with that
    body's name (``XM-DAC-41141`` with "UN COVID-19 Response and Recovery Fund - MPTF"),
    is that body's, not this organisation's (issue 15, rule identifier+name)."""
    from fundtrack.identity.tables import PartyResolution

    pr = PartyResolution.__table__
    return ~exists(select(pr.c.id).where(
        pr.c.ref == func.coalesce(func.trim(ref_col), ""),
        pr.c.name_key == func.coalesce(func.substr(func.trim(name_col), 1, 300), ""),
        pr.c.org_id.not_in(org_ids(ref))))


def activities_query(ref: str) -> Select[Any]:
    """Current activities the organisation reports or is a participating organisation of
    (by any of its refs, unless that participant resolves to another organisation)."""
    a, p = m.Activity.__table__, m.ParticipatingOrg.__table__
    return select(a).where(current(a), or_(
        a.c.reporting_org_ref.in_(ref_set(ref)),
        a.c.id.in_(select(p.c.activity_id).where(
            p.c.ref.in_(ref_set(ref)), not_elsewhere(ref, p.c.ref, p.c.name)))))


#: flow_party's column for each role.
_PARTY = {"provider": "provider_org_id", "receiver": "receiver_org_id",
          "reporter": "reporter_org_id"}


def flow_role_where(ref: str, role: FlowRole) -> ColumnElement[bool]:
    """The flow's canonical ``role`` party is the organisation ``ref`` names."""
    return party_is(_PARTY[role.value], (ref.strip(),))


def flows_query(ref: str, role: FlowRole,
                where: ColumnElement[bool] | None = None) -> Select[Any]:
    """Current flows whose ``role`` is the organisation (and matching ``where``)."""
    f = m.Flow.__table__
    q = select(f).where(current(f), flow_role_where(ref, role))
    return q.where(where) if where is not None else q


def activity_flows_query(activity_pk: int, where: ColumnElement[bool] | None = None,
                         ) -> Select[Any]:
    """The flows reported in one version of an activity."""
    f = m.Flow.__table__
    q = select(f).where(f.c.activity_id == activity_pk)
    return q.where(where) if where is not None else q


def activity_budgets_query(activity_pk: int) -> Select[Any]:
    """The budgets and planned disbursements reported in one version of an activity."""
    b = m.Budget.__table__
    return select(b).where(b.c.activity_id == activity_pk)


def money_where(ref: str, direction: Direction) -> ColumnElement[bool]:
    """Flows of money into (IN) or out of (OUT) the organisation: it is the receiver
    (IN) or provider (OUT), however the report named it, or it reports a flow of an
    incoming (:data:`INCOMING`) or outgoing (:data:`OUTGOING`) kind that names no
    receiver or provider at all. Others' reports about it count too (a recipient's
    incoming funds from a donor are money out of the donor); each flow counts once.
    """
    f = m.Flow.__table__.c
    ref = ref.strip()
    role, ref_col, name_col, kinds = (
        ("receiver_org_id", f.receiver_ref, f.receiver_name, INCOMING)
        if direction is Direction.IN
        else ("provider_org_id", f.provider_ref, f.provider_name, OUTGOING))
    return or_(party_is(role, (ref,)),
               and_(party_is("reporter_org_id", (ref,)), ref_col.is_(None), name_col.is_(None),
                    f.kind.in_(kinds)))


def money_api_where(ref: str, direction: Direction) -> dict[str, Any]:
    """:func:`money_where` as a GraphQL ``FlowWhere``: anyone can check the page's figures
    with ``flowsAggregate(where: ..., groupBy: [YEAR, KIND, CURRENCY])``."""
    party, kinds = (("receiver", INCOMING) if direction is Direction.IN
                    else ("provider", OUTGOING))
    ref = ref.strip()
    return {"_or": [{party: {"ref": {"_eq": ref}}},
                    {"reportingOrg": {"ref": {"_eq": ref}}, f"{party}Ref": {"_is_null": True},
                     f"{party}Name": {"_is_null": True},
                     "kind": {"_in": [k.name for k in kinds]}}]}


@dataclass
class MoneyRow:
    """Flows of one direction, year, kind and currency: exact sums."""

    direction: Direction
    year: int | None
    kind: FlowKind
    currency: str | None
    count: int
    amount: Any
    amount_usd: Any
    count_without_usd: int


def money(conn: Connection, ref: str) -> dict[Direction, list[MoneyRow]]:
    """Money in and out by year (value date), kind and currency, latest year first."""
    dims = [FlowDimension.YEAR, FlowDimension.KIND, FlowDimension.CURRENCY]
    out: dict[Direction, list[MoneyRow]] = {}
    for d in Direction:
        stmt = aggregate_statement(money_where(ref, d), dims, conn.dialect.name)
        rows = [MoneyRow(direction=d, year=int(r["year"]) if r["year"] is not None else None,
                         kind=r["kind"] if isinstance(r["kind"], FlowKind) else FlowKind[r["kind"]],
                         currency=r["currency"], count=int(r["count"]), amount=r["sum"],
                         amount_usd=r["sum_usd"], count_without_usd=int(r["count_without_usd"]))
                for r in conn.execute(stmt).mappings()]
        rows.sort(key=lambda r: (-(r.year or 0), r.kind.value, r.currency or ""))
        out[d] = rows
    return out


@dataclass
class NameSeen:
    """A name the organisation goes by, where it was seen and how often."""

    name: str
    places: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.places.values())


def names_seen(conn: Connection, ref: str, org_refs: Sequence[str]) -> list[NameSeen]:
    """Every name the registry and reports give the organisation (by any of its refs
    ``org_refs``, or as a flow's resolved provider or receiver), most used first."""
    o, a = m.Organisation.__table__, m.Activity.__table__
    p, f = m.ParticipatingOrg.__table__, m.Flow.__table__
    parts = [
        select(o.c.name, func.count()).where(o.c.ref.in_(org_refs),
                                             not_elsewhere(ref, o.c.ref, o.c.name))
        .group_by(o.c.name),
        select(a.c.reporting_org_name, func.count()).where(
            current(a), a.c.reporting_org_ref.in_(org_refs)).group_by(a.c.reporting_org_name),
        select(p.c.name, func.count()).select_from(p.join(a, a.c.id == p.c.activity_id))
        .where(current(a), p.c.ref.in_(org_refs), not_elsewhere(ref, p.c.ref, p.c.name))
        .group_by(p.c.name),
        select(f.c.provider_name, func.count()).where(
            current(f), party_is("provider_org_id", (ref,))).group_by(f.c.provider_name),
        select(f.c.receiver_name, func.count()).where(
            current(f), party_is("receiver_org_id", (ref,))).group_by(f.c.receiver_name),
    ]
    places = ("registry", "reporting organisation", "participating organisation",
              "flow provider", "flow receiver")
    found: dict[str, NameSeen] = {}
    for place, stmt in zip(places, parts, strict=True):
        for name, n in conn.execute(stmt):
            text = " ".join((name or "").split())
            if text:
                entry = found.setdefault(text, NameSeen(text))
                entry.places[place] = entry.places.get(place, 0) + int(n)
    return sorted(found.values(), key=lambda s: (-s.count, s.name))


@dataclass
class ActivityLine:
    """An activity on the organisation page: how the organisation takes part in it."""

    iati_identifier: str
    title: str | None
    reporting_org_ref: str
    roles: list[str]


def activity_lines(conn: Connection, ref: str, org_refs: Sequence[str], limit: int = 50,
                   ) -> tuple[int, list[ActivityLine]]:
    """(how many, the first ``limit`` by identifier) of :func:`activities_query`;
    ``org_refs``: :func:`refs` of ``ref``."""
    a, p = m.Activity.__table__, m.ParticipatingOrg.__table__
    q = activities_query(ref)
    total = int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one())
    rows = list(conn.execute(q.order_by(a.c.iati_identifier, a.c.id).limit(limit)).mappings())
    roles: dict[int, set[str]] = defaultdict(set)
    ids = [r["id"] for r in rows]
    if ids:
        for aid, role in conn.execute(select(p.c.activity_id, p.c.role).where(
                p.c.activity_id.in_(ids), p.c.ref.in_(org_refs),
                not_elsewhere(ref, p.c.ref, p.c.name))):
            roles[aid].add(PARTICIPATION.get(role or "", f"role {role}" if role else "no role"))
    lines = []
    for r in rows:
        got = [f"participating: {', '.join(sorted(roles[r['id']]))}"] if roles[r["id"]] else []
        if r["reporting_org_ref"] in org_refs:
            got.insert(0, "reports it")
        lines.append(ActivityLine(r["iati_identifier"], r["title"], r["reporting_org_ref"], got))
    return total, lines


@dataclass
class OrganizationPage:
    """Everything the organisation page shows."""

    ref: str
    refs: tuple[str, ...]
    registry: Any
    canonical: Any
    merged_into: Any
    identifiers: list[Any]
    names: list[NameSeen]
    money: dict[Direction, list[MoneyRow]]
    filters: dict[Direction, dict[str, Any]]
    activity_count: int
    activities: list[ActivityLine]
    match_count: int
    matches: list[Any]
    decisions: list[Any]
    #: Why the stated rules suggest it as a women's rights organisation (None: they don't).
    wro_candidate: Any = None

    @property
    def name(self) -> str | None:
        """The canonical organisation's name (seeded names beat the first name a file
        gave the registry), else the registry's, else the name reports use most."""
        for row in (self.canonical, self.registry):
            text = " ".join(str((row or {}).get("name") or "").split())
            if text and text != (row or {}).get("ref"):
                return text
        return self.names[0].name if self.names else None


def page(conn: Connection, ref: str, limit: int = 50) -> OrganizationPage | None:
    """The organisation page's contents; None when nothing in the database names ``ref``
    (:func:`fundtrack.accounting.subject.known`)."""
    from fundtrack.accounting.subject import known
    from fundtrack.identity import wro
    from fundtrack.identity.tables import OrgDecision, PartyResolution
    from fundtrack.query import identity

    ref = ref.strip()
    if not known(conn, ref):
        return None
    org_refs = refs(conn, ref)
    count, lines = activity_lines(conn, ref, org_refs, limit)
    canon = identity.canonical(conn, ref)
    matches: list[Any] = []
    match_count, decisions, idents = 0, [], []
    if canon is not None:
        pr, d = PartyResolution.__table__, OrgDecision.__table__
        mq = identity.matches_query(canon["id"])
        match_count = int(conn.execute(select(func.count()).select_from(mq.subquery()))
                          .scalar_one())
        matches = list(conn.execute(mq.order_by(pr.c.rule, pr.c.ref, pr.c.name_key)
                                    .limit(limit)).mappings())
        decisions = list(conn.execute(identity.decisions_query(
            identity.keys_of(conn, canon), include_undone=True)
            .order_by(d.c.decided_at, d.c.id)).mappings())
        idents = identity.identifiers(conn, canon["id"])
    return OrganizationPage(
        ref=ref, refs=org_refs, registry=registry_row(conn, ref), canonical=canon,
        merged_into=identity.merged_into(conn, ref), identifiers=idents,
        names=names_seen(conn, ref, org_refs), money=money(conn, ref),
        filters={d: money_api_where(ref, d) for d in Direction},
        activity_count=count, activities=lines, match_count=match_count, matches=matches,
        decisions=decisions, wro_candidate=next(iter(wro.candidates(conn, ref)), None))
