"""What a field offers the fast path: a ``fast`` function in its metadata.

A field with a resolver normally takes graphql-core's per-field path. When the answer is
already at hand (a relation whose row the request holds), the field can say so:
``strawberry.field(metadata=fast(fn))``, where ``fn(source, context)`` gives the value the
resolver would, or :data:`MISSING` to let the resolver run. With the fast path off
(``FUNDTRACK_FAST_EXECUTOR=0``) the metadata is ignored and only the resolver runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Key in ``strawberry.field(metadata=...)`` for a resolver's fast path (see :func:`fast`).
FAST = "fundtrack.fast"
#: What a fast function returns when it cannot answer without the resolver.
MISSING: Any = object()


def fast(fn: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """Field metadata: ``fn(source, context)`` answers the field without its resolver, or
    returns :data:`MISSING` (then the resolver runs as usual). It must give the same
    value the resolver would, and never start work (no coroutine, no query)."""
    return {FAST: fn}
