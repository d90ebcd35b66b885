"""A faster graphql-core executor for selections of plain attributes.

Why: graphql-core resolves one field at a time (a ``GraphQLResolveInfo``, a ``Path``,
``complete_value`` and two awaitable checks per field), about 3-5 µs a field here. A page
of 100 flows with its relations is ~2,000 fields; ``flowsAggregate`` by year and country
is ~14,000. Most of those fields just read an attribute and serialise a scalar.

How: for an object's selection, a *plan* is compiled once per request and selection:
for each field, the attribute to read (strawberry fields without a resolver) or a
``fast`` function given in the field's metadata (relations already loaded for this
request, see :func:`fast`), how to serialise it (the scalar's or enum's own
``coerce_output_value``, so output is identical), and the plan of its sub-selection.
Each plan becomes a straight-line Python function (generated once per distinct plan and
shared by later requests for the same query); objects and lists of objects whose
selection compiles are completed by calling it.

Anything else takes graphql-core's path, unchanged: fields with arguments, directives,
resolvers without a fast function, abstract types, middleware
(an extension hooking field resolution sees every field), and any value the plan cannot
complete as is (a null in a non-null field, a serialisation error, a relation not loaded
yet): the whole object or list is then completed again by graphql-core, which reports
errors with their paths exactly as before.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from functools import cache
from typing import Any

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
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from fundtrack.api.memo import MISS, QUERY_CACHE_BYTES, Lru, node_weight, variables_key

#: Key in ``strawberry.field(metadata=...)`` for a resolver's fast path (see :func:`fast`).
FAST = "fundtrack.fast"
#: What a fast function returns when it cannot answer without the resolver.
MISSING: Any = object()
_FAIL: Any = object()

# Entry kinds of a plan.
_LEAF, _OBJECT, _LIST_LEAF, _LIST_OBJECT, _TYPENAME, _AS_IS_STR, _AS_IS_BOOL = range(7)

#: One field of a plan: (response name, kind, attribute, fast function, non-null,
#: serialiser, sub-plan, items non-null).
Entry = tuple[str, int, str | None, Callable[[Any, Any], Any] | None, bool,
              Callable[[Any], Any] | None, "Plan | None", bool]
#: A compiled selection: the object type's name (for ``__typename``), its ``is_type_of``
#: check (strawberry's reads only the object) and its fields.
Plan = tuple[str, Callable[[Any, Any], Any] | None, tuple[Entry, ...]]


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


def fast(fn: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """Field metadata: ``fn(source, context)`` answers the field without its resolver, or
    returns :data:`MISSING` (then the resolver runs as usual). It must give the same
    value the resolver would, and never start work (no coroutine, no query)."""
    return {FAST: fn}


def _unwrap(t: Any) -> tuple[Any, bool]:
    if isinstance(t, GraphQLNonNull):
        return t.of_type, True
    return t, False


#: (schema, type, response names, ids of the AST nodes, variables) -> (schema, nodes, plan,
#: function): see :meth:`FastExecutor._compiled`. The nodes keep their document alive, so
#: the cache is bounded by the documents' estimated bytes too.
_COMPILED = Lru(512, maxbytes=QUERY_CACHE_BYTES)


class FastExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor; selections that compile are completed by their plan's
    generated function, everything else by graphql-core."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mm = self.middleware_manager
        self._enabled = not (mm is not None and mm.middlewares)
        # id(grouped field set) -> (the set, kept alive so the id stays unique; its plan
        # and the plan's function)
        self._plans: dict[tuple[Any, int], tuple[Any, Plan | None, Any]] = {}

    # -- compiling ---------------------------------------------------------------------
    def _plan(self, parent: GraphQLObjectType, grouped: Any) -> Plan | None:
        return self._planned(parent, grouped)[1]

    def _planned(self, parent: GraphQLObjectType, grouped: Any,
                 ) -> tuple[Any, Plan | None, Callable[[Any, Any], Any] | None]:
        """(grouped, plan, its function), once per request and selection."""
        key = (parent, id(grouped))
        hit = self._plans.get(key)
        if hit is None:
            plan, fn = self._compiled(parent, grouped) if self._enabled else (None, None)
            hit = self._plans[key] = (grouped, plan, fn)
        return hit

    def _compiled(self, parent: GraphQLObjectType, grouped: Any,
                  ) -> tuple[Plan | None, Callable[[Any, Any], Any] | None]:
        """(plan, function) of a selection, shared across requests (compiling the page's
        selections cost ~0.25 ms per request).

        Keyed by the identity of the selection's AST nodes (the parser cache hands out the
        same nodes for a repeated query; they are kept, so an id reused after a document
        left that cache never hits) and the variables (``@skip``/``@include`` below).
        """
        nodes = [d.node for details in grouped.values() for d in details]
        values = self.variable_values  # graphql-core 3.3: VariableValues(sources, coerced)
        vkey = variables_key(getattr(values, "coerced", values))
        key = None if vkey is None else (
            id(self.schema), parent.name, tuple(grouped), tuple(map(id, nodes)), vkey)
        if key is not None:
            hit = _COMPILED.get(key)
            if hit is not MISS and hit[0] is self.schema and all(
                    a is b for a, b in zip(hit[1], nodes, strict=True)):
                return hit[2], hit[3]
        plan = self._compile(parent, grouped)
        fn = None if plan is None else _function(plan)
        if key is not None:
            _COMPILED.put(key, (self.schema, nodes, plan, fn),
                          node_weight(nodes[0]) if nodes else 0)
        return plan, fn

    def _sub_plan(self, obj: Any, details: Any) -> Plan | None:
        if not isinstance(obj, GraphQLObjectType):
            return None
        grouped, new_defers, *_ = self.collect_subfields(obj, details)
        return None if new_defers else self._plan(obj, grouped)

    def _sub_function(self, obj: Any, details: Any) -> Callable[[Any, Any], Any] | None:
        if not isinstance(obj, GraphQLObjectType):
            return None
        grouped, new_defers, *_ = self.collect_subfields(obj, details)
        return None if new_defers else self._planned(obj, grouped)[2]

    def _compile(self, parent: GraphQLObjectType, grouped: Any) -> Plan | None:
        entries: list[Entry] = []
        for response_name, details in grouped.items():
            node = details[0].node
            if any(d.node.directives or d.node.arguments for d in details):
                return None
            name = node.name.value
            if name == "__typename":
                entries.append((response_name, _TYPENAME, None, None, True, None, None, True))
                continue
            field_def = self.schema.get_field(parent, name)
            if field_def is None or field_def.args:
                return None
            definition = (field_def.extensions or {}).get("strawberry-definition")
            if definition is None:
                return None
            attr: str | None = None
            fast_fn = (definition.metadata or {}).get(FAST)
            if fast_fn is None:
                if not (definition.is_basic_field
                        and getattr(field_def.resolve, "_is_default", False)):
                    return None
                attr = definition.python_name
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
                elif t in _AS_IS and kind == _LEAF:
                    kind = _AS_IS_STR if _AS_IS[t] is str else _AS_IS_BOOL
            else:
                sub = self._sub_plan(t, details)
                if sub is None:
                    return None
                kind = _LIST_OBJECT if kind == _LIST_LEAF else _OBJECT
            entries.append((response_name, kind, attr, fast_fn, nonnull, serialize, sub,
                            items_nonnull))
        return parent.name, parent.is_type_of, tuple(entries)

    # -- hooks into graphql-core -------------------------------------------------------
    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any,
                       grouped_field_set: Any, position_context: Any) -> Any:
        if position_context is None:
            fn = self._planned(parent_type, grouped_field_set)[2]
            if fn is not None:
                out = fn(source_value, self.context_value)
                if out is not _FAIL:
                    return out
        return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                      position_context)

    def complete_list_value(self, return_type: Any, field_details_list: Any, info: Any,
                            path: Any, result: Any, position_context: Any) -> Any:
        item, items_nonnull = _unwrap(return_type.of_type)
        if position_context is None and isinstance(result, list | tuple) and not any(
                d.node.directives for d in field_details_list):
            fn = self._sub_function(item, field_details_list)
            if fn is not None:
                try:
                    out = _list_object(result, self.context_value, fn, items_nonnull)
                except Exception:  # noqa: BLE001 - graphql-core redoes it and reports the error
                    out = _FAIL
                if out is not _FAIL:
                    return out
        return super().complete_list_value(return_type, field_details_list, info, path, result,
                                           position_context)


class QuietFastExecutor(FastExecutor):
    """:class:`FastExecutor` whose variable errors carry no suggestions ("Did you mean
    'amount'?"): with introspection off they would enumerate the schema (issue 18)."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)


# -- plans as Python functions ----------------------------------------------------------
#: Plan -> its generated function. Plans are equal across requests for the same query and
#: schema (their parts are the schema's own functions), so each is generated once.
_FUNCTIONS: dict[Plan, Callable[[Any, Any], Any]] = {}


def _function(plan: Plan) -> Callable[[Any, Any], Any]:
    """``plan`` as a function ``(source, context) -> dict | _FAIL``.

    A straight-line function per selection (one statement per field, no loop over entries,
    no tuple unpacking) costs about half as much per field as interpreting the plan.
    """
    fn = _FUNCTIONS.get(plan)
    if fn is None:
        if len(_FUNCTIONS) >= 2048:  # bound the memory: many distinct ad-hoc queries
            _FUNCTIONS.clear()
        fn = _FUNCTIONS[plan] = _generate(plan)
    return fn


def _generate(plan: Plan) -> Callable[[Any, Any], Any]:
    type_name, is_type_of, entries = plan
    ns: dict[str, Any] = {"FAIL": _FAIL, "MISSING": MISSING, "is_type_of": is_type_of,
                          "list_leaf": _list_leaf, "list_object": _list_object}
    code = ["def run(src, ctx):", "    try:"]
    if is_type_of is not None:
        code.append("        if is_type_of(src, None) is not True: return FAIL")
    code.append("        out = {}")
    for i, (name, kind, attr, fast_fn, nonnull, serialize, sub, items_nonnull) in \
            enumerate(entries):
        key = repr(name)
        if kind == _TYPENAME:
            code.append(f"        out[{key}] = {type_name!r}")
            continue
        if attr is None:
            ns[f"f{i}"] = fast_fn
            code += [f"        v = f{i}(src, ctx)", "        if v is MISSING: return FAIL"]
        elif attr.isidentifier() and not keyword.iskeyword(attr):
            code.append(f"        v = src.{attr}")
        else:
            ns[f"a{i}"] = attr
            code.append(f"        v = getattr(src, a{i})")
        code += ["        if v is None:",
                 "            return FAIL" if nonnull else f"            out[{key}] = None",
                 "        else:"]
        ns[f"s{i}"] = serialize
        if kind in (_AS_IS_STR, _AS_IS_BOOL):
            py = "str" if kind == _AS_IS_STR else "bool"
            code += [f"            if type(v) is not {py}:", f"                v = s{i}(v)",
                     "                if v is None: return FAIL"]
        elif kind == _LEAF:
            code += [f"            v = s{i}(v)", "            if v is None: return FAIL"]
        elif kind == _OBJECT:
            ns[f"r{i}"] = _function(sub)  # type: ignore[arg-type]
            code += [f"            v = r{i}(v, ctx)", "            if v is FAIL: return FAIL"]
        elif kind == _LIST_LEAF:
            code += [f"            v = list_leaf(v, s{i}, {items_nonnull})",
                     "            if v is FAIL: return FAIL"]
        else:
            ns[f"r{i}"] = _function(sub)  # type: ignore[arg-type]
            code += [f"            v = list_object(v, ctx, r{i}, {items_nonnull})",
                     "            if v is FAIL: return FAIL"]
        code.append(f"            out[{key}] = v")
    code += ["        return out", "    except Exception:", "        return FAIL"]
    exec(compile("\n".join(code), f"<fundtrack plan for {type_name}>", "exec"), ns)  # noqa: S102
    return ns["run"]


def _list_leaf(values: Any, serialize: Callable[[Any], Any], items_nonnull: bool) -> Any:
    if not isinstance(values, list | tuple):
        return _FAIL
    out = []
    for value in values:
        if value is None:
            if items_nonnull:
                return _FAIL
            out.append(None)
            continue
        v = serialize(value)
        if v is None:
            return _FAIL
        out.append(v)
    return out


def _list_object(values: Any, ctx: Any, run: Callable[[Any, Any], Any],
                 items_nonnull: bool) -> Any:
    if not isinstance(values, list | tuple):
        return _FAIL
    out = []
    for value in values:
        if value is None:
            if items_nonnull:
                return _FAIL
            out.append(None)
            continue
        v = run(value, ctx)
        if v is _FAIL:
            return _FAIL
        out.append(v)
    return out
