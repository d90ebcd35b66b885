"""The query layer's input errors.

They are GraphQL errors, which the API shows as written (it masks every other exception),
but graphql is imported only when one is raised: the CLI reaches the query layer through
the rollup step of the derived tables, and loading graphql there was ~0.06 s of CPU in
every command's start-up (``fundtrack import`` of one file included)."""

from __future__ import annotations


def input_error(message: str) -> Exception:
    """A GraphQL error saying what is wrong with the input, to raise."""
    from graphql import GraphQLError

    return GraphQLError(message)
