"""Protection for a public endpoint: depth, aliases, tokens, width and cost; masked errors.

Every refusal names the limit and its value, so a client knows what to change. The
cost of a query is its number of fields, where the fields under a connection count once
per item of the page it asks for (``first``/``last``, default 50) and ``nodes(ids:)``
once per id; a field that runs a grouped statement over all flows (``flowsAggregate``,
report cards ...) adds :data:`STATEMENT_COSTS`, and the arguments' input adds
:data:`INPUT_TERM_COST` per filter term and :data:`INPUT_VALUE_COST` per value. The
statement timeout is set on every PostgreSQL connection (``FUNDTRACK_STATEMENT_TIMEOUT_MS``,
see :mod:`fundtrack.db`); it bounds neither the memory nor the planning time of a huge
filter, so the input limits below are checked before any SQL (issue 18: an ``_or`` of
20,000 terms drove one PostgreSQL backend to 8 GB).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    parse,
    validate,
    value_from_ast_untyped,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from fundtrack.api.execution.compat import STRAWBERRY_VALIDATION_RULES, graphql_schema
from fundtrack.api.memo import (
    MISS,
    QUERY_CACHE_BYTES,
    Lru,
    node_weight,
    text_weight,
    variables_key,
)
from fundtrack.api.paging import DEFAULT_PAGE
from fundtrack.config import Settings
from fundtrack.db.errors import database_error_message

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5000
MAX_FIELDS = 400
MAX_COST = 15_000

#: Characters of query text (comments and white space included); checked before parsing.
#: 5,000 tokens of a dense query are ~30,000 characters.
MAX_QUERY_CHARS = 100_000
#: Bytes of a GraphQL request body that is not a file upload (query text and variables;
#: see :class:`fundtrack.api.http.GraphQLGuard`). Uploads keep ``max_upload_bytes``.
MAX_QUERY_BODY_BYTES = 512 * 1024
#: Fields given in input objects over all arguments of a request (``_and``/``_or``/``_not``
#: and every nested filter count): each compiles to SQL conditions or subqueries.
MAX_FILTER_TERMS = 200
#: Input objects nested inside one argument (lists between them do not count).
MAX_INPUT_DEPTH = 10
#: Items of one list argument (``_in``, ``_nin``, ``ids``, ``groupBy`` ...).
MAX_LIST_ITEMS = 1000
#: Scalar values over all arguments of a request (each becomes a bind parameter;
#: PostgreSQL takes at most 65,535 in one statement).
MAX_INPUT_VALUES = 5000
#: Characters of one string argument.
MAX_STRING_CHARS = 1000
#: Cost of each filter term and each input value (so input size counts toward MAX_COST;
#: the largest input the limits allow costs 14,000 on its own).
INPUT_TERM_COST = 20
INPUT_VALUE_COST = 2
#: Cost of root fields that run a grouped statement over the flows, whatever they select;
#: ``flowsAggregate`` adds as much again per ``groupBy`` dimension (30 aliases of a
#: 10-dimension aggregate took 5.6 s and answered 3.8 MB from a 1 KB request).
STATEMENT_COSTS = {"flowsAggregate": 200, "genderSummary": 200, "reportCard": 200,
                   "fundScorecard": 200, "donorSummary": 200, "nationalActionPlans": 200,
                   "trace": 200,
                   # every card of every subject and year, computed in one pass
                   "leagueTable": 2000}
AGGREGATE_DIMENSION_COST = 200


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
            fields, cost, input_cost = self._measure(ec, doc)
            if fields > self.max_fields:
                raise ApiError(f"query selects {fields} fields, above the width "
                               f"limit of {self.max_fields}")
            if cost > self.max_cost:
                raise ApiError(
                    f"query cost {cost} is above the cost limit of {self.max_cost} "
                    "(each field counts once per item of the pages it is in; grouped "
                    f"statements count more; {input_cost} of it is the arguments' input); "
                    "ask for smaller pages, fewer fields or smaller filters")
        yield

    @staticmethod
    def _measure(ec: Any, doc: Any) -> tuple[int, int, int]:
        """(fields, cost, cost of the input) of the operation to run, the largest over
        matching operations; cached per schema, query text, operation name and variables.

        The walk checks the arguments' input too (:class:`_Inputs`), so a request over an
        input limit never reaches SQL.
        """
        cache = ec.schema.__dict__.setdefault(
            "_fundtrack_cost_cache", Lru(256, maxbytes=QUERY_CACHE_BYTES))
        vkey = variables_key(ec.variables)
        key = (ec.query, ec.operation_name, vkey) if vkey is not None and ec.query else None
        if key is not None and (found := cache.get(key)) is not MISS:
            return found
        fragments = {d.name.value: d for d in doc.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        schema = graphql_schema(ec.schema)  # for type lookups
        fields = cost = input_cost = 0
        for op in doc.definitions:
            if not isinstance(op, OperationDefinitionNode):
                continue
            if ec.operation_name and op.name and op.name.value != ec.operation_name:
                continue
            root = schema.get_root_type(op.operation)
            walker = _Walker(fragments, ec.variables or {}, schema)
            op_cost = walker.cost(op.selection_set, root)
            op_input = walker.inputs.cost
            fields, cost = max(fields, walker.fields), max(cost, op_cost + op_input)
            input_cost = max(input_cost, op_input)
        if key is not None:
            cache.put(key, (fields, cost, input_cost),
                      text_weight(ec.query) + len(vkey or ""))
        return fields, cost, input_cost


#: Filter terms counted exactly; beyond, the walk stops (the request is refused anyway).
_COUNT_UP_TO = 10 * MAX_FILTER_TERMS


class _Inputs:
    """Counts and checks the input of a request's arguments (issue 18, item 2 and 8).

    Limits per argument: nesting (:data:`MAX_INPUT_DEPTH`), list length
    (:data:`MAX_LIST_ITEMS`), string length (:data:`MAX_STRING_CHARS`), no NUL character
    and no lone surrogate (neither database stores them; PostgreSQL refuses them). Over
    the request: filter terms (:data:`MAX_FILTER_TERMS`) and values
    (:data:`MAX_INPUT_VALUES`). The walk stops descending below the depth limit, so a
    hostile input costs no more than the limits allow.
    """

    def __init__(self) -> None:
        self.terms = 0
        self.values = 0

    @property
    def cost(self) -> int:
        return self.terms * INPUT_TERM_COST + self.values * INPUT_VALUE_COST

    def check(self, value: Any, arg: str, field: str) -> None:
        where = f"`{arg}` of `{field}`"
        if not isinstance(value, dict | list):  # a page size, a year, an id: no input cost
            if isinstance(value, str):
                _check_text(value, where)
            return
        self._walk(value, where, 0)
        if self.terms > MAX_FILTER_TERMS:
            counted = f"more than {_COUNT_UP_TO}" if self.terms > _COUNT_UP_TO \
                else str(self.terms)
            raise ApiError(
                f"{where} brings the request to {counted} filter terms, above the limit "
                f"of {MAX_FILTER_TERMS} filter terms (every field given in an input object "
                "counts, `_and`/`_or`/`_not` and nested filters included); use `_in` "
                "lists or several requests")
        if self.values > MAX_INPUT_VALUES:
            raise ApiError(
                f"{where} brings the request to {self.values} input values, above the "
                f"limit of {MAX_INPUT_VALUES} values per request")

    def _walk(self, value: Any, where: str, depth: int) -> None:
        if isinstance(value, dict):
            depth += 1
            if depth > MAX_INPUT_DEPTH:
                raise ApiError(f"{where} holds input objects nested more than "
                               f"{MAX_INPUT_DEPTH} deep, above the limit of "
                               f"{MAX_INPUT_DEPTH} (`_and`/`_or`/`_not` count)")
            self.terms += len(value) or 1
            if self.terms > _COUNT_UP_TO:
                return  # refused anyway; the exact count is not worth the walk
            for v in value.values():
                self._walk(v, where, depth)
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                raise ApiError(f"{where} holds a list of {len(value)} items, above the limit "
                               f"of {MAX_LIST_ITEMS} items per list")
            for v in value:
                self._walk(v, where, depth)
        else:
            self.values += 1
            if isinstance(value, str):
                _check_text(value, where)


def _check_text(value: str, where: str) -> None:
    if len(value) > MAX_STRING_CHARS:
        raise ApiError(f"{where} holds a string of {len(value)} characters, above the limit "
                       f"of {MAX_STRING_CHARS} characters")
    if "\x00" in value:
        raise ApiError(f"{where} holds the NUL character (\\u0000), which no stored value "
                       "holds; remove it")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(f"{where} holds a lone surrogate (\\ud800-\\udfff), which is "
                           "not Unicode text; send the character itself") from None


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any],
                 schema: Any) -> None:
        self.fragments = fragments
        self.variables = variables
        self.schema = schema
        self.fields = 0
        self.inputs = _Inputs()

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

    def _statement_cost(self, node: FieldNode, name: str) -> int:
        extra = STATEMENT_COSTS.get(name, 0)
        if name == "flowsAggregate":
            dims = self._arg(node, "groupBy")
            if isinstance(dims, list):
                extra += AGGREGATE_DIMENSION_COST * len({str(d) for d in dims})
        return extra

    def cost(self, sel: SelectionSetNode | None, parent: Any, seen: frozenset[str] = frozenset(),
             ) -> int:
        if sel is None or parent is None:
            return 0
        total = 0
        for s in sel.selections:
            if isinstance(s, FieldNode):
                self.fields += 1
                name = s.name.value
                for a in s.arguments or ():
                    self.inputs.check(value_from_ast_untyped(a.value, self.variables),
                                      a.name.value, name)
                if getattr(parent, "name", None) == "Query":
                    total += self._statement_cost(s, name)
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


#: Query text -> parsed document; shared by every schema (parsing needs none).
_PARSED = Lru(256, maxbytes=QUERY_CACHE_BYTES)
#: (schema, document, rules, hide suggestions) -> (schema, document, errors).
_VALIDATED = Lru(256, maxbytes=QUERY_CACHE_BYTES)


class QueryTextLimiter(SchemaExtension):
    """Refuses query text above :data:`MAX_QUERY_CHARS` before parsing; parses with the
    token limit (:data:`MAX_TOKENS`; graphql-core counts comments as tokens) and caches
    documents by query text, bounded by bytes (strawberry's ``ParserCache`` is bounded by
    entries only: 24 distinct 10 MB queries held 541 MB, issue 18)."""

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        query = ec.query
        if query is not None and len(query) > MAX_QUERY_CHARS:
            raise ApiError(f"query text of {len(query)} characters is above the limit of "
                           f"{MAX_QUERY_CHARS} characters (comments included)")
        if ec.graphql_document is None and query:
            doc = _PARSED.get(query)
            if doc is MISS:
                doc = parse(query, **{**ec.parse_options, "max_tokens": MAX_TOKENS})
                _PARSED.put(query, doc, text_weight(query))
            ec.graphql_document = doc
        yield


class BoundedValidationCache(SchemaExtension):
    """Validation, cached per schema, document and rules and bounded by bytes; without
    field suggestions ("Did you mean ...?") when ``hide_suggestions`` (introspection off:
    suggestions would enumerate the schema)."""

    def __init__(self, hide_suggestions: bool) -> None:
        self.hide_suggestions = hide_suggestions

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        schema = graphql_schema(ec.schema)
        doc: DocumentNode = ec.graphql_document
        rules = (*ec.validation_rules, *STRAWBERRY_VALIDATION_RULES)
        key = (id(schema), id(doc), rules, self.hide_suggestions)
        hit = _VALIDATED.get(key)
        if hit is not MISS and hit[0] is schema and hit[1] is doc:
            errors = hit[2]
        else:
            errors = validate(schema, doc, rules, hide_suggestions=self.hide_suggestions)
            _VALIDATED.put(key, (schema, doc, errors), node_weight(doc))
        ec.pre_execution_errors = errors
        yield


def schema_extensions(settings: Settings) -> list[Any]:
    """The extensions every schema gets; introspection and masking follow ``settings``.

    None of them hooks field resolution (that would cost time on every field). Depth and
    alias limits are validation rules, made once here so their classes stay the same
    across requests and the validation cache can reuse the result for a repeated query
    (the rules are part of its key); parsing is cached too (:class:`QueryTextLimiter`,
    which applies the text and token limits before it looks in its cache).
    """
    rules = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
             *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules]
    if not settings.introspection:
        rules += DisableIntrospection().validation_rules
    hide = not settings.introspection
    # Factories, so each request gets fresh extension instances (they hold its context).
    exts: list[Any] = [
        QueryTextLimiter,
        lambda: AddValidationRules(rules),
        lambda: BoundedValidationCache(hide_suggestions=hide),
        CostLimiter,
    ]
    if not settings.debug:
        exts.append(lambda: DatabaseAwareMaskErrors(
            should_mask_error=_is_unexpected,
            error_message="Internal error (details are in the server log)."))
    return exts
