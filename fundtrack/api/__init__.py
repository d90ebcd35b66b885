"""The public GraphQL API: types, filters, aggregates, mutations and limits.

Module map (each small, named for what it does):

- :mod:`fundtrack.api.context`   per-request context: engine, viewer, DataLoaders, ``db()``
- :mod:`fundtrack.api.loaders`   batched loads (organisations, activities, sectors ...)
- :mod:`fundtrack.api.types`     Organization, Activity, Flow, Budget, ImportBatch (Relay nodes)
- :mod:`fundtrack.api.paging`    connections: first/after/last/before, caps, totalCount
- :mod:`fundtrack.api.filters`   Hasura-style ``where`` inputs (compiled by :mod:`fundtrack.query.filters`)
- :mod:`fundtrack.api.aggregate` ``flowsAggregate`` (its SQL: :mod:`fundtrack.query.aggregate`)
- :mod:`fundtrack.api.query`     the root query fields
- :mod:`fundtrack.api.mutations` uploads, reverts, registry edits
- :mod:`fundtrack.api.limits`    depth/alias/token/cost limits, error masking
- :mod:`fundtrack.api.schema`    assembles everything into one ``strawberry.Schema``
- :mod:`fundtrack.api.execution` the fast path (look-ahead, completion plans), fenced behind
  ``FUNDTRACK_FAST_EXECUTOR``; the only place touching graphql-core's private parts
"""
