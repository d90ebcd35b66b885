"""The one place fundtrack touches graphql-core's and strawberry's private parts.

Why one place: graphql-core marks its executor's per-field methods ``:meta private:``,
and their signatures change between minor versions (3.3 added ``position_context`` and
incremental delivery; field sets became ``FieldDetails`` instead of AST nodes). The fast
path (:mod:`fundtrack.api.execution.plans`) overrides two of them, the request limits
(:mod:`fundtrack.api.limits`) read strawberry's graphql-core schema and repeat its
validation rules. Everything private is named here, and this module refuses to load
(a clear ``ImportError``) when the installed minors are not the ones pyproject.toml pins
and this code was written against: port this module, then widen the pin.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version
from typing import Any

from graphql import FieldNode, GraphQLField, GraphQLObjectType, GraphQLSchema
from strawberry.resolvers import is_default_resolver
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

#: Distribution -> the (major, minor) this module was written against; pyproject.toml
#: pins the same minors (``tests/test_api_compat.py`` checks that they agree).
PINNED: dict[str, tuple[int, int]] = {"graphql-core": (3, 3), "strawberry-graphql": (0, 341)}


def version_problems(installed: dict[str, str]) -> list[str]:
    """What is wrong with the ``installed`` versions (distribution -> version), if anything."""
    problems = []
    for dist, minor in PINNED.items():
        found = installed.get(dist, "not installed")
        if tuple(int(p) for p in found.split(".")[:2] if p.isdigit()) != minor:
            problems.append(f"{dist} {found} is installed, but fundtrack/api/execution/"
                            f"compat.py overrides private parts of {dist} "
                            f"{minor[0]}.{minor[1]}.x (pinned in pyproject.toml); install "
                            f"{minor[0]}.{minor[1]}.x, or port compat.py and widen the pin")
    return problems


_problems = version_problems({d: version(d) for d in PINNED})
if _problems:
    raise ImportError("; ".join(_problems))

#: Validation rules strawberry adds to graphql-core's (its private validation step); a
#: cached validation must run them too (:class:`fundtrack.api.limits.BoundedValidationCache`).
STRAWBERRY_VALIDATION_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)

#: What a hook returns to hand the work back to graphql-core.
DECLINED: Any = object()


def graphql_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema inside a ``strawberry.Schema``."""
    return schema._schema  # noqa: SLF001


def field_nodes(details: Iterable[Any]) -> list[FieldNode]:
    """The AST nodes of a field's ``FieldDetails`` (graphql-core 3.3)."""
    return [d.node for d in details]


def attribute_read(field: GraphQLField) -> str | None:
    """The Python attribute a strawberry field reads when it has no resolver, else None."""
    definition = strawberry_field(field)
    if definition is None or not definition.is_basic_field or field.resolve is None \
            or not is_default_resolver(field.resolve):
        return None
    return definition.python_name


def strawberry_field(field: GraphQLField) -> Any:
    """The ``StrawberryField`` behind a graphql-core field (None for graphql-core's own)."""
    return (field.extensions or {}).get("strawberry-definition")


class HookedExecution(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context with two hooks for completing a whole selection at
    once; a hook that returns :data:`DECLINED` leaves the work to graphql-core, unchanged.

    Overrides graphql-core 3.3's ``execute_fields`` and ``complete_list_value`` (both
    ``:meta private:``); only outside incremental delivery (``position_context`` None).
    """

    def complete_fields(self, parent_type: GraphQLObjectType, grouped: Any, source: Any) -> Any:
        """The object ``source`` completed for the selection ``grouped``, or DECLINED."""
        return DECLINED

    def complete_list(self, item_type: Any, details: Any, items: list[Any] | tuple[Any, ...],
                      ) -> Any:
        """The list ``items`` (of ``item_type``, maybe non-null) completed, or DECLINED."""
        return DECLINED

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any,
                       grouped_field_set: Any, position_context: Any) -> Any:
        if position_context is None:
            out = self.complete_fields(parent_type, grouped_field_set, source_value)
            if out is not DECLINED:
                return out
        return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                      position_context)

    def complete_list_value(self, return_type: Any, field_details_list: Any, info: Any,
                            path: Any, result: Any, position_context: Any) -> Any:
        if position_context is None and isinstance(result, list | tuple) and not any(
                n.directives for n in field_nodes(field_details_list)):
            out = self.complete_list(return_type.of_type, field_details_list, result)
            if out is not DECLINED:
                return out
        return super().complete_list_value(return_type, field_details_list, info, path, result,
                                           position_context)

    def subselection(self, obj_type: GraphQLObjectType, details: Any) -> Any:
        """The grouped field set below ``details`` for ``obj_type`` (graphql-core memoises
        it per request); None when something in it is deferred."""
        grouped, new_defers, *_ = self.collect_subfields(obj_type, details)
        return None if new_defers else grouped

    @property
    def coerced_variables(self) -> dict[str, Any]:
        return self.variable_values.coerced  # graphql-core 3.3: VariableValues

    @property
    def has_middleware(self) -> bool:
        """An extension hooks field resolution: it must see every field."""
        mm = self.middleware_manager
        return mm is not None and bool(mm.middlewares)


def quiet(cls: type[StrawberryGraphQLCoreExecutionContext],
          ) -> type[StrawberryGraphQLCoreExecutionContext]:
    """``cls`` whose variable errors carry no suggestions ("Did you mean 'amount'?"): with
    introspection off they would enumerate the schema (issue 18)."""

    class Quiet(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def build(cls, *args: Any, **kwargs: Any) -> Any:
            kwargs["hide_suggestions"] = True
            return super().build(*args, **kwargs)

    Quiet.__name__ = Quiet.__qualname__ = f"Quiet{cls.__name__}"
    return Quiet


#: strawberry's own execution context (the switch off).
PlainExecution = StrawberryGraphQLCoreExecutionContext
