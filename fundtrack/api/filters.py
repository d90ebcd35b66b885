"""Typed ``where`` filters (Hasura style) and ``orderBy``, compiled to SQL expressions.

Every operator maps to one SQL operator with SQL's null semantics (``_neq: "X"`` does not
match nulls; use ``_is_null``). Filters through relations compile to ``EXISTS``/``IN``
subqueries, so filtering and sorting always happen in the database.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Optional

import strawberry
from graphql import GraphQLError
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

from fundtrack import models as m
from fundtrack.api.types import GENDER_CODE, GENDER_VOCABULARY, VALID_SIGNIFICANCE, FlowKind
from fundtrack.money import money_number

_OPS = {
    "eq": ("_eq", "equal to"), "neq": ("_neq", "not equal to (nulls never match)"),
    "in_": ("_in", "one of"), "nin": ("_nin", "none of"),
    "gt": ("_gt", "greater than"), "gte": ("_gte", "greater than or equal to"),
    "lt": ("_lt", "less than"), "lte": ("_lte", "less than or equal to"),
}


def _comparison(name: str, py_type: Any, *, ordered: bool = True, text: bool = False) -> Any:
    """Build a ``<Type>Comparison`` input with the Hasura operators that make sense for it."""
    ann: dict[str, Any] = {}
    ns: dict[str, Any] = {}
    for attr, (gql, desc) in _OPS.items():
        if not ordered and attr in ("gt", "gte", "lt", "lte"):
            continue
        ann[attr] = Optional[list[py_type]] if attr in ("in_", "nin") else Optional[py_type]  # noqa: UP045
        ns[attr] = strawberry.field(name=gql, default=None, description=desc)
    ann["is_null"] = Optional[bool]  # noqa: UP045
    ns["is_null"] = strawberry.field(name="_is_null", default=None,
                                     description="true: value missing; false: value present")
    if text:
        ann["ilike"] = Optional[str]  # noqa: UP045
        ns["ilike"] = strawberry.field(
            name="_ilike", default=None,
            description="case-insensitive SQL LIKE pattern: % any run, _ one character")
    ns["__annotations__"] = ann
    return strawberry.input(type(name, (), ns), description=f"Conditions on a {py_type.__name__} "
                            "value; all given conditions must hold.")


StringComparison = _comparison("StringComparison", str, text=True)
IntComparison = _comparison("IntComparison", int)
DecimalComparison = _comparison("DecimalComparison", Decimal)
DateComparison = _comparison("DateComparison", date)
BooleanComparison = _comparison("BooleanComparison", bool, ordered=False)
FlowKindComparison = _comparison("FlowKindComparison", FlowKind, ordered=False)


def _no_nul(cmp: Any) -> None:
    """Refuse NUL characters: no stored text holds one, and PostgreSQL rejects them in a
    query (that was a server error, found by tests/test_api_fuzz.py)."""
    for v in vars(cmp).values():
        for x in v if isinstance(v, list) else (v,):
            if isinstance(x, str) and "\x00" in x:
                raise GraphQLError("filter values must not contain the NUL character (\\u0000)")


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
    def ok(x: int) -> bool:
        checks = [
            (cmp.eq, lambda v: x == v), (cmp.neq, lambda v: x != v),
            (cmp.in_, lambda v: x in v), (cmp.nin, lambda v: x not in v),
            (cmp.gt, lambda v: x > v), (cmp.gte, lambda v: x >= v),
            (cmp.lt, lambda v: x < v), (cmp.lte, lambda v: x <= v),
        ]
        return all(fn(v) for v, fn in checks if v is not None)

    return col.in_([str(x) for x in universe if ok(x)])


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


def _logic_fields(cls: Any) -> Any:
    """Add ``_and``, ``_or``, ``_not`` to a where input class (before strawberry.input)."""
    name = cls.__name__
    cls.__annotations__ = {
        "and_": f"Optional[list[{name}]]", "or_": f"Optional[list[{name}]]",
        "not_": f"Optional[{name}]", **cls.__annotations__}
    cls.and_ = strawberry.field(name="_and", default=None, description="all of these hold")
    cls.or_ = strawberry.field(name="_or", default=None, description="at least one holds")
    cls.not_ = strawberry.field(name="_not", default=None, description="this does not hold")
    return strawberry.input(cls)


# --- organisations --------------------------------------------------------------------

@_logic_fields
class OrganizationWhere:
    ref: Optional[StringComparison] = None  # noqa: UP045
    name: Optional[StringComparison] = None  # noqa: UP045
    type: Optional[StringComparison] = None  # noqa: UP045
    country: Optional[StringComparison] = None  # noqa: UP045
    is_womens_rights_org: Optional[BooleanComparison] = None  # noqa: UP045
    is_pooled_fund: Optional[BooleanComparison] = None  # noqa: UP045


def organization_where(w: OrganizationWhere | None) -> ColumnElement[bool]:
    if w is None:
        return true()
    o = m.Organisation.__table__.c
    return and_(true(), *_logic(w, organization_where), *_fields(w, {
        "ref": o.ref, "name": o.name, "type": o.type, "country": o.country,
        "is_womens_rights_org": o.is_womens_rights_org, "is_pooled_fund": o.is_pooled_fund}))


def org_matches(ref_col: Any, w: OrganizationWhere) -> ColumnElement[bool]:
    o = m.Organisation.__table__
    return exists(select(o.c.id).where(o.c.ref == ref_col, organization_where(w)))


# --- activities -----------------------------------------------------------------------

@strawberry.input
class SectorWhere:
    vocabulary: Optional[StringComparison] = None  # noqa: UP045
    code: Optional[StringComparison] = None  # noqa: UP045
    percentage: Optional[DecimalComparison] = None  # noqa: UP045


@strawberry.input
class PolicyMarkerWhere:
    vocabulary: Optional[StringComparison] = None  # noqa: UP045
    code: Optional[StringComparison] = None  # noqa: UP045
    significance: Optional[StringComparison] = None  # noqa: UP045


@strawberry.input
class ParticipatingOrgWhere:
    ref: Optional[StringComparison] = None  # noqa: UP045
    name: Optional[StringComparison] = None  # noqa: UP045
    role: Optional[StringComparison] = None  # noqa: UP045
    type: Optional[StringComparison] = None  # noqa: UP045


@_logic_fields
class ActivityWhere:
    iati_identifier: Optional[StringComparison] = None  # noqa: UP045
    reporting_org_ref: Optional[StringComparison] = None  # noqa: UP045
    reporting_org: Optional[OrganizationWhere] = None  # noqa: UP045
    title: Optional[StringComparison] = None  # noqa: UP045
    description: Optional[StringComparison] = None  # noqa: UP045
    status: Optional[StringComparison] = None  # noqa: UP045
    default_currency: Optional[StringComparison] = None  # noqa: UP045
    humanitarian: Optional[BooleanComparison] = None  # noqa: UP045
    start_planned: Optional[DateComparison] = None  # noqa: UP045
    start_actual: Optional[DateComparison] = None  # noqa: UP045
    end_planned: Optional[DateComparison] = None  # noqa: UP045
    end_actual: Optional[DateComparison] = None  # noqa: UP045
    sector: Optional[SectorWhere] = strawberry.field(  # noqa: UP045
        default=None, description="has a sector matching all of these")
    recipient_country: Optional[StringComparison] = strawberry.field(  # noqa: UP045
        default=None, description="has a recipient country matching this")
    policy_marker: Optional[PolicyMarkerWhere] = strawberry.field(  # noqa: UP045
        default=None, description="has a policy marker matching all of these")
    gender_significance: Optional[IntComparison] = strawberry.field(  # noqa: UP045
        default=None, description="DAC gender marker score (policy marker vocabulary 1 code 1)")
    participating_org: Optional[ParticipatingOrgWhere] = strawberry.field(  # noqa: UP045
        default=None, description="has a participating organisation matching all of these")


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


def activity_where(w: ActivityWhere | None, table: Any = None) -> ColumnElement[bool]:
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
        conds.append(org_matches(a.reporting_org_ref, w.reporting_org))
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
    return and_(true(), *conds)


# --- flows ----------------------------------------------------------------------------

@strawberry.input(description="A WPS pillar as the 1325 rules classify flows: participation, "
                  "protection, prevention, relief-and-recovery (rules.toml; plugins may add "
                  "more). All given conditions must hold.")
class PillarComparison:
    eq: Optional[str] = strawberry.field(name="_eq", default=None,  # noqa: UP045
                                         description="the flow is in this pillar")
    in_: Optional[list[str]] = strawberry.field(name="_in", default=None,  # noqa: UP045
                                                description="the flow is in one of these pillars")


def _classified(flow_id: Any, dimensions: list[str]) -> ColumnElement[bool]:
    """The flow is in one of these dimensions (stored table ``flow_classification``)."""
    from fundtrack.accounting_models import FlowClassification

    t = FlowClassification.__table__
    return exists(select(t.c.flow_id).where(t.c.flow_id == flow_id,
                                            t.c.dimension.in_(dimensions), t.c.is_in))


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
    from fundtrack.trail_models import Movement

    mv = Movement.__table__
    has = exists(select(mv.c.id).where(mv.c.mirror_flow_id == flow_id))
    return has if is_mirror else not_(has)


@_logic_fields
class FlowWhere:
    kind: Optional[FlowKindComparison] = None  # noqa: UP045
    amount: Optional[DecimalComparison] = None  # noqa: UP045
    currency: Optional[StringComparison] = None  # noqa: UP045
    amount_usd: Optional[DecimalComparison] = None  # noqa: UP045
    value_date: Optional[DateComparison] = None  # noqa: UP045
    transaction_date: Optional[DateComparison] = None  # noqa: UP045
    reporting_org_ref: Optional[StringComparison] = None  # noqa: UP045
    reporting_org: Optional[OrganizationWhere] = None  # noqa: UP045
    provider_ref: Optional[StringComparison] = None  # noqa: UP045
    provider_name: Optional[StringComparison] = None  # noqa: UP045
    provider: Optional[OrganizationWhere] = strawberry.field(  # noqa: UP045
        default=None, description="the provider's registry entry matches")
    receiver_ref: Optional[StringComparison] = None  # noqa: UP045
    receiver_name: Optional[StringComparison] = None  # noqa: UP045
    receiver: Optional[OrganizationWhere] = strawberry.field(  # noqa: UP045
        default=None, description="the receiver's registry entry matches")
    sector_code: Optional[StringComparison] = None  # noqa: UP045
    recipient_country: Optional[StringComparison] = None  # noqa: UP045
    recipient_region: Optional[StringComparison] = None  # noqa: UP045
    aid_type: Optional[StringComparison] = None  # noqa: UP045
    flow_type: Optional[StringComparison] = None  # noqa: UP045
    finance_type: Optional[StringComparison] = None  # noqa: UP045
    earmarking: Optional[IntComparison] = None  # noqa: UP045
    humanitarian: Optional[BooleanComparison] = None  # noqa: UP045
    activity: Optional[ActivityWhere] = strawberry.field(  # noqa: UP045
        default=None, description="the flow's activity matches")
    gender_significance: Optional[IntComparison] = strawberry.field(  # noqa: UP045
        default=None, description="the flow's activity's DAC gender marker score")
    pillar: Optional[PillarComparison] = strawberry.field(  # noqa: UP045
        default=None, description="WPS pillar by the 1325 classification rules (and hand "
        "overrides); see docs/accounting.md")
    in_scope: Optional[bool] = strawberry.field(  # noqa: UP045
        default=None, description="true: in the \"peace and security\" scope by the 1325 "
        "classification rules (and hand overrides); false: not in it")
    is_mirror: Optional[bool] = strawberry.field(  # noqa: UP045
        default=None, description="true: the second report of a movement already counted "
        "by its canonical report (double counting); `isMirror: false` counts every movement "
        "once while each report keeps its provenance")


def flow_where(w: FlowWhere | None) -> ColumnElement[bool]:
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
    for attr, col in (("provider", f.provider_ref), ("receiver", f.receiver_ref),
                      ("reporting_org", f.reporting_org_ref)):
        if getattr(w, attr) is not None:
            conds.append(org_matches(col, getattr(w, attr)))
    if w.activity is not None:
        a = m.Activity.__table__
        conds.append(f.activity_id.in_(select(a.c.id).where(activity_where(w.activity))))
    if w.gender_significance is not None:
        conds.append(gender_condition(f.activity_id, w.gender_significance))
    if w.pillar is not None:
        conds.append(pillar_condition(f.id, w.pillar))
    if w.in_scope is not None:
        conds.append(scope_condition(f.id, w.in_scope))
    if w.is_mirror is not None:
        conds.append(mirror_condition(f.id, w.is_mirror))
    return and_(true(), *conds)


# --- budgets and batches --------------------------------------------------------------

@_logic_fields
class BudgetWhere:
    kind: Optional[StringComparison] = None  # noqa: UP045
    organisation_ref: Optional[StringComparison] = None  # noqa: UP045
    currency: Optional[StringComparison] = None  # noqa: UP045
    recipient_country: Optional[StringComparison] = None  # noqa: UP045
    period_start: Optional[DateComparison] = None  # noqa: UP045
    period_end: Optional[DateComparison] = None  # noqa: UP045
    activity: Optional[ActivityWhere] = None  # noqa: UP045


def budget_where(w: BudgetWhere | None) -> ColumnElement[bool]:
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


@_logic_fields
class ImportBatchWhere:
    status: Optional[StringComparison] = None  # noqa: UP045
    importer: Optional[StringComparison] = None  # noqa: UP045
    file_name: Optional[StringComparison] = None  # noqa: UP045
    publisher_ref: Optional[StringComparison] = None  # noqa: UP045
    sha256: Optional[StringComparison] = None  # noqa: UP045


def import_batch_where(w: ImportBatchWhere | None) -> ColumnElement[bool]:
    if w is None:
        return true()
    b = m.ImportBatch.__table__.c
    return and_(true(), *_logic(w, import_batch_where), *_fields(w, {
        "status": b.status, "importer": b.importer, "file_name": b.file_name,
        "publisher_ref": b.publisher_ref, "sha256": b.sha256}))


# --- ordering -------------------------------------------------------------------------

@strawberry.enum
class Direction(enum.Enum):
    ASC = "asc"
    DESC = "desc"


def _order_input(name: str, fields: dict[str, str]) -> tuple[Any, Any]:
    field_enum = strawberry.enum(enum.Enum(f"{name}Field", fields))  # type: ignore[misc]
    ns = {"__annotations__": {"field": field_enum, "direction": Direction},
          "direction": Direction.ASC}
    return strawberry.input(type(name, (), ns), description="Sort key; ties broken by id."), \
        field_enum


OrganizationOrder, OrganizationOrderField = _order_input(
    "OrganizationOrder", {"REF": "ref", "NAME": "name", "COUNTRY": "country", "TYPE": "type"})
ActivityOrder, ActivityOrderField = _order_input("ActivityOrder", {
    "IATI_IDENTIFIER": "iati_identifier", "REPORTING_ORG_REF": "reporting_org_ref",
    "TITLE": "title", "START_PLANNED": "start_planned", "START_ACTUAL": "start_actual",
    "END_PLANNED": "end_planned", "END_ACTUAL": "end_actual"})
FlowOrder, FlowOrderField = _order_input("FlowOrder", {
    "VALUE_DATE": "value_date", "AMOUNT": "amount", "AMOUNT_USD": "amount_usd",
    "CURRENCY": "currency", "KIND": "kind", "PROVIDER_REF": "provider_ref",
    "RECEIVER_REF": "receiver_ref", "REPORTING_ORG_REF": "reporting_org_ref",
    "RECIPIENT_COUNTRY": "recipient_country"})

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
