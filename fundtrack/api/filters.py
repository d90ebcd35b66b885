"""The typed ``where`` inputs (Hasura style) and ``orderBy`` of the GraphQL API.

Only the GraphQL declarations live here; :mod:`fundtrack.query.filters` compiles them to
SQL (its functions are re-exported below so resolvers keep one import). Every operator maps
to one SQL operator with SQL's null semantics (``_neq: "X"`` does not match nulls; use
``_is_null``).
"""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional

import strawberry

from fundtrack.api.types import FlowKind
from fundtrack.query.filters import (
    Direction,
    activity_where,
    budget_where,
    compare,
    compare_int_set,
    flow_where,
    import_batch_where,
    order,
    order_key,
    org_matches,
    organization_where,
)

__all__ = [
    "ActivityOrder", "ActivityOrderField", "ActivityWhere", "BooleanComparison", "BudgetWhere",
    "DateComparison", "DecimalComparison", "Direction", "FlowKindComparison", "FlowOrder",
    "FlowOrderField", "FlowWhere", "ImportBatchWhere", "IntComparison", "OrganizationOrder",
    "OrganizationOrderField", "OrganizationWhere", "ParticipatingOrgWhere", "PillarComparison",
    "PolicyMarkerWhere", "SectorWhere", "StringComparison", "activity_where", "budget_where",
    "compare", "compare_int_set", "flow_where", "import_batch_where", "order", "order_key",
    "org_matches", "organization_where",
]

strawberry.enum(Direction)


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


if TYPE_CHECKING:  # built at run time; to a type checker they are any input object
    StringComparison = Any
    IntComparison = Any
    DecimalComparison = Any
    DateComparison = Any
    BooleanComparison = Any
    FlowKindComparison = Any
else:
    StringComparison = _comparison("StringComparison", str, text=True)
    IntComparison = _comparison("IntComparison", int)
    DecimalComparison = _comparison("DecimalComparison", Decimal)
    DateComparison = _comparison("DateComparison", date)
    BooleanComparison = _comparison("BooleanComparison", bool, ordered=False)
    FlowKindComparison = _comparison("FlowKindComparison", FlowKind, ordered=False)


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


@_logic_fields
class OrganizationWhere:
    ref: Optional[StringComparison] = None  # noqa: UP045
    name: Optional[StringComparison] = None  # noqa: UP045
    type: Optional[StringComparison] = None  # noqa: UP045
    country: Optional[StringComparison] = None  # noqa: UP045
    is_womens_rights_org: Optional[BooleanComparison] = None  # noqa: UP045
    is_pooled_fund: Optional[BooleanComparison] = None  # noqa: UP045


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
    search: Optional[str] = strawberry.field(  # noqa: UP045
        default=None, description="text found, ignoring case and accents, in the identifier, "
        "title, or the name or ref of the reporting organisation, a participating "
        "organisation or a flow's provider or receiver (docs/api.md)")


@strawberry.input(description="A WPS pillar as the 1325 rules classify flows: participation, "
                  "protection, prevention, relief-and-recovery (rules.toml; plugins may add "
                  "more). All given conditions must hold.")
class PillarComparison:
    eq: Optional[str] = strawberry.field(name="_eq", default=None,  # noqa: UP045
                                         description="the flow is in this pillar")
    in_: Optional[list[str]] = strawberry.field(name="_in", default=None,  # noqa: UP045
                                                description="the flow is in one of these pillars")


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
        default=None, description="the flow's gender marker on the common scale as a DAC "
        "score: 2 principal, 1 significant, 0 not targeted, _is_null not screened. The "
        "flow's own marker, else its activity's; publishers' own vocabularies (UN GEM, IASC "
        "GAM, PBF, IOM, ADB) read through the crosswalk (docs/accounting.md); the value "
        "genderSummary counts")
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


@_logic_fields
class BudgetWhere:
    kind: Optional[StringComparison] = None  # noqa: UP045
    organisation_ref: Optional[StringComparison] = None  # noqa: UP045
    currency: Optional[StringComparison] = None  # noqa: UP045
    recipient_country: Optional[StringComparison] = None  # noqa: UP045
    period_start: Optional[DateComparison] = None  # noqa: UP045
    period_end: Optional[DateComparison] = None  # noqa: UP045
    activity: Optional[ActivityWhere] = None  # noqa: UP045


@_logic_fields
class ImportBatchWhere:
    status: Optional[StringComparison] = None  # noqa: UP045
    importer: Optional[StringComparison] = None  # noqa: UP045
    file_name: Optional[StringComparison] = None  # noqa: UP045
    publisher_ref: Optional[StringComparison] = None  # noqa: UP045
    sha256: Optional[StringComparison] = None  # noqa: UP045


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

