"""The GraphQL schema, assembled from small parts.

How to add fields (e.g. the follow-the-money ``trace`` query):

1. In your module write a ``@strawberry.type class TraceQuery`` with your root fields.
   Reuse :mod:`fundtrack.api.types` (Organization, Activity, Flow ...) and the request
   context :class:`fundtrack.api.context.ApiContext` (``info.context.db(fn)`` runs SQL in a
   thread; ``info.context.loaders`` are this request's DataLoaders).
2. Add it to ``QUERY_TYPES`` below (one line); mutations go to ``MUTATION_TYPES``.
3. Run ``python -m fundtrack.api.schema > schema/fundtrack.graphql`` and commit the SDL
   (``tests/test_api_schema.py`` fails while the file differs from the live schema).
"""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from fundtrack.api.accounting import AccountingQuery
from fundtrack.api.execution import execution_context_class
from fundtrack.api.funds import FundMutation, FundQuery
from fundtrack.api.identity import IdentityMutation, IdentityQuery
from fundtrack.api.mutations import LedgerMutation
from fundtrack.api.organizations import OrganizationQuery
from fundtrack.api.query import LedgerQuery
from fundtrack.api.sankey import SankeyQuery
from fundtrack.api.scalars import SCALAR_OVERRIDES
from fundtrack.api.sync import SyncQuery
from fundtrack.api.trace import TraceQuery
from fundtrack.api.types import Activity, Budget, Flow, ImportBatch, Organization
from fundtrack.api.wps import WpsMutation, WpsQuery
from fundtrack.config import Settings, get_settings

QUERY_TYPES: tuple[type, ...] = (LedgerQuery, TraceQuery, SankeyQuery, AccountingQuery, FundQuery,
                                 SyncQuery, WpsQuery, OrganizationQuery, IdentityQuery)
MUTATION_TYPES: tuple[type, ...] = (LedgerMutation, FundMutation, WpsMutation, IdentityMutation)

Query = merge_types("Query", QUERY_TYPES)
Mutation = merge_types("Mutation", MUTATION_TYPES)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the protections ``settings`` asks for (see :mod:`fundtrack.api.limits`)."""
    from fundtrack.api.context import ReplicaForQueries
    from fundtrack.api.limits import schema_extensions

    settings = settings or get_settings()
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[Organization, Activity, Flow, Budget, ImportBatch],
        scalar_overrides=SCALAR_OVERRIDES,
        extensions=[*schema_extensions(settings), ReplicaForQueries],
        execution_context_class=execution_context_class(settings),
    )


def printed_schema() -> str:
    """The SDL of the live schema, as kept in ``schema/fundtrack.graphql``."""
    return build_schema(Settings()).as_str() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(printed_schema(), end="")
