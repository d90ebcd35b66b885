"""Protection for a public endpoint: depth, aliases, tokens, width and cost; masked errors.

Every refusal names the limit and its value, so a client knows what to change. The
cost of a query is its number of fields, where the fields under a connection count once
per item of the page it asks for (``first``/``last``, default 50) and ``nodes(ids:)``
once per id. The statement timeout is set on every PostgreSQL connection
(``FUNDTRACK_STATEMENT_TIMEOUT_MS``, see :mod:`fundtrack.db`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast_untyped,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from fundtrack.api.memo import MISS, Lru, variables_key
from fundtrack.api.paging import DEFAULT_PAGE
from fundtrack.config import Settings

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5000
MAX_FIELDS = 400
MAX_COST = 15_000


class ApiError(GraphQLError):
    """An error meant for the client: never masked."""


class DatabaseAwareMaskErrors(MaskErrors):
    """Masks unexpected errors; says so when the cause is the database, without details.

    A client cannot act on "Internal error", but can on "the database is unavailable, try
    again" (a restart, a failover) or "the statement timeout cut the query" (ask less).
    """

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        message = database_error_message(error.original_error)
        if message:
            masked.message = message
        return masked


def database_error_message(exc: BaseException | None) -> str | None:
    """A safe, detail-free message for a database failure, or None if ``exc`` is not one."""
    if not isinstance(exc, DBAPIError):
        return None
    if type(exc.orig).__name__ == "QueryCanceled":
        return ("The query ran longer than the statement timeout and was cancelled; "
                "ask for less (smaller pages, narrower filters).")
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return "The database is unavailable just now; try again shortly."
    return None


def _is_unexpected(error: GraphQLError) -> bool:
    """Mask errors that come from bugs or the database, not from the client's request."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class CostLimiter(SchemaExtension):
    """Refuse queries whose estimated cost or width exceeds the limits, before running them."""

    def __init__(self, max_cost: int = MAX_COST, max_fields: int = MAX_FIELDS) -> None:
        self.max_cost = max_cost
        self.max_fields = max_fields

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        doc = ec.graphql_document
        if doc is not None:
            fields, cost = self._measure(ec, doc)
            if fields > self.max_fields:
                raise ApiError(f"query selects {fields} fields, above the width "
                               f"limit of {self.max_fields}")
            if cost > self.max_cost:
                raise ApiError(
                    f"query cost {cost} is above the cost limit of {self.max_cost} "
                    "(each field counts once per item of the pages it is in); "
                    "ask for smaller pages or fewer fields")
        yield

    @staticmethod
    def _measure(ec: Any, doc: Any) -> tuple[int, int]:
        """(fields, cost) of the operation to run, the largest over matching operations;
        cached per schema, query text, operation name and variables."""
        cache = ec.schema.__dict__.setdefault("_fundtrack_cost_cache", Lru(256))
        vkey = variables_key(ec.variables)
        key = (ec.query, ec.operation_name, vkey) if vkey is not None and ec.query else None
        if key is not None and (found := cache.get(key)) is not MISS:
            return found
        fragments = {d.name.value: d for d in doc.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        schema = ec.schema._schema  # noqa: SLF001 - graphql-core schema for type lookups
        fields = cost = 0
        for op in doc.definitions:
            if not isinstance(op, OperationDefinitionNode):
                continue
            if ec.operation_name and op.name and op.name.value != ec.operation_name:
                continue
            root = schema.get_root_type(op.operation)
            walker = _Walker(fragments, ec.variables or {}, schema)
            op_cost = walker.cost(op.selection_set, root)
            fields, cost = max(fields, walker.fields), max(cost, op_cost)
        if key is not None:
            cache.put(key, (fields, cost))
        return fields, cost


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any],
                 schema: Any) -> None:
        self.fragments = fragments
        self.variables = variables
        self.schema = schema
        self.fields = 0

    def _arg(self, node: FieldNode, name: str) -> Any:
        for a in node.arguments or ():
            if a.name.value == name:
                return value_from_ast_untyped(a.value, self.variables)
        return None

    def _multiplier(self, node: FieldNode, type_name: str) -> int:
        if type_name.endswith("Connection"):
            sizes = [v for v in (self._arg(node, "first"), self._arg(node, "last"))
                     if isinstance(v, int)]
            return max(sizes) if sizes else DEFAULT_PAGE
        if node.name.value == "nodes":
            ids = self._arg(node, "ids")
            return len(ids) if isinstance(ids, list) else 1
        return 1

    def cost(self, sel: SelectionSetNode | None, parent: Any, seen: frozenset[str] = frozenset(),
             ) -> int:
        if sel is None or parent is None:
            return 0
        total = 0
        for s in sel.selections:
            if isinstance(s, FieldNode):
                self.fields += 1
                name = s.name.value
                if name.startswith("__"):
                    total += 1
                    continue
                fdef = getattr(parent, "fields", {}).get(name)
                if fdef is None:
                    total += 1
                    continue
                named = get_named_type(fdef.type)
                child = self.cost(s.selection_set, named, seen)
                total += 1 + self._multiplier(s, named.name) * child
            elif isinstance(s, InlineFragmentNode):
                t = self.schema.get_type(s.type_condition.name.value) if s.type_condition \
                    else parent
                total += self.cost(s.selection_set, t, seen)
            elif isinstance(s, FragmentSpreadNode):
                name = s.name.value
                frag = self.fragments.get(name)
                if frag is None or name in seen:
                    continue
                t = self.schema.get_type(frag.type_condition.name.value)
                total += self.cost(frag.selection_set, t if isinstance(
                    t, GraphQLObjectType) or t is not None else parent, seen | {name})
        return total


def schema_extensions(settings: Settings) -> list[Any]:
    """The extensions every schema gets; introspection and masking follow ``settings``.

    None of them hooks field resolution (that would cost time on every field). Depth and
    alias limits are validation rules, made once here so their classes stay the same
    across requests and ``ValidationCache`` can reuse the result for a repeated query
    (the rules are part of its key); parsing is cached too (``ParserCache``, with the token
    limit as a parse option, so a query is refused whether it is cached or not).
    """
    rules = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
             *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules]
    if not settings.introspection:
        rules += DisableIntrospection().validation_rules
    # Factories, so each request gets fresh extension instances (they hold its context).
    exts: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        CostLimiter,
    ]
    if not settings.debug:
        exts.append(lambda: DatabaseAwareMaskErrors(
            should_mask_error=_is_unexpected,
            error_message="Internal error (details are in the server log)."))
    return exts
