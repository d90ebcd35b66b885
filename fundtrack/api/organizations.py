"""The navigable graph, as GitHub's is: ``organization(ref:)``, an organisation's
activities and flows (as provider, receiver, reporter), an activity's flows and budgets.

The fields are declared on mixins that :mod:`fundtrack.api.types` puts under
``Organization`` and ``Activity``; the node types they return are named lazily (that
module imports this one). The SQL is :mod:`fundtrack.query.organizations`. Every list is
a cursor-paged connection (:mod:`fundtrack.api.paging`) with ``totalCount``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from graphql import GraphQLError
from sqlalchemy import Table
from strawberry.types import Info

from fundtrack.api.paging import Connection, PageArgs, connection
from fundtrack.query import organizations as q

if TYPE_CHECKING:
    from fundtrack.api.filters import ActivityWhere, FlowWhere
    from fundtrack.api.types import Activity, Budget, Flow, Organization

    ActivityOrder = Any  # built at run time (fundtrack.api.filters._order_input)
    FlowOrder = Any

strawberry.enum(q.FlowRole, description=(
    "Which end of a flow the organisation is on (PROVIDER, RECEIVER) or that it reports "
    "the flow (REPORTER), by the flow's resolved (canonical) parties."))

_TYPES = "fundtrack.api.types"
_FILTERS = "fundtrack.api.filters"
ActivityNode = Annotated["Activity", strawberry.lazy(_TYPES)]
FlowNode = Annotated["Flow", strawberry.lazy(_TYPES)]
BudgetNode = Annotated["Budget", strawberry.lazy(_TYPES)]
FlowWhereInput = Annotated["FlowWhere", strawberry.lazy(_FILTERS)]
FlowOrderInput = Annotated["FlowOrder", strawberry.lazy(_FILTERS)]
ActivityWhereInput = Annotated["ActivityWhere", strawberry.lazy(_FILTERS)]
ActivityOrderInput = Annotated["ActivityOrder", strawberry.lazy(_FILTERS)]


def _flow_page(info: Info, query: Any, order_by: Any, args: PageArgs) -> Any:
    from fundtrack.api import filters as flt
    from fundtrack.api.types import Flow
    from fundtrack.ledger import tables as m

    table = cast(Table, m.Flow.__table__)
    return connection(info.context, query, flt.order(order_by, table, "value_date"),
                      Flow.from_row, args, kind="Flow", info=info)


@strawberry.type
class OrganizationLinks:
    """An organisation's connections (a mixin of ``Organization``)."""

    if TYPE_CHECKING:
        ref: str

    @strawberry.field(description=(
        "Current activities this organisation reports or takes part in as a participating "
        "organisation (any role), by any of its refs; by identifier."))
    def activities(self, info: Info, where: ActivityWhereInput | None = None,
                   order_by: list[ActivityOrderInput] | None = None,
                   first: int | None = None, after: str | None = None,
                   last: int | None = None, before: str | None = None,
                   ) -> Connection[ActivityNode]:
        from fundtrack.api import filters as flt
        from fundtrack.api.types import Activity
        from fundtrack.ledger import tables as m

        t = cast(Table, m.Activity.__table__)
        query = q.activities_query(self.ref).where(flt.activity_where(where))
        return connection(info.context, query, flt.order(order_by, t, "iati_identifier"),
                          Activity.from_row, PageArgs(first, after, last, before),
                          kind="Activity", info=info)

    @strawberry.field(description=(
        "Current flows whose provider, receiver or reporting organisation (`role`) is this "
        "organisation, however the report named it (the canonical organisation, as the "
        "`provider`/`receiver`/`reportingOrg` filters match); by value date unless "
        "`orderBy` says otherwise. `where` narrows them like `flows(where:)`."))
    def flows(self, info: Info, role: q.FlowRole, where: FlowWhereInput | None = None,
              order_by: list[FlowOrderInput] | None = None,
              first: int | None = None, after: str | None = None,
              last: int | None = None, before: str | None = None,
              ) -> Connection[FlowNode]:
        from fundtrack.api import filters as flt

        query = q.flows_query(self.ref, role, flt.flow_where(where))
        return _flow_page(info, query, order_by, PageArgs(first, after, last, before))


@strawberry.type
class ActivityLinks:
    """An activity's connections (a mixin of ``Activity``)."""

    if TYPE_CHECKING:
        pk: int

    @strawberry.field(description=(
        "The flows (transactions) reported in this activity, by value date unless "
        "`orderBy` says otherwise; `where` narrows them like `flows(where:)`."))
    def flows(self, info: Info, where: FlowWhereInput | None = None,
              order_by: list[FlowOrderInput] | None = None,
              first: int | None = None, after: str | None = None,
              last: int | None = None, before: str | None = None,
              ) -> Connection[FlowNode]:
        from fundtrack.api import filters as flt

        query = q.activity_flows_query(self.pk, flt.flow_where(where))
        return _flow_page(info, query, order_by, PageArgs(first, after, last, before))

    @strawberry.field(description=(
        "The budgets and planned disbursements reported in this activity, in the order "
        "reported."))
    def budgets(self, info: Info, first: int | None = None, after: str | None = None,
                last: int | None = None, before: str | None = None,
                ) -> Connection[BudgetNode]:
        from fundtrack.api.types import Budget
        from fundtrack.ledger import tables as m

        t = m.Budget.__table__
        return connection(info.context, q.activity_budgets_query(self.pk), [t.c.id],
                          Budget.from_row, PageArgs(first, after, last, before),
                          kind="Budget", info=info)


class NotFound(GraphQLError):
    """No object answers to what the client named (``extensions.type`` NOT_FOUND, as
    GitHub's API says it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"type": "NOT_FOUND"})


@strawberry.type
class OrganizationQuery:
    @strawberry.field(description=(
        "One organisation by its ref or any identifier of its canonical organisation (an "
        "error of type NOT_FOUND when the registry holds none of them). Every ref a "
        "report names is in the registry."))
    async def organization(self, info: Info, ref: str,
                           ) -> Annotated[Organization, strawberry.lazy(_TYPES)]:
        from fundtrack.api.types import Organization

        if len(ref) > 200 or "\x00" in ref:
            raise GraphQLError("`ref` is not an organisation reference (at most 200 "
                               "characters, no NUL)")
        row = await info.context.db(lambda c: q.registry_row(c, ref))
        if row is None:
            raise NotFound(f"Could not resolve to an Organization with the ref of {ref!r}.")
        return Organization.from_row(row)
