"""One organisation and what it touches: the statements behind ``organization(ref:)``,
its connections (activities; flows as provider, receiver, reporter), ``Activity.flows``
and ``Activity.budgets``, and the organisation page (``/organization?ref=``).

Which refs are the organisation is :func:`fundtrack.accounting.subject.refs_of` (the one
place; canonical identities extend it). Everything here reads current rows only
(:func:`fundtrack.db.base.current`), except an activity's own flows and budgets, which
belong to that version of the activity whether it is current or not.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, or_, select

from fundtrack.accounting.subject import refs_of
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


def refs(ref: str) -> tuple[str, ...]:
    """The references that denote the organisation ``ref`` names."""
    return refs_of(ref.strip())


def registry_row(conn: Connection, ref: str) -> Any:
    """The organisation registry's entry for ``ref`` (the exact ref first, then any of
    its other refs), or None when the registry does not know it."""
    o = m.Organisation.__table__
    wanted = refs(ref)
    return conn.execute(select(o).where(o.c.ref.in_(wanted))
                        .order_by(case((o.c.ref == ref.strip(), 0), else_=1), o.c.id)
                        ).mappings().first()


def activities_query(org_refs: Sequence[str]) -> Select[Any]:
    """Current activities the organisation reports or is a participating organisation of."""
    a, p = m.Activity.__table__, m.ParticipatingOrg.__table__
    return select(a).where(current(a), or_(
        a.c.reporting_org_ref.in_(org_refs),
        a.c.id.in_(select(p.c.activity_id).where(p.c.ref.in_(org_refs)))))


def flow_role_where(org_refs: Sequence[str], role: FlowRole) -> ColumnElement[bool]:
    """The flow names the organisation at ``role`` (by ref, as reported)."""
    f = m.Flow.__table__.c
    col = {FlowRole.PROVIDER: f.provider_ref, FlowRole.RECEIVER: f.receiver_ref,
           FlowRole.REPORTER: f.reporting_org_ref}[role]
    return col.in_(org_refs)


def flows_query(org_refs: Sequence[str], role: FlowRole,
                where: ColumnElement[bool] | None = None) -> Select[Any]:
    """Current flows naming the organisation at ``role`` (and matching ``where``)."""
    f = m.Flow.__table__
    q = select(f).where(current(f), flow_role_where(org_refs, role))
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


def money_where(org_refs: Sequence[str], direction: Direction) -> ColumnElement[bool]:
    """Flows of money into (IN) or out of (OUT) the organisation, as reports name it:
    it is the receiver (IN) or provider (OUT), or it reports a flow of an incoming
    (:data:`INCOMING`) or outgoing (:data:`OUTGOING`) kind that names no receiver or
    provider. Others' reports about it count too (a recipient's incoming funds from a
    donor are money out of the donor); the page says who reported each figure.
    """
    f = m.Flow.__table__.c
    party, kinds = ((f.receiver_ref, INCOMING) if direction is Direction.IN
                    else (f.provider_ref, OUTGOING))
    return or_(party.in_(org_refs),
               and_(f.reporting_org_ref.in_(org_refs), party.is_(None), f.kind.in_(kinds)))


def money_api_where(org_refs: Sequence[str], direction: Direction) -> dict[str, Any]:
    """:func:`money_where` as a GraphQL ``FlowWhere``: anyone can check the page's figures
    with ``flowsAggregate(where: ..., groupBy: [YEAR, KIND, CURRENCY])``."""
    party, kinds = (("receiverRef", INCOMING) if direction is Direction.IN
                    else ("providerRef", OUTGOING))
    refs_list = list(org_refs)
    return {"_or": [{party: {"_in": refs_list}},
                    {"reportingOrgRef": {"_in": refs_list}, party: {"_is_null": True},
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


def money(conn: Connection, org_refs: Sequence[str]) -> dict[Direction, list[MoneyRow]]:
    """Money in and out by year (value date), kind and currency, latest year first."""
    dims = [FlowDimension.YEAR, FlowDimension.KIND, FlowDimension.CURRENCY]
    out: dict[Direction, list[MoneyRow]] = {}
    for d in Direction:
        stmt = aggregate_statement(money_where(org_refs, d), dims, conn.dialect.name)
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


def names_seen(conn: Connection, org_refs: Sequence[str]) -> list[NameSeen]:
    """Every name reports and the registry give the organisation's refs, most used first."""
    o, a = m.Organisation.__table__, m.Activity.__table__
    p, f = m.ParticipatingOrg.__table__, m.Flow.__table__
    parts = [
        select(o.c.name, func.count()).where(o.c.ref.in_(org_refs)).group_by(o.c.name),
        select(a.c.reporting_org_name, func.count()).where(
            current(a), a.c.reporting_org_ref.in_(org_refs)).group_by(a.c.reporting_org_name),
        select(p.c.name, func.count()).select_from(p.join(a, a.c.id == p.c.activity_id))
        .where(current(a), p.c.ref.in_(org_refs)).group_by(p.c.name),
        select(f.c.provider_name, func.count()).where(
            current(f), f.c.provider_ref.in_(org_refs)).group_by(f.c.provider_name),
        select(f.c.receiver_name, func.count()).where(
            current(f), f.c.receiver_ref.in_(org_refs)).group_by(f.c.receiver_name),
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


def activity_lines(conn: Connection, org_refs: Sequence[str], limit: int = 50,
                   ) -> tuple[int, list[ActivityLine]]:
    """(how many, the first ``limit`` by identifier) of :func:`activities_query`."""
    a, p = m.Activity.__table__, m.ParticipatingOrg.__table__
    q = activities_query(org_refs)
    total = int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one())
    rows = list(conn.execute(q.order_by(a.c.iati_identifier, a.c.id).limit(limit)).mappings())
    roles: dict[int, set[str]] = defaultdict(set)
    ids = [r["id"] for r in rows]
    if ids:
        for aid, role in conn.execute(select(p.c.activity_id, p.c.role).where(
                p.c.activity_id.in_(ids), p.c.ref.in_(org_refs))):
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
    names: list[NameSeen]
    money: dict[Direction, list[MoneyRow]]
    filters: dict[Direction, dict[str, Any]]
    activity_count: int
    activities: list[ActivityLine]

    @property
    def name(self) -> str | None:
        if self.registry is not None and (self.registry["name"] or "").strip():
            return str(self.registry["name"]).strip()
        return self.names[0].name if self.names else None


def page(conn: Connection, ref: str) -> OrganizationPage | None:
    """The organisation page's contents; None when nothing in the database names ``ref``
    (:func:`fundtrack.accounting.subject.known`)."""
    from fundtrack.accounting.subject import known

    ref = ref.strip()
    if not known(conn, ref):
        return None
    org_refs = refs(ref)
    count, lines = activity_lines(conn, org_refs)
    return OrganizationPage(
        ref=ref, refs=org_refs, registry=registry_row(conn, ref),
        names=names_seen(conn, org_refs), money=money(conn, org_refs),
        filters={d: money_api_where(org_refs, d) for d in Direction},
        activity_count=count, activities=lines)
