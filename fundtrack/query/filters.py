"""Flow, activity, organisation, budget and batch filters compiled to SQL, and ordering.

No GraphQL types here: a filter is any object with the attributes of the API's ``where``
inputs (``fundtrack.api.filters`` declares them for GraphQL; :class:`Where` builds one in
Python for the pages and exports), unset attributes being None. Every operator maps to one
SQL operator with SQL's null semantics (``_neq: "X"`` does not match nulls; use
``_is_null``). Filters through relations compile to ``EXISTS``/``IN`` subqueries, so
filtering and sorting always happen in the database.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    exists,
    false,
    not_,
    or_,
    select,
    true,
)

from fundtrack.ledger import tables as m
from fundtrack.money import money_number
from fundtrack.query.errors import input_error
from fundtrack.query.search import activity_search
from fundtrack.query.vocabulary import (
    GENDER_CODE,
    GENDER_STORED,
    GENDER_VOCABULARY,
    VALID_SIGNIFICANCE,
)


class Where(SimpleNamespace):
    """A filter or comparison built in Python: ``Where(kind=Where(in_=[...]))``.

    Reads like the GraphQL input of the same shape; attributes not given are None.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def _no_nul(cmp: Any) -> None:
    """Refuse NUL characters: no stored text holds one, and PostgreSQL rejects them in a
    query (that was a server error, found by tests/test_api_fuzz.py)."""
    for v in vars(cmp).values():
        for x in v if isinstance(v, list) else (v,):
            if isinstance(x, str) and "\x00" in x:
                raise input_error("filter values must not contain the NUL character (\\u0000)")


def compare(col: Any, cmp: Any) -> ColumnElement[bool]:
    """All conditions of one comparison input on one column, ANDed."""
    if cmp is None:
        return true()
    _no_nul(cmp)
    conds: list[ColumnElement[bool]] = []
    v = cmp.eq
    if v is not None:
        conds.append(col == v)
    if cmp.neq is not None:
        conds.append(col != cmp.neq)
    if cmp.in_ is not None:
        conds.append(col.in_(cmp.in_))
    if cmp.nin is not None:
        conds.append(col.not_in(cmp.nin))
    for attr, op in (("gt", "__gt__"), ("gte", "__ge__"), ("lt", "__lt__"), ("lte", "__le__")):
        val = getattr(cmp, attr, None)
        if val is not None:
            conds.append(getattr(col, op)(val))
    if cmp.is_null is not None:
        conds.append(col.is_(None) if cmp.is_null else col.is_not(None))
    if getattr(cmp, "ilike", None) is not None:
        conds.append(col.ilike(cmp.ilike))
    return and_(true(), *conds)


def compare_int_set(col: Any, cmp: Any, universe: Sequence[int]) -> ColumnElement[bool]:
    """An int comparison on a text code column holding small numbers (e.g. significance).

    Turned into ``col IN (the codes that satisfy it)`` so dirty values ('', 'x') never
    reach a cast, on either database.
    """
    return col.in_([str(x) for x in universe if accepts(cmp, x)])


def accepts(cmp: Any, x: int) -> bool:
    """Whether the number ``x`` satisfies an int comparison (null checks aside)."""
    checks = [
        (cmp.eq, lambda v: x == v), (cmp.neq, lambda v: x != v),
        (cmp.in_, lambda v: x in v), (cmp.nin, lambda v: x not in v),
        (cmp.gt, lambda v: x > v), (cmp.gte, lambda v: x >= v),
        (cmp.lt, lambda v: x < v), (cmp.lte, lambda v: x <= v),
    ]
    return all(fn(v) for v, fn in checks if v is not None)


def _logic(w: Any, fn: Callable[[Any], ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if w.and_:
        conds.append(and_(true(), *[fn(x) for x in w.and_]))
    if w.or_ is not None:
        conds.append(or_(false(), *[fn(x) for x in w.or_]))
    if w.not_ is not None:
        conds.append(not_(fn(w.not_)))
    return conds


def _fields(w: Any, columns: dict[str, Any]) -> list[ColumnElement[bool]]:
    return [compare(col, getattr(w, attr)) for attr, col in columns.items()
            if getattr(w, attr) is not None]


def organization_where(w: Any) -> ColumnElement[bool]:
    if w is None:
        return true()
    o = m.Organisation.__table__.c
    return and_(true(), *_logic(w, organization_where), *_fields(w, {
        "ref": o.ref, "name": o.name, "type": o.type, "country": o.country,
        "is_womens_rights_org": o.is_womens_rights_org, "is_pooled_fund": o.is_pooled_fund}))


def org_matches(ref_col: Any, w: Any) -> ColumnElement[bool]:
    o = m.Organisation.__table__
    return exists(select(o.c.id).where(o.c.ref == ref_col, organization_where(w)))


def canonical_org_where(w: Any) -> ColumnElement[bool]:
    """An organisation filter on canonical organisations (issue 15): ``ref`` matches the
    canonical ref or any of its identifiers (``XM-DAC-41141``, ``11363``, ``FTS-ORG-4762``);
    the other fields are the canonical organisation's."""
    from fundtrack.identity.tables import CanonicalOrg, OrgIdentifier

    if w is None:
        return true()
    c, oi = CanonicalOrg.__table__.c, OrgIdentifier.__table__
    conds = [*_logic(w, canonical_org_where), *_fields(w, {
        "name": c.name, "type": c.type, "country": c.country,
        "is_womens_rights_org": c.is_womens_rights_org, "is_pooled_fund": c.is_pooled_fund})]
    if w.ref is not None:
        conds.append(or_(compare(c.ref, w.ref), exists(select(oi.c.id).where(
            oi.c.org_id == c.id, compare(oi.c.value, w.ref)))))
    return and_(true(), *conds)


#: flow_party's column for each organisation role of a flow filter.
PARTY_COLUMNS = {"provider": "provider_org_id", "receiver": "receiver_org_id",
                 "reporting_org": "reporter_org_id"}


def party_matches(flow_id: Any, role: str, w: Any) -> ColumnElement[bool]:
    """The flow's canonical ``role`` organisation (``flow_party``) matches ``w``."""
    from fundtrack.identity.tables import CanonicalOrg, FlowParty

    # an alias: a grouped statement joins flow_party itself, and must not correlate here
    fp, co = FlowParty.__table__.alias("fp_where"), CanonicalOrg.__table__
    col = fp.c[PARTY_COLUMNS[role]]
    return exists(select(fp.c.flow_id).where(
        fp.c.flow_id == flow_id, col.in_(select(co.c.id).where(canonical_org_where(w)))))


def reporter_matches(ref_col: Any, w: Any) -> ColumnElement[bool]:
    """A reporting org ref (activities carry no canonical id) whose canonical
    organisation matches ``w``: through the reporters' resolutions (``party_resolution``
    rows with no name)."""
    from fundtrack.identity.tables import CanonicalOrg, PartyResolution

    pr, co = PartyResolution.__table__, CanonicalOrg.__table__
    return ref_col.in_(select(pr.c.ref).where(
        pr.c.name_key == "", pr.c.org_id.in_(select(co.c.id).where(canonical_org_where(w)))))


def _child_exists(table: Table, activity_id: Any, *conds: ColumnElement[bool]) -> Any:
    return exists(select(table.c.id).where(table.c.activity_id == activity_id, *conds))


def gender_condition(activity_id: Any, cmp: Any) -> ColumnElement[bool]:
    """Activity's DAC gender marker compared as a number; `_is_null` = no readable marker."""
    pm = m.Base.metadata.tables["policy_marker"]
    base = (pm.c.vocabulary == GENDER_VOCABULARY, pm.c.code == GENDER_CODE)
    conds: list[ColumnElement[bool]] = []
    if cmp.is_null is not None:
        has = _child_exists(pm, activity_id, *base, pm.c.significance.in_(VALID_SIGNIFICANCE))
        conds.append(not_(has) if cmp.is_null else has)
    if any(getattr(cmp, a) is not None for a in ("eq", "neq", "in_", "nin", "gt", "gte", "lt",
                                                  "lte")):
        conds.append(_child_exists(pm, activity_id, *base, compare_int_set(
            pm.c.significance, cmp, [int(v) for v in VALID_SIGNIFICANCE])))
    return and_(true(), *conds)


def activity_where(w: Any, table: Any = None) -> ColumnElement[bool]:
    if w is None:
        return true()
    a = (table if table is not None else m.Activity.__table__).c
    t = m.Base.metadata.tables
    conds = [*_logic(w, lambda x: activity_where(x, table)), *_fields(w, {
        "iati_identifier": a.iati_identifier, "reporting_org_ref": a.reporting_org_ref,
        "title": a.title, "description": a.description, "status": a.status,
        "default_currency": a.default_currency, "humanitarian": a.humanitarian,
        "start_planned": a.start_planned, "start_actual": a.start_actual,
        "end_planned": a.end_planned, "end_actual": a.end_actual})]
    if w.reporting_org is not None:
        conds.append(reporter_matches(a.reporting_org_ref, w.reporting_org))
    if w.sector is not None:
        s = t["activity_sector"]
        conds.append(_child_exists(s, a.id, compare(s.c.vocabulary, w.sector.vocabulary),
                                   compare(s.c.code, w.sector.code),
                                   compare(money_number(s.c.percentage), w.sector.percentage)))
    if w.recipient_country is not None:
        c = t["activity_country"]
        conds.append(_child_exists(c, a.id, compare(c.c.code, w.recipient_country)))
    if w.policy_marker is not None:
        pm, pw = t["policy_marker"], w.policy_marker
        conds.append(_child_exists(pm, a.id, compare(pm.c.vocabulary, pw.vocabulary),
                                   compare(pm.c.code, pw.code),
                                   compare(pm.c.significance, pw.significance)))
    if w.gender_significance is not None:
        conds.append(gender_condition(a.id, w.gender_significance))
    if w.participating_org is not None:
        p, pw2 = t["participating_org"], w.participating_org
        conds.append(_child_exists(p, a.id, compare(p.c.ref, pw2.ref),
                                   compare(p.c.name, pw2.name), compare(p.c.role, pw2.role),
                                   compare(p.c.type, pw2.type)))
    if w.search is not None:
        if "\x00" in w.search:
            raise input_error("`search` must not contain the NUL character (\\u0000)")
        conds.append(activity_search(w.search, table))
    return and_(true(), *conds)


def _classified(flow_id: Any, dimensions: list[str]) -> ColumnElement[bool]:
    """The flow is in one of these dimensions (stored table ``flow_classification``)."""
    from fundtrack.accounting.tables import FlowClassification

    t = FlowClassification.__table__
    return exists(select(t.c.flow_id).where(t.c.flow_id == flow_id,
                                            t.c.dimension.in_(dimensions), t.c.is_in))


def flow_gender_condition(flow_id: Any, cmp: Any) -> ColumnElement[bool]:
    """The flow's gender value on the common scale as a DAC number (principal 2,
    significant 1, not targeted 0; ``_is_null``: not screened). Read from the stored
    crosswalk value (the flow's own marker, else its activity's; hand decisions applied),
    the one ``genderSummary`` counts."""
    from fundtrack.accounting.tables import FlowClassification

    t = FlowClassification.__table__
    conds: list[ColumnElement[bool]] = []
    if cmp.is_null is not None:
        has = exists(select(t.c.flow_id).where(t.c.flow_id == flow_id,
                                               t.c.dimension.in_(list(GENDER_STORED)), t.c.is_in))
        conds.append(not_(has) if cmp.is_null else has)
    if any(getattr(cmp, a) is not None for a in ("eq", "neq", "in_", "nin", "gt", "gte", "lt",
                                                  "lte")):
        ok = [d for d, n in GENDER_STORED.items() if accepts(cmp, n)]
        conds.append(exists(select(t.c.flow_id).where(t.c.flow_id == flow_id,
                                                      t.c.dimension.in_(ok), t.c.is_in))
                     if ok else false())
    return and_(true(), *conds)


def pillar_condition(flow_id: Any, cmp: Any) -> ColumnElement[bool]:
    _no_nul(cmp)
    conds: list[ColumnElement[bool]] = []
    if cmp.eq is not None:
        conds.append(_classified(flow_id, [f"pillar:{cmp.eq}"]))
    if cmp.in_ is not None:
        conds.append(_classified(flow_id, [f"pillar:{p}" for p in cmp.in_]) if cmp.in_
                     else false())
    return and_(true(), *conds)


def scope_condition(flow_id: Any, in_scope: bool) -> ColumnElement[bool]:
    has = _classified(flow_id, ["scope"])
    return has if in_scope else not_(has)


def mirror_condition(flow_id: Any, is_mirror: bool) -> ColumnElement[bool]:
    """The flow is the second report of money another flow already reports (a recipient's
    incoming funds matched to the donor's disbursement, see docs/methodology.md)."""
    from fundtrack.derived.trail.tables import Movement

    mv = Movement.__table__
    has = exists(select(mv.c.id).where(mv.c.mirror_flow_id == flow_id))
    return has if is_mirror else not_(has)


def flow_where(w: Any) -> ColumnElement[bool]:
    if w is None:
        return true()
    f = m.Flow.__table__.c
    conds = [*_logic(w, flow_where), *_fields(w, {
        "kind": f.kind, "currency": f.currency, "value_date": f.value_date,
        "transaction_date": f.transaction_date, "reporting_org_ref": f.reporting_org_ref,
        "provider_ref": f.provider_ref, "provider_name": f.provider_name,
        "receiver_ref": f.receiver_ref, "receiver_name": f.receiver_name,
        "sector_code": f.sector_code, "recipient_country": f.recipient_country,
        "recipient_region": f.recipient_region, "aid_type": f.aid_type,
        "flow_type": f.flow_type, "finance_type": f.finance_type,
        "earmarking": f.earmarking, "humanitarian": f.humanitarian,
        "amount": money_number(f.amount), "amount_usd": money_number(f.amount_usd)})]
    for attr in PARTY_COLUMNS:  # the canonical organisation, however the report named it
        if getattr(w, attr) is not None:
            conds.append(party_matches(f.id, attr, getattr(w, attr)))
    if w.activity is not None:
        a = m.Activity.__table__
        conds.append(f.activity_id.in_(select(a.c.id).where(activity_where(w.activity))))
    if w.gender_significance is not None:
        conds.append(flow_gender_condition(f.id, w.gender_significance))
    if w.pillar is not None:
        conds.append(pillar_condition(f.id, w.pillar))
    if w.in_scope is not None:
        conds.append(scope_condition(f.id, w.in_scope))
    if w.is_mirror is not None:
        conds.append(mirror_condition(f.id, w.is_mirror))
    return and_(true(), *conds)


def budget_where(w: Any) -> ColumnElement[bool]:
    if w is None:
        return true()
    b = m.Budget.__table__.c
    conds = [*_logic(w, budget_where), *_fields(w, {
        "kind": b.kind, "organisation_ref": b.organisation_ref, "currency": b.currency,
        "recipient_country": b.recipient_country, "period_start": b.period_start,
        "period_end": b.period_end})]
    if w.activity is not None:
        a = m.Activity.__table__
        conds.append(b.activity_id.in_(select(a.c.id).where(activity_where(w.activity))))
    return and_(true(), *conds)


def import_batch_where(w: Any) -> ColumnElement[bool]:
    if w is None:
        return true()
    b = m.ImportBatch.__table__.c
    return and_(true(), *_logic(w, import_batch_where), *_fields(w, {
        "status": b.status, "importer": b.importer, "file_name": b.file_name,
        "publisher_ref": b.publisher_ref, "sha256": b.sha256}))


class Direction(enum.Enum):
    ASC = "asc"
    DESC = "desc"


_MONEY_COLUMNS = {"amount", "amount_usd"}


def order_key(keys: list[Any] | None) -> tuple[tuple[str, str], ...]:
    """All that :func:`order` takes from the client's keys, hashable (a statement cache key)."""
    return tuple((k.field.value, k.direction.value) for k in keys or [])


def order(keys: list[Any] | None, table: Table, default: str) -> list[Any]:
    """ORDER BY for the given keys (nulls last), always ending with the primary key."""
    out: list[Any] = []
    if not keys:
        out.append(table.c[default].asc().nulls_last())
    for k in keys or []:
        col: Any = table.c[k.field.value]
        if k.field.value in _MONEY_COLUMNS:
            col = money_number(col)
        out.append((col.desc() if k.direction is Direction.DESC else col.asc()).nulls_last())
    out.append(table.c.id.desc() if keys and keys[-1].direction is Direction.DESC
               else table.c.id.asc())
    return out

