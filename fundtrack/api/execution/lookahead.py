"""Look-ahead loading: a page and the related rows its selection asks for, in one thread call.

Why: resolving relations through DataLoaders costs a coroutine per object and a worker-
thread hop per batch; for a page of 100 flows with provider, receiver and activity that was
most of the request. A connection instead reads which relations the client selected
(``info.selected_fields``), fetches them level by level in the same database call as the
page (one statement per loader and level, so the count does not grow with the page size),
and primes the request's DataLoaders. Resolvers then answer from the cache synchronously
(:meth:`fundtrack.api.loaders.Loaders.get`), and completion plans through the relations'
fast functions. The page itself reads only the columns of the selected fields
(:func:`narrow_columns`).

Part of the fast path: with ``FUNDTRACK_FAST_EXECUTOR=0`` :func:`node_selection` says
nothing is known, so a connection neither narrows nor prefetches, and relations load
through the DataLoaders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from sqlalchemy import Connection, Select
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from fundtrack.api.loaders import SPECS
from fundtrack.config import Settings

#: A selection tree: field name -> the selection below it.
Tree = dict[str, "Tree"]

#: GraphQL type -> {selected field path: (loader name, row column giving the key, child type)}.
#: A path may be nested through plain objects (``provider.organization``).
RELATIONS: dict[str, dict[str, tuple[str, str, str | None]]] = {
    "Flow": {
        "activity": ("activity_by_id", "activity_id", "Activity"),
        "provider.organization": ("organisation_by_ref", "provider_ref", "Organization"),
        "receiver.organization": ("organisation_by_ref", "receiver_ref", "Organization"),
        "reportingOrg": ("organisation_by_ref", "reporting_org_ref", "Organization"),
        "batch": ("batch_by_id", "batch_id", "ImportBatch"),
        "classification": ("classification_by_flow", "id", None),
    },
    "Activity": {
        "reportingOrg": ("organisation_by_ref", "reporting_org_ref", "Organization"),
        "sectors": ("sectors_by_activity", "id", None),
        "policyMarkers": ("markers_by_activity", "id", None),
        "genderSignificance": ("markers_by_activity", "id", None),
        "recipientCountries": ("countries_by_activity", "id", None),
        "recipientRegions": ("regions_by_activity", "id", None),
        "participatingOrgs": ("participants_by_activity", "id", None),
        "batch": ("batch_by_id", "batch_id", "ImportBatch"),
    },
    "Budget": {"activity": ("activity_by_id", "activity_id", "Activity")},
    "ImportBatch": {"issues": ("issues_by_batch", "id", None),
                    "publishers": ("publishers_by_batch", "id", None)},
    "Organization": {},
}


def selection_tree(selections: Iterable[Any]) -> Tree:
    """Merge fields, inline fragments and fragment spreads into one name tree."""
    tree: Tree = {}
    for s in selections:
        if isinstance(s, SelectedField):
            sub = tree.setdefault(s.name, {})
            _merge(sub, selection_tree(s.selections))
        elif isinstance(s, InlineFragment | FragmentSpread):
            _merge(tree, selection_tree(s.selections))
    return tree


def _merge(into: Tree, other: Tree) -> None:
    for k, v in other.items():
        _merge(into.setdefault(k, {}), v)


def node_selection(settings: Settings, info: Any) -> Tree | None:
    """What a connection field's client selected under ``nodes`` and ``edges { node }``;
    None when the fast path is off (nothing is looked ahead).

    Not cached: a cache per parsed document saved 0-2% of a page (docs/performance.md).
    """
    if not settings.fast_executor or info is None:
        return None
    tree = selection_tree(info.selected_fields)
    conn = next(iter(tree.values()), {})
    out: Tree = {}
    _merge(out, conn.get("nodes", {}))
    _merge(out, conn.get("edges", {}).get("node", {}))
    return out


def narrow_columns(query: Select[Any], type_name: str, tree: Tree,
                   ) -> tuple[Select[Any], dict[str, None] | None]:
    """``query`` reading only the columns the selection ``tree`` needs (``PAGE_COLUMNS``).

    Also returns every column name mapped to None: the builder reads every column, so each
    narrowed row is filled up to a full dict (:func:`full_rows`); the executor only reads
    the selected fields. ``(query, None)`` when the type has no column map or a selected
    field is not in it.
    """
    # Imported here, not at load: the types' modules build connections (``fundtrack.api.
    # organizations``), so paging, and this module under it, must load without them.
    from fundtrack.api.types import PAGE_COLUMNS

    fields = PAGE_COLUMNS.get(type_name)
    if fields is None:
        return query, None
    wanted = {"id"}
    for name in tree:
        cols = fields.get(name)
        if cols is None:
            return query, None
        wanted.update(cols)
    columns = list(query.selected_columns)
    return (query.with_only_columns(*[c for c in columns if c.name in wanted]),
            dict.fromkeys(c.name for c in columns))


def full_rows(result: Any, blank: dict[str, None]) -> list[dict[str, Any]]:
    """The rows of a narrowed ``result`` as dicts holding every column (None if not read)."""
    keys = list(result.keys())
    return [{**blank, **dict(zip(keys, r, strict=True))} for r in result]


def _subtree(tree: Tree, path: str) -> Tree | None:
    for part in path.split("."):
        if part not in tree:
            return None
        tree = tree[part]
    return tree


#: Rows fetched in the worker thread, to prime on the event loop: loader -> (keys, found).
Fetched = dict[str, tuple[set[Any], dict[Hashable, Any]]]


def prefetch(conn: Connection, type_name: str, rows: list[Any], tree: Tree,
             already: Callable[[str, set[Any]], set[Any]]) -> Fetched:
    """Fetch every relation ``tree`` selects below ``rows`` of ``type_name``, level by level.

    ``already(loader, keys)`` says which keys the request holds (they are not fetched again).
    """
    out: Fetched = {}
    level: list[tuple[str, list[Any], Tree]] = [(type_name, rows, tree)]
    while level:
        wanted: dict[str, set[Any]] = defaultdict(set)
        follow: list[tuple[str, set[Any], str, Tree]] = []  # (loader, keys, child type, tree)
        for tname, trows, ttree in level:
            for path, (loader, column, child) in RELATIONS.get(tname, {}).items():
                sub = _subtree(ttree, path)
                if sub is None:
                    continue
                keys = {r[column] for r in trows} - {None}
                wanted[loader] |= keys
                if child is not None and sub:
                    follow.append((loader, keys, child, sub))
        for loader, keys in wanted.items():
            seen, found = out.get(loader, (set(), {}))
            todo = keys - seen - already(loader, keys)
            if todo:
                found = {**found, **SPECS[loader].fetch(conn, todo)}
            out[loader] = (seen | todo, found)
        level = [(child, [found[k] for k in keys if found.get(k) is not None], sub)
                 for loader, keys, child, sub in follow
                 for found in (out[loader][1],)]
    return out
