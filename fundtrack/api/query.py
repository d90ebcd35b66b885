"""The root query: lists as connections, ``node``/``nodes``, and ``flowsAggregate``."""

from __future__ import annotations

import asyncio

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry.types import Info

from fundtrack.api import filters as flt
from fundtrack.api.aggregate import FlowAggregate, FlowDimension, flows_aggregate
from fundtrack.api.ids import decode_id, int_pk
from fundtrack.api.paging import MAX_PAGE, Connection, PageArgs, connection
from fundtrack.api.types import (
    NODE_TYPES,
    Activity,
    Budget,
    Flow,
    ImportBatch,
    Node,
    Organization,
)
from fundtrack.auth.tokens import published
from fundtrack.db.base import current
from fundtrack.ledger import tables as m


@strawberry.type(description="Activity links counted apart (see `linkSummary`).")
class LinkSummary:
    to_other_activities: int = strawberry.field(
        description="Resolved links to another activity: the ones that trace money.")
    to_own_activity: int = strawberry.field(
        description="Links to the activity they are reported in (not traceability).")
    broken: int = strawberry.field(description="Links naming an activity nobody reported.")


def _shape(field: str, where: object, order_by: list[object] | None = None,
           ) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The page statement's cache key (:func:`~fundtrack.api.paging.connection`): only
    unfiltered lists share a statement; a filter carries values, so it is built per request."""
    return None if where is not None else (field, flt.order_key(order_by))


@strawberry.type
class LedgerQuery:
    @strawberry.field(description="Organisations in the registry.")
    def organizations(self, info: Info, where: flt.OrganizationWhere | None = None,
                      order_by: list[flt.OrganizationOrder] | None = None,
                      first: int | None = None, after: str | None = None,
                      last: int | None = None, before: str | None = None,
                      ) -> Connection[Organization]:
        t = m.Organisation.__table__
        q = select(t).where(flt.organization_where(where))
        return connection(info.context, q, flt.order(order_by, t, "ref"),
                          Organization.from_row, PageArgs(first, after, last, before),
                          kind="Organization", info=info,
                          shape=_shape("organizations", where, order_by))

    @strawberry.field(description="Activities as currently reported (latest import of each).")
    def activities(self, info: Info, where: flt.ActivityWhere | None = None,
                   order_by: list[flt.ActivityOrder] | None = None,
                   first: int | None = None, after: str | None = None,
                   last: int | None = None, before: str | None = None,
                   ) -> Connection[Activity]:
        t = m.Activity.__table__
        q = select(t).where(current(t), flt.activity_where(where))
        return connection(info.context, q, flt.order(order_by, t, "iati_identifier"),
                          Activity.from_row, PageArgs(first, after, last, before),
                          kind="Activity", info=info,
                          shape=_shape("activities", where, order_by))

    @strawberry.field(description="Flows as currently reported (superseded rows are left out).")
    def flows(self, info: Info, where: flt.FlowWhere | None = None,
              order_by: list[flt.FlowOrder] | None = None,
              first: int | None = None, after: str | None = None,
              last: int | None = None, before: str | None = None,
              ) -> Connection[Flow]:
        t = m.Flow.__table__
        q = select(t).where(current(t), flt.flow_where(where))
        return connection(info.context, q, flt.order(order_by, t, "id"),
                          Flow.from_row, PageArgs(first, after, last, before),
                          kind="Flow", info=info, shape=_shape("flows", where, order_by))

    @strawberry.field(description="Budgets and planned disbursements as currently reported.")
    def budgets(self, info: Info, where: flt.BudgetWhere | None = None,
                first: int | None = None, after: str | None = None,
                last: int | None = None, before: str | None = None,
                ) -> Connection[Budget]:
        t = m.Budget.__table__
        q = select(t).where(current(t), flt.budget_where(where))
        return connection(info.context, q, [t.c.id], Budget.from_row,
                          PageArgs(first, after, last, before),
                          kind="Budget", info=info, shape=_shape("budgets", where))

    @strawberry.field(description="Imported files, newest first.")
    def import_batches(self, info: Info, where: flt.ImportBatchWhere | None = None,
                       first: int | None = None, after: str | None = None,
                       last: int | None = None, before: str | None = None,
                       ) -> Connection[ImportBatch]:
        t = m.ImportBatch.__table__
        q = select(t).where(flt.import_batch_where(where))
        return connection(info.context, q, [t.c.id.desc()], ImportBatch.from_row,
                          PageArgs(first, after, last, before),
                          kind="ImportBatch", info=info,
                          shape=_shape("import_batches", where))

    @strawberry.field(description="Grouped counts and exact sums of current flows, in SQL.")
    async def flows_aggregate(self, info: Info, where: flt.FlowWhere | None = None,
                              group_by: list[FlowDimension] | None = None) -> FlowAggregate:
        return await flows_aggregate(info, flt.flow_where(where), group_by or [], where)

    @strawberry.field(description=(
        "Activity links (provider-/receiver-activity-id, related-activity) counted apart: "
        "to another activity, to the activity the link is reported in (resolves by "
        "construction, traces nothing), and broken (names nothing anyone reported). "
        "`publisherRef`: one reporting organisation's links."))
    async def link_summary(self, info: Info, publisher_ref: str | None = None) -> LinkSummary:
        from fundtrack.derived.trail.links import link_summary

        if publisher_ref is not None and len(publisher_ref) > 200:
            raise GraphQLError("`publisherRef` is longer than any organisation reference (200)")
        got = await info.context.db(lambda c: link_summary(c, publisher_ref))
        return LinkSummary(to_other_activities=got["to_other"], to_own_activity=got["to_self"],
                           broken=got["broken"])

    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return (await _nodes(info, [id]))[0]

    @strawberry.field(description="Objects by their global ids, in the same order (null if unknown).")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_PAGE:
            raise GraphQLError(f"`ids` holds {len(ids)} ids, above the maximum of {MAX_PAGE}")
        return await _nodes(info, ids)


async def _nodes(info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
    wanted = []
    for gid in ids:
        type_name, pk = decode_id(gid)
        value = int_pk(pk)
        if type_name not in NODE_TYPES or value is None:
            raise GraphQLError(f"id {gid[:60]!r} does not name an object of this API")
        wanted.append((NODE_TYPES[type_name], value))
    # gather, so ids of one type are fetched by one batched statement
    rows = await asyncio.gather(*[getattr(info.context.loaders, loader).load(pk)
                                  for (_, loader), pk in wanted])
    viewer = info.context.viewer
    return [cls.from_row(row) if published(viewer, row) else None
            for ((cls, _), _), row in zip(wanted, rows, strict=True)]

