"""The API's fast path, fenced: everything here exists only for speed.

One setting switches all of it: ``FUNDTRACK_FAST_EXECUTOR`` (:attr:`Settings.fast_executor
<fundtrack.config.Settings.fast_executor>`, default on). Off, the schema runs on plain
strawberry/graphql-core execution, relations load through the request's DataLoaders, and
the answers are the same (CI runs the API tests both ways); a page of 100 flows takes
about twice as long (docs/performance.md).

- :mod:`.lookahead`  a connection reads what its client selected below the nodes, reads
  only those columns of the page, and fetches the selected relations in the same
  worker-thread call (priming the request's loaders).
- :mod:`.plans`      completion plans: an object's selection completed by one loop over a
  plan compiled once per parsed selection, instead of graphql-core's per-field path.
- :mod:`.fields`     what a field offers the plans: :func:`~.fields.fast` metadata
  answering from what the request holds, or :data:`~.fields.MISSING`.
- :mod:`.compat`     every use of graphql-core's and strawberry's private parts, checked
  against the pinned minor versions at import.

A new field needs none of this: a plain attribute compiles into plans by itself, and a
field with a resolver takes graphql-core's path. A relation through the loaders
(``types._relation``) gets a fast function; to be prefetched by connections it is also
listed in :data:`.lookahead.RELATIONS`. A new ``Flow`` field needs its columns in
``types.FLOW_COLUMNS`` (a test checks).

Measured and dropped (docs/performance.md): plans generated as Python source and
``exec``-ed (10% of the page, not more), and a look-ahead cache keyed by AST node ids
(0-2%).
"""

from __future__ import annotations

from fundtrack.api.execution.compat import PlainExecution, quiet
from fundtrack.api.execution.plans import FastExecutor
from fundtrack.config import Settings


def execution_context_class(settings: Settings) -> type:
    """The graphql-core execution context the schema runs on: completion plans when the
    fast path is on, strawberry's own otherwise; without "Did you mean ...?" suggestions
    in variable errors when introspection is off (they would enumerate the schema)."""
    cls: type = FastExecutor if settings.fast_executor else PlainExecution
    return cls if settings.introspection else quiet(cls)
