"""DataLoaders, built fresh per request: every nested lookup is one SQL statement per level.

A page of 500 flows with provider, receiver, activity, sectors and markers costs the same
number of statements as a page of 10 (``tests/test_api_loaders.py`` counts them).

Two ways in, one cache: with the fast path on, connections look ahead at the selection
and fetch the related rows in the same worker-thread call as the page
(:mod:`fundtrack.api.execution.lookahead`), then *prime* these loaders; resolvers call
:meth:`Loaders.get`, which answers from the cache without a coroutine when the request
holds the row, and otherwise makes a batched DataLoader load (one thread hop per batch:
``node(id:)``, mutation payloads, and every relation with the fast path off).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, Table, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from strawberry.dataloader import DataLoader

from fundtrack.api.execution.fields import MISSING
from fundtrack.db.metadata import metadata

if TYPE_CHECKING:
    from fundtrack.api.context import ApiContext



def dict_rows(result: Any) -> list[dict[str, Any]]:
    """A result's rows as plain dicts: built in C from the row tuples, and read by the
    builders faster than SQLAlchemy's ``RowMapping`` (51 activities: 0.53 -> 0.41 ms)."""
    keys = list(result.keys())
    return [dict(zip(keys, r, strict=True)) for r in result]


@dataclass(frozen=True)
class LoaderSpec:
    """Rows of ``table`` whose ``column`` equals the key: one row, or a list (``many``)."""

    table: str
    column: str
    many: bool = False

    def fetch(self, conn: Connection, keys: Iterable[Any]) -> dict[Hashable, Any]:
        """One statement for all ``keys``: key -> row (or list of rows, in id order)."""
        wanted = {k for k in keys if k is not None}
        if not wanted:
            return {}
        stmt = _statement(self, conn.dialect.name == "postgresql")
        rows = dict_rows(conn.execute(stmt, {"keys": list(wanted)}))
        if not self.many:
            return {r[self.column]: r for r in rows}
        out: dict[Hashable, list[Any]] = defaultdict(list)
        for r in rows:
            out[r[self.column]].append(r)
        return out

    def result(self, found: dict[Hashable, Any], key: Any) -> Any:
        return found.get(key, [] if self.many else None)


@cache
def _statement(spec: LoaderSpec, postgres: bool) -> Select[Any]:
    """The spec's statement, built once: SQLAlchemy then reuses its cache key and compiled
    form instead of deriving them per request (~0.14 ms for the page's activities)."""
    t: Table = metadata.tables[spec.table]  # type: ignore[assignment]
    col = t.c[spec.column]
    if postgres:
        # One array parameter: the statement text is the same for any number of keys,
        # so psycopg prepares it once (an IN list of n parameters is new text each time).
        cond = col == any_(bindparam("keys", type_=ARRAY(col.type)))
    else:
        cond = col.in_(bindparam("keys", expanding=True))
    stmt = select(t).where(cond)
    if not spec.many:
        return stmt
    return stmt.order_by(t.c.id) if "id" in t.c else stmt.order_by(*t.primary_key.columns)


#: Loader name -> what it loads. The look-ahead's relations
#: (:data:`fundtrack.api.execution.lookahead.RELATIONS`) name these.
SPECS: dict[str, LoaderSpec] = {
    "organisation_by_ref": LoaderSpec("organisation", "ref"),
    "organisation_by_id": LoaderSpec("organisation", "id"),
    "activity_by_id": LoaderSpec("activity", "id"),
    "flow_by_id": LoaderSpec("flow", "id"),
    "budget_by_id": LoaderSpec("budget", "id"),
    "batch_by_id": LoaderSpec("import_batch", "id"),
    "sectors_by_activity": LoaderSpec("activity_sector", "activity_id", many=True),
    "markers_by_activity": LoaderSpec("policy_marker", "activity_id", many=True),
    "countries_by_activity": LoaderSpec("activity_country", "activity_id", many=True),
    "regions_by_activity": LoaderSpec("activity_region", "activity_id", many=True),
    "participants_by_activity": LoaderSpec("participating_org", "activity_id", many=True),
    "issues_by_batch": LoaderSpec("batch_issue", "batch_id", many=True),
    "publishers_by_batch": LoaderSpec("batch_publisher", "batch_id", many=True),
    "fund_by_id": LoaderSpec("fund", "id"),
    "classification_by_flow": LoaderSpec("flow_classification", "flow_id", many=True),
}


def _batch_fn(ctx: ApiContext, spec: LoaderSpec) -> Callable[[list[Any]], Any]:
    async def load(keys: list[Any]) -> list[Any]:
        found = await ctx.db(lambda conn: spec.fetch(conn, keys))
        return [spec.result(found, k) for k in keys]

    return load


class Loaders:
    """Row loaders keyed by primary key or reference; results are raw row mappings."""

    organisation_by_ref: DataLoader[str, Any]
    organisation_by_id: DataLoader[int, Any]
    activity_by_id: DataLoader[int, Any]
    flow_by_id: DataLoader[int, Any]
    budget_by_id: DataLoader[int, Any]
    batch_by_id: DataLoader[int, Any]
    sectors_by_activity: DataLoader[int, list[Any]]
    markers_by_activity: DataLoader[int, list[Any]]
    countries_by_activity: DataLoader[int, list[Any]]
    regions_by_activity: DataLoader[int, list[Any]]
    participants_by_activity: DataLoader[int, list[Any]]
    issues_by_batch: DataLoader[int, list[Any]]
    publishers_by_batch: DataLoader[int, list[Any]]
    fund_by_id: DataLoader[int, Any]
    classification_by_flow: DataLoader[int, list[Any]]

    def __init__(self, ctx: ApiContext) -> None:
        for name, spec in SPECS.items():
            setattr(self, name, DataLoader(_batch_fn(ctx, spec)))
        # Objects built from cached rows, shared by every resolver of this request.
        self._built: dict[tuple[str, Hashable, Any], Any] = {}

    def cached_keys(self, name: str, keys: Iterable[Any]) -> set[Any]:
        """The ``keys`` this request already holds (or is loading) for loader ``name``."""
        cache = getattr(self, name).cache_map
        return {k for k in keys if cache.get(k) is not None}

    def prime(self, name: str, keys: Iterable[Any], found: dict[Hashable, Any]) -> None:
        """Store prefetched rows; keys that were looked for and not found are primed too."""
        spec = SPECS[name]
        getattr(self, name).prime_many({k: spec.result(found, k) for k in keys if k is not None})

    def peek(self, name: str, key: Any, build: Callable[[Any], Any]) -> Any:
        """``build(row)`` for ``key`` if this request holds the row, else ``MISSING``.

        Starts no work (no coroutine, no query): :meth:`get` starts with it, and the
        relations' fast functions (``fundtrack.api.types._relation``) are made of it.
        The built object is made once per request and key.
        """
        memo = (name, key, build)
        done = self._built.get(memo, MISSING)
        if done is not MISSING:
            return done
        future = getattr(self, name).cache_map.get(key)
        if future is not None and future.done() and not future.cancelled() \
                and future.exception() is None:
            value = build(future.result())
            self._built[memo] = value
            return value
        return MISSING

    def get(self, name: str, key: Any, build: Callable[[Any], Any]) -> Any:
        """``build(row)`` for ``key``: the value itself when cached, otherwise an awaitable.

        Resolvers return this directly, so a prefetched relation costs no coroutine.
        """
        value = self.peek(name, key, build)
        if value is not MISSING:
            return value
        memo = (name, key, build)
        loader = getattr(self, name)

        async def later() -> Any:
            value = build(await loader.load(key))
            self._built[memo] = value
            return value

        return later()
