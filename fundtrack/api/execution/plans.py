"""Completion plans: a faster graphql-core executor for selections of plain attributes.

Why: graphql-core resolves one field at a time (a ``GraphQLResolveInfo``, a ``Path``,
``complete_value`` and two awaitable checks per field), about 3-5 µs a field here. A page
of 100 flows with its relations is ~2,000 fields; ``flowsAggregate`` by year and country
is ~14,000. Most of those fields just read an attribute and serialise a scalar; completing
them by a plan halves the page (docs/performance.md).

How: for an object's selection, a *plan* is compiled once per selection (and shared by
later requests for the same parsed query and variables): for each field, the attribute to
read (strawberry fields without a resolver) or a ``fast`` function given in the field's
metadata (:mod:`fundtrack.api.execution.fields`; relations already loaded for this
request), how to serialise it (the scalar's or enum's own ``coerce_output_value``, so
output is identical), and the plan of its sub-selection. Objects and lists of objects whose
selection compiles are completed by a loop over their plan (:func:`_runner`).

Anything else takes graphql-core's path, unchanged: fields with arguments, directives,
resolvers without a fast function, abstract types, middleware (an extension hooking field
resolution sees every field), and any value the plan cannot complete as is (a null in a
non-null field, a serialisation error, a relation not loaded yet): the whole object or
list is then completed again by graphql-core, which reports errors with their paths
exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
)

from fundtrack.api.execution.compat import (
    DECLINED,
    HookedExecution,
    attribute_read,
    field_nodes,
    strawberry_field,
)
from fundtrack.api.execution.fields import FAST, MISSING
from fundtrack.api.memo import MISS, QUERY_CACHE_BYTES, Lru, node_weight, variables_key

# What an entry of a plan does with its value (most frequent first).
_AS_IS_STR, _LEAF, _OBJECT, _AS_IS_BOOL, _LIST_LEAF, _LIST_OBJECT = range(6)

#: A function completing one object: ``(source, context) -> dict``, or DECLINED.
Runner = Callable[[Any, Any], Any]


class Entry(NamedTuple):
    """One field of a plan."""

    name: str  # response name (alias or field name)
    kind: int  # _LEAF, _OBJECT ...
    attr: str | None  # the attribute to read; None: call ``fast_fn``
    fast_fn: Runner | None
    nonnull: bool
    serialize: Callable[[Any], Any] | None
    sub: Plan | None  # the plan of an object's (or list of objects') selection
    items_nonnull: bool


class Plan(NamedTuple):
    """A compiled selection: the object type's name, its ``is_type_of`` check
    (strawberry's reads only the object) and its fields."""

    type_name: str
    is_type_of: Callable[[Any, Any], Any] | None
    entries: tuple[Entry, ...]


#: Built-in scalars whose serialiser returns a value of this exact Python type unchanged
#: (graphql-core's ``serialize_string`` etc.); the plan skips the call for those.
_AS_IS: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


@cache  # one wrapper per scalar, so plans stay equal across requests
def _int_as_is(serialize: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def coerce(value: Any) -> Any:
        if type(value) is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT:
            return value
        return serialize(value)

    return coerce


@cache  # one memo per enum type, so plans stay equal across requests
def _enum_memo(serialize: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An enum's serialiser, remembering its answer per (type, value): strawberry's scans
    the enum's values on every call (~3 µs for a ``FlowKind``, per flow of a page)."""
    names: dict[tuple[type, Any], Any] = {}

    def coerce(value: Any) -> Any:
        key = (type(value), value)
        try:
            return names[key]
        except KeyError:
            out = names[key] = serialize(value)  # an error is raised, not remembered
            if len(names) > 1024:  # not an enum's values: stop remembering
                names.clear()
            return out
        except TypeError:  # unhashable: graphql-core reports it
            return serialize(value)

    return coerce


@cache  # one per type name, so plans stay equal across requests
def _typename(name: str) -> Runner:
    """The fast function of ``__typename`` in an object of type ``name``."""
    return lambda _source, _context: name


def _unwrap(t: Any) -> tuple[Any, bool]:
    if isinstance(t, GraphQLNonNull):
        return t.of_type, True
    return t, False


#: (schema, type, response names, ids of the AST nodes, variables) -> (schema, nodes, plan,
#: runner): see :meth:`FastExecutor._compiled`. The nodes keep their document alive, so
#: the cache is bounded by the documents' estimated bytes too.
_COMPILED = Lru(512, maxbytes=QUERY_CACHE_BYTES)


class FastExecutor(HookedExecution):
    """graphql-core's executor; selections that compile are completed by their plan,
    everything else by graphql-core."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._enabled = not self.has_middleware
        # (type, id(grouped field set)) -> (the set, kept alive so the id stays unique;
        # its plan and the plan's runner)
        self._plans: dict[tuple[Any, int], tuple[Any, Plan | None, Runner | None]] = {}

    # -- the hooks (fundtrack.api.execution.compat) -------------------------------------
    def complete_fields(self, parent_type: GraphQLObjectType, grouped: Any, source: Any) -> Any:
        run = self._planned(parent_type, grouped)[2]
        return DECLINED if run is None else run(source, self.context_value)

    def complete_list(self, item_type: Any, details: Any, items: list[Any] | tuple[Any, ...],
                      ) -> Any:
        item, items_nonnull = _unwrap(item_type)
        run = self._sub_runner(item, details)
        if run is None:
            return DECLINED
        try:
            return _list_object(items, self.context_value, run, items_nonnull)
        except Exception:  # noqa: BLE001 - graphql-core redoes it and reports the error
            return DECLINED

    # -- compiling ---------------------------------------------------------------------
    def _planned(self, parent: GraphQLObjectType, grouped: Any,
                 ) -> tuple[Any, Plan | None, Runner | None]:
        """(grouped, plan, its runner), once per request and selection."""
        key = (parent, id(grouped))
        hit = self._plans.get(key)
        if hit is None:
            plan, run = self._compiled(parent, grouped) if self._enabled else (None, None)
            hit = self._plans[key] = (grouped, plan, run)
        return hit

    def _compiled(self, parent: GraphQLObjectType, grouped: Any,
                  ) -> tuple[Plan | None, Runner | None]:
        """(plan, runner) of a selection, shared across requests (compiling the page's
        selections cost ~0.25 ms per request).

        Keyed by the identity of the selection's AST nodes (the parser cache hands out the
        same nodes for a repeated query; they are kept, so an id reused after a document
        left that cache never hits) and the variables (``@skip``/``@include`` below).
        """
        nodes = [n for details in grouped.values() for n in field_nodes(details)]
        vkey = variables_key(self.coerced_variables)
        key = None if vkey is None else (
            id(self.schema), parent.name, tuple(grouped), tuple(map(id, nodes)), vkey)
        if key is not None:
            hit = _COMPILED.get(key)
            if hit is not MISS and hit[0] is self.schema and all(
                    a is b for a, b in zip(hit[1], nodes, strict=True)):
                return hit[2], hit[3]
        plan = self._compile(parent, grouped)
        run = None if plan is None else _runner(plan)
        if key is not None:
            _COMPILED.put(key, (self.schema, nodes, plan, run),
                          node_weight(nodes[0]) if nodes else 0)
        return plan, run

    def _sub_plan(self, obj: Any, details: Any) -> Plan | None:
        if not isinstance(obj, GraphQLObjectType):
            return None
        grouped = self.subselection(obj, details)
        return None if grouped is None else self._planned(obj, grouped)[1]

    def _sub_runner(self, obj: Any, details: Any) -> Runner | None:
        if not isinstance(obj, GraphQLObjectType):
            return None
        grouped = self.subselection(obj, details)
        return None if grouped is None else self._planned(obj, grouped)[2]

    def _compile(self, parent: GraphQLObjectType, grouped: Any) -> Plan | None:
        entries: list[Entry] = []
        for response_name, details in grouped.items():
            nodes = field_nodes(details)
            if any(n.directives or n.arguments for n in nodes):
                return None
            name = nodes[0].name.value
            if name == "__typename":
                entries.append(Entry(response_name, _AS_IS_STR, None, _typename(parent.name),
                                     True, None, None, True))
                continue
            field_def = self.schema.get_field(parent, name)
            if field_def is None or field_def.args:
                return None
            definition = strawberry_field(field_def)
            if definition is None:
                return None
            attr: str | None = None
            fast_fn = (definition.metadata or {}).get(FAST)
            if fast_fn is None:
                attr = attribute_read(field_def)
                if attr is None:
                    return None
            t, nonnull = _unwrap(field_def.type)
            kind, serialize, sub, items_nonnull = _LEAF, None, None, False
            if isinstance(t, GraphQLList):
                item, items_nonnull = _unwrap(t.of_type)
                kind = _LIST_LEAF
                t = item
            if isinstance(t, GraphQLScalarType | GraphQLEnumType):
                serialize = t.coerce_output_value
                if t is GraphQLInt:
                    serialize = _int_as_is(serialize)
                elif isinstance(t, GraphQLEnumType):
                    serialize = _enum_memo(serialize)
                elif t in _AS_IS and kind == _LEAF:
                    kind = _AS_IS_STR if _AS_IS[t] is str else _AS_IS_BOOL
            else:
                sub = self._sub_plan(t, details)
                if sub is None:
                    return None
                kind = _LIST_OBJECT if kind == _LIST_LEAF else _OBJECT
            entries.append(Entry(response_name, kind, attr, fast_fn, nonnull, serialize, sub,
                                 items_nonnull))
        return Plan(parent.name, parent.is_type_of, tuple(entries))


# -- running a plan ---------------------------------------------------------------------
def _runner(plan: Plan) -> Runner:
    """``plan`` as a function ``(source, context) -> dict | DECLINED``: a loop over its
    entries (generating Python source per plan instead gained 10% of the page, not enough
    to keep ``exec``; docs/performance.md)."""
    is_type_of = plan.is_type_of
    # The entries as plain tuples, with their sub-plans' runners in place of the sub-plans.
    entries: tuple[tuple[Any, ...], ...] = tuple(
        (e.name, e.kind, e.attr, e.fast_fn, e.nonnull, e.serialize,
         None if e.sub is None else _runner(e.sub), e.items_nonnull) for e in plan.entries)

    def run(src: Any, ctx: Any) -> Any:
        try:
            if is_type_of is not None and is_type_of(src, None) is not True:
                return DECLINED
            out: dict[str, Any] = {}
            for name, kind, attr, fast_fn, nonnull, serialize, sub, items_nonnull in entries:
                if attr is None:
                    v = fast_fn(src, ctx)
                    if v is MISSING:
                        return DECLINED
                else:
                    v = getattr(src, attr)
                if v is None:
                    if nonnull:
                        return DECLINED
                    out[name] = None
                    continue
                if kind == _AS_IS_STR:
                    if type(v) is not str:
                        v = serialize(v)
                        if v is None:
                            return DECLINED
                elif kind == _LEAF:
                    v = serialize(v)
                    if v is None:
                        return DECLINED
                elif kind == _OBJECT:
                    v = sub(v, ctx)
                    if v is DECLINED:
                        return DECLINED
                elif kind == _AS_IS_BOOL:
                    if type(v) is not bool:
                        v = serialize(v)
                        if v is None:
                            return DECLINED
                elif kind == _LIST_LEAF:
                    v = _list_leaf(v, serialize, items_nonnull)
                    if v is DECLINED:
                        return DECLINED
                else:
                    v = _list_object(v, ctx, sub, items_nonnull)
                    if v is DECLINED:
                        return DECLINED
                out[name] = v
            return out
        except Exception:  # noqa: BLE001 - graphql-core redoes it and reports the error
            return DECLINED

    return run


def _list_leaf(values: Any, serialize: Callable[[Any], Any], items_nonnull: bool) -> Any:
    if not isinstance(values, list | tuple):
        return DECLINED
    out: list[Any] = []
    for value in values:
        if value is None:
            if items_nonnull:
                return DECLINED
            out.append(None)
            continue
        v = serialize(value)
        if v is None:
            return DECLINED
        out.append(v)
    return out


def _list_object(values: Any, ctx: Any, run: Runner, items_nonnull: bool) -> Any:
    if not isinstance(values, list | tuple):
        return DECLINED
    out: list[Any] = []
    for value in values:
        if value is None:
            if items_nonnull:
                return DECLINED
            out.append(None)
            continue
        v = run(value, ctx)
        if v is DECLINED:
            return DECLINED
        out.append(v)
    return out
