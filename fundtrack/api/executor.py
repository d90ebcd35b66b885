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
Objects and lists of objects whose selection compiles are then completed by a plain loop.

Anything else takes graphql-core's path, unchanged: fields with arguments, directives,
resolvers without a fast function, abstract types, middleware
(an extension hooking field resolution sees every field), and any value the plan cannot
complete as is (a null in a non-null field, a serialisation error, a relation not loaded
yet): the whole object or list is then completed again by graphql-core, which reports
errors with their paths exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
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


class FastExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with plain-loop completion for compilable selections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mm = self.middleware_manager
        self._enabled = not (mm is not None and mm.middlewares)
        # id(grouped field set) -> (the set, kept alive so the id stays unique; its plan)
        self._plans: dict[tuple[Any, int], tuple[Any, Plan | None]] = {}

    # -- compiling ---------------------------------------------------------------------
    def _plan(self, parent: GraphQLObjectType, grouped: Any) -> Plan | None:
        key = (parent, id(grouped))
        hit = self._plans.get(key)
        if hit is not None:
            return hit[1]
        plan = self._compile(parent, grouped) if self._enabled else None
        self._plans[key] = (grouped, plan)
        return plan

    def _sub_plan(self, obj: Any, details: Any) -> Plan | None:
        if not isinstance(obj, GraphQLObjectType):
            return None
        grouped, new_defers, *_ = self.collect_subfields(obj, details)
        return None if new_defers else self._plan(obj, grouped)

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

    # -- running -----------------------------------------------------------------------
    def _run(self, plan: Plan, source: Any) -> Any:
        """The completed dict for ``source``, or ``_FAIL`` (then graphql-core redoes it)."""
        ctx = self.context_value
        parent_name, is_type_of, entries = plan
        out: dict[str, Any] = {}
        try:
            if is_type_of is not None and is_type_of(source, None) is not True:
                return _FAIL
            for name, kind, attr, fast_fn, nonnull, serialize, sub, items_nonnull in entries:
                if kind == _TYPENAME:
                    out[name] = parent_name
                    continue
                value = getattr(source, attr) if attr is not None else fast_fn(source, ctx)
                if value is None:
                    if nonnull:
                        return _FAIL
                    out[name] = None
                elif value is MISSING:
                    return _FAIL
                elif kind == _AS_IS_STR and type(value) is str \
                        or kind == _AS_IS_BOOL and type(value) is bool:
                    out[name] = value
                elif kind == _LEAF or kind >= _AS_IS_STR:
                    v = serialize(value)  # type: ignore[misc]
                    if v is None:
                        return _FAIL
                    out[name] = v
                elif kind == _OBJECT:
                    v = self._run(sub, value)  # type: ignore[arg-type]
                    if v is _FAIL:
                        return _FAIL
                    out[name] = v
                else:
                    v = self._run_list(kind, serialize, sub, items_nonnull, value)
                    if v is _FAIL:
                        return _FAIL
                    out[name] = v
        except Exception:  # noqa: BLE001 - graphql-core redoes it and reports the error
            return _FAIL
        return out

    def _run_list(self, kind: int, serialize: Any, sub: Plan | None, items_nonnull: bool,
                  values: Any) -> Any:
        if not isinstance(values, list | tuple):
            return _FAIL
        out = []
        for value in values:
            if value is None:
                if items_nonnull:
                    return _FAIL
                out.append(None)
                continue
            v = serialize(value) if kind == _LIST_LEAF else self._run(
                sub, value)  # type: ignore[arg-type]
            if v is None or v is _FAIL:
                return _FAIL
            out.append(v)
        return out

    # -- hooks into graphql-core -------------------------------------------------------
    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any,
                       grouped_field_set: Any, position_context: Any) -> Any:
        if position_context is None:
            plan = self._plan(parent_type, grouped_field_set)
            if plan is not None:
                out = self._run(plan, source_value)
                if out is not _FAIL:
                    return out
        return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                      position_context)

    def complete_list_value(self, return_type: Any, field_details_list: Any, info: Any,
                            path: Any, result: Any, position_context: Any) -> Any:
        item, items_nonnull = _unwrap(return_type.of_type)
        if position_context is None and isinstance(result, list | tuple) and not any(
                d.node.directives for d in field_details_list):
            sub = self._sub_plan(item, field_details_list)
            if sub is not None:
                out = self._run_list(_LIST_OBJECT, None, sub, items_nonnull, result)
                if out is not _FAIL:
                    return out
        return super().complete_list_value(return_type, field_details_list, info, path, result,
                                           position_context)

