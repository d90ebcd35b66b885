"""Whose figures a card counts: the one place that says which flows are an organisation's own.

A donor's card counts the donor's OWN reports: flows it reports itself, as the provider
or with no provider named. Flows that other organisations report naming it as provider
(an NGO's onward disbursement "from FCDO", a fund administrator's report for the fund)
are a separate, labelled figure, never added in. When organisation identity (issue 15)
gives canonical ids, :func:`refs_of` is where an organisation's several references are
gathered; everything else asks these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, false, func, not_, or_, select

from fundtrack.accounting.items import year_between
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.records import FlowKind


class UnknownOrganisation(LookupError):
    """No organisation, fund or report names this reference."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no such organisation: {ref!r} (no organisation, pooled fund or "
                         "report in this database names it)")


def refs_of(org: str) -> tuple[str, ...]:
    """The references that denote ``org`` as a string (the ref itself): where rows hold
    refs as reported, the canonical organisation is matched by :func:`party_is` (flows)
    or :func:`denotes` (refs the trail and registries hold)."""
    return (org,)


def org_ids(org: str) -> Any:
    """SQL: the id of the canonical organisation (issue 15) that ``org`` denotes, by its
    canonical ref or any of its identifiers."""
    from fundtrack.identity.tables import CanonicalOrg, OrgIdentifier

    co, oi = CanonicalOrg.__table__, OrgIdentifier.__table__
    return select(co.c.id).where(or_(co.c.ref == org, co.c.id.in_(
        select(oi.c.org_id).where(oi.c.value == org))))


def party_is(role: str, orgs: Iterable[str]) -> ColumnElement[bool]:
    """SQL: the flow's canonical ``role`` (provider_org_id, receiver_org_id,
    reporter_org_id of ``flow_party``) is one of ``orgs``'s organisations; a flow the
    identity step has not resolved matches by its reported ref."""
    from fundtrack.identity.tables import FlowParty

    fp, f = FlowParty.__table__.alias("fp_subject"), m.Flow.__table__.c
    raw = {"provider_org_id": f.provider_ref, "receiver_org_id": f.receiver_ref,
           "reporter_org_id": f.reporting_org_ref}[role]
    orgs = tuple(orgs)
    ids = [org_ids(o) for o in orgs]
    resolved = exists(select(fp.c.flow_id).where(fp.c.flow_id == f.id))
    return or_(exists(select(fp.c.flow_id).where(
        fp.c.flow_id == f.id, or_(false(), *[fp.c[role].in_(i) for i in ids]))),
        and_(raw.in_(orgs), not_(resolved)))


def denotes(col: Any, org: str) -> ColumnElement[bool]:
    """SQL: ``col`` (a ref the money trail or a registry holds) is ``org`` or another
    ref of the same canonical organisation."""
    from fundtrack.identity.tables import CanonicalOrg, OrgIdentifier

    co, oi = CanonicalOrg.__table__, OrgIdentifier.__table__
    return or_(col == org, col.in_(select(co.c.ref).where(co.c.id.in_(org_ids(org)))),
               col.in_(select(oi.c.value).where(oi.c.org_id.in_(org_ids(org)))))


#: Publishers that republish what others reported, each with the ``extra`` key naming who
#: reported a flow to it. FTS (``XM-OCHA-FTS``) is every FTS flow's reporting org; its
#: ``reportDetails`` say whether the donor itself ("Primary" report by the source
#: organisation) or a recipient reported the flow.
AGGREGATORS = {"XM-OCHA-FTS": "reported_by"}


def own_reports(org: str | Iterable[str] | None,
                kinds: tuple[FlowKind, ...] | None = None) -> ColumnElement[bool]:
    """SQL for the candidates of ``org``'s own reports of its own money: it is the
    reporting organisation and the provider (or no provider is named), or an aggregator
    reports the flow with ``org`` as provider. :func:`is_own` decides the aggregator's
    flows. ``org`` None: every organisation's (for league tables)."""
    f = m.Flow.__table__.c
    refs = None if org is None else (
        refs_of(org) if isinstance(org, str) else tuple(r for o in org for r in refs_of(o)))
    mine = and_(f.reporting_org_ref.is_not(None),
                or_(f.provider_ref == f.reporting_org_ref, f.provider_ref.is_(None)))
    via = and_(f.reporting_org_ref.in_(tuple(AGGREGATORS)), f.provider_ref.is_not(None))
    if refs is not None:  # by canonical organisation (issue 15)
        mine = and_(f.reporting_org_ref.is_not(None), party_is("reporter_org_id", refs),
                    or_(f.provider_ref.is_(None), f.provider_ref == f.reporting_org_ref,
                        party_is("provider_org_id", refs)))
        via = and_(via, party_is("provider_org_id", refs))
    clause = or_(mine, via)
    return and_(clause, f.kind.in_(kinds)) if kinds is not None else clause


def _reporter_named(extra: dict[str, Any] | None, key: str) -> str:
    return str((extra or {}).get(key) or "").split(";")[0].strip().casefold()


def owner(reporting_org_ref: str | None, provider_ref: str | None,
          provider_name: str | None, extra: dict[str, Any] | None) -> str | None:
    """The organisation whose own report this flow is, or None when it is someone else's
    report about it (a recipient's report that an aggregator republished)."""
    key = AGGREGATORS.get(reporting_org_ref or "")
    if key is None:
        if provider_ref is None or provider_ref == reporting_org_ref:
            return reporting_org_ref
        return None
    named = _reporter_named(extra, key)
    return provider_ref if named and named == (provider_name or "").strip().casefold() else None


def reporter_label(reporting_org_ref: str | None, extra: dict[str, Any] | None) -> str:
    """Who reported a flow, in words: the reporting org, and for an aggregator whom it
    says reported the flow to it."""
    key = AGGREGATORS.get(reporting_org_ref or "")
    named = str((extra or {}).get(key) or "").split(";")[0].strip() if key else ""
    return f"{named} (via {reporting_org_ref})" if named else (reporting_org_ref or "?")


def item_owner(it: Any) -> str | None:
    """:func:`owner` of an accounting Item."""
    return owner(it.reporting_org_ref, it.provider_ref, it.provider_name, it.extra)


def reported_by_others(org: str | None, kinds: tuple[FlowKind, ...]) -> ColumnElement[bool]:
    """SQL for the candidates of flows other organisations report naming ``org`` as the
    provider (``org`` None: any provider): a separate measure, never counted as the
    organisation's own. Rows whose :func:`item_owner` is the provider are left out."""
    f = m.Flow.__table__.c
    conds = [f.kind.in_(kinds), f.provider_ref.is_not(None),
             or_(f.reporting_org_ref.is_(None), f.reporting_org_ref != f.provider_ref)]
    if org is not None:
        conds.append(party_is("provider_org_id", refs_of(org)))
        conds.append(not_(party_is("reporter_org_id", refs_of(org))))
    return and_(*conds)


def in_year(year: int) -> ColumnElement[bool]:
    return year_between(m.Flow.__table__.c.value_date, year)


def api_filter(org: str, year: int, kind: FlowKind) -> dict[str, Any]:
    """:func:`own_reports` of one kind in ``year`` as a GraphQL ``FlowWhere``, so anyone
    can reconcile a card with ``flowsAggregate``. (An aggregator's flows are candidates
    here; the card keeps those FTS says the provider reported itself: the card's note
    says how many it left out.)"""
    refs = list(refs_of(org))
    # provider/reportingOrg mean the canonical organisation, whatever ref a report used
    return {"kind": {"_eq": kind.name},
            "valueDate": {"_gte": f"{year}-01-01", "_lte": f"{year}-12-31"},
            "_or": [{"reportingOrg": {"ref": {"_in": refs}},
                     "_or": [{"provider": {"ref": {"_in": refs}}},
                             {"providerRef": {"_is_null": True}}]},
                    {"reportingOrgRef": {"_in": list(AGGREGATORS)},
                     "provider": {"ref": {"_in": refs}}}]}


def known(conn: Connection, ref: str) -> bool:
    """Whether anything in the database names ``ref``: the organisation registry, the
    fund registry, or a current flow as reporter, provider or receiver."""
    from fundtrack.derived.trail.tables import Fund

    o = m.Organisation.__table__
    f = m.Flow.__table__
    refs = refs_of(ref)
    if conn.execute(select(o.c.id).where(o.c.ref.in_(refs)).limit(1)).first():
        return True
    if conn.execute(org_ids(ref).limit(1)).first():  # any identifier of a canonical one
        return True
    if conn.execute(select(Fund.id).where(Fund.organisation_ref.in_(refs)).limit(1)).first():
        return True
    for col in (f.c.reporting_org_ref, f.c.provider_ref, f.c.receiver_ref):
        if conn.execute(select(f.c.id).where(current(f), col.in_(refs)).limit(1)).first():
            return True
    return False


def require_known(conn: Connection, ref: str) -> None:
    if not known(conn, ref):
        raise UnknownOrganisation(ref)


#: The kinds a card's year can rest on: the subject's own money going out.
CARD_KINDS = (FlowKind.DISBURSEMENT, FlowKind.OUTGOING_COMMITMENT, FlowKind.OUTGOING_PLEDGE)


def years_with_data(conn: Connection, org: str | None = None) -> list[int]:
    """Calendar years (latest first) in which ``org`` (None: anyone) reports its own
    disbursements, commitments or pledges: the years a card can say something about."""
    f = m.Flow.__table__
    year = func.extract("year", f.c.value_date) if conn.dialect.name != "sqlite" else \
        func.strftime("%Y", f.c.value_date)
    q = (select(year).distinct().where(current(f), own_reports(org, CARD_KINDS),
                                       f.c.value_date.is_not(None)))
    return sorted({int(r[0]) for r in conn.execute(q) if r[0] is not None}, reverse=True)


def latest_year(conn: Connection, org: str | None = None) -> int:
    """The latest year with data for ``org`` (a page's default); last year when none."""
    years = years_with_data(conn, org)
    return years[0] if years else date.today().year - 1
