"""Connections: ``first/after/last/before`` over any SQL select, with ``totalCount``.

Cursors are opaque offsets into the ordered result (the order always ends with the
primary key, so it is total). Page sizes default to 50 and are capped at 500: asking
for more is an error that names the cap, as GitHub's API does.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy import Connection as SqlConnection
from sqlalchemy import Integer, Select, bindparam, func, select

from fundtrack.api.context import ApiContext
from fundtrack.api.execution.lookahead import (
    Tree,
    full_rows,
    narrow_columns,
    node_selection,
    prefetch,
)
from fundtrack.api.memo import MISS, Lru
from fundtrack.query.ids import int_pk

DEFAULT_PAGE = 50
MAX_PAGE = 500

T = TypeVar("T")


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arg: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, offset = raw.split(":", 1)
        value = int_pk(offset)  # ASCII digits only: "o:²" was an internal error
        if tag != "o" or value is None:
            raise ValueError
    except ValueError:  # binascii.Error and UnicodeError are ValueErrors
        raise GraphQLError(f"`{arg}` is not a valid cursor: {cursor[:60]!r}") from None
    return value


def check_page_size(value: int | None, arg: str) -> None:
    if value is None:
        return
    if value < 0:
        raise GraphQLError(f"`{arg}` must not be negative (got {value})")
    if value > MAX_PAGE:
        raise GraphQLError(
            f"`{arg}` is {value}, above the maximum page size of {MAX_PAGE}; "
            "page through with `after`/`before`")


@dataclass(frozen=True)
class PageArgs:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def validate(self) -> None:
        check_page_size(self.first, "first")
        check_page_size(self.last, "last")

    @property
    def size(self) -> int:
        """The largest number of items this page may hold (for cost estimates)."""
        if self.first is None and self.last is None:
            return DEFAULT_PAGE
        return max(self.first or 0, self.last or 0)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass
class _Page(Generic[T]):
    items: list[T]
    start: int
    has_next: bool
    has_previous: bool


@strawberry.type
class Connection(Generic[T]):
    """A page of a list, with the size of the whole (filtered) list."""

    _ctx: strawberry.Private[ApiContext]
    _query: strawberry.Private[Select[Any]]
    #: The ordered page statement; offset and limit are the parameters ``page_offset`` and
    #: ``page_limit``.
    _stmt: strawberry.Private[Select[Any]]
    _build: strawberry.Private[Callable[[Any], T]]
    _args: strawberry.Private[PageArgs]
    #: GraphQL type of the nodes and what the client selected below them (for prefetch).
    _kind: strawberry.Private[str | None] = None
    _tree: strawberry.Private[Tree | None] = None
    #: Set when the page reads only the selected fields' columns: every column -> None.
    _blank: strawberry.Private[dict[str, None] | None] = None
    # Shared futures: nodes, edges and pageInfo selected together run one query.
    _count: strawberry.Private[asyncio.Future[int] | None] = None
    _page: strawberry.Private[asyncio.Future[_Page[T]] | None] = None

    async def _total(self) -> int:
        if self._count is None:
            stmt = select(func.count()).select_from(self._query.order_by(None).subquery())
            self._count = asyncio.ensure_future(
                self._ctx.db(lambda c: int(c.execute(stmt).scalar_one())))
        return await self._count

    async def _load(self) -> _Page[T]:
        if self._page is None:
            self._page = asyncio.ensure_future(self._compute())
        return await self._page

    async def _compute(self) -> _Page[T]:
        a = self._args
        start = decode_cursor(a.after, "after") + 1 if a.after else 0
        end: int | None = decode_cursor(a.before, "before") if a.before else None
        first = a.first if a.first is not None or a.last is not None else DEFAULT_PAGE
        if first is not None:
            end = start + first if end is None else min(end, start + first)
        if a.last is not None:
            if end is None:
                end = await self._total()
            start = max(start, end - a.last)
        assert end is not None
        limit = max(end - start, 0)
        stmt, window = self._stmt, {"page_offset": start, "page_limit": limit + 1}
        ctx, kind, tree, blank = self._ctx, self._kind, self._tree, self._blank

        def run(conn: SqlConnection) -> tuple[list[Any], Any]:
            result = conn.execute(stmt, window)
            rows = full_rows(result, blank) if blank is not None else list(result.mappings())
            if not (kind and tree and rows):
                return rows, {}
            return rows, prefetch(conn, kind, rows[:limit], tree, ctx.loaders.cached_keys)

        # One thread hop for the page and every relation selected below it.
        rows, fetched = await self._ctx.db(run) if limit else ([], {})
        for loader, (keys, found) in fetched.items():
            ctx.loaders.prime(loader, keys, found)
        return _Page(
            items=[self._build(r) for r in rows[:limit]],
            start=start,
            has_next=len(rows) > limit,
            has_previous=start > 0,
        )

    @strawberry.field(description="How many items the whole list holds, across all pages.")
    async def total_count(self) -> int:
        return await self._total()

    @strawberry.field
    async def nodes(self) -> list[T]:
        return (await self._load()).items

    @strawberry.field
    async def edges(self) -> list[Edge[T]]:
        page = await self._load()
        return [Edge(cursor=encode_cursor(page.start + i), node=n) for i, n in enumerate(page.items)]

    @strawberry.field
    async def page_info(self) -> PageInfo:
        page = await self._load()
        n = len(page.items)
        return PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=encode_cursor(page.start) if n else None,
            end_cursor=encode_cursor(page.start + n - 1) if n else None,
        )


#: (caller's shape key, selected fields) -> (page statement, blank row): see :func:`connection`.
_STATEMENTS = Lru(256)


def connection(ctx: ApiContext, query: Select[Any], order: Sequence[Any],
               build: Callable[[Any], T], args: PageArgs, *, kind: str | None = None,
               info: Any = None, shape: Hashable | None = None) -> Connection[T]:
    """A lazy connection: SQL runs only for the parts the client selected.

    With ``kind`` (the node's GraphQL type) and the connection field's ``info``, the fast
    path (:mod:`fundtrack.api.execution.lookahead`) fetches the relations selected below
    the nodes together with the page, and reads only the selected fields' columns.

    ``shape``, when given, says that ``query`` and ``order`` hold no values of their own
    (no filter): they are the same for every request with an equal ``shape``. The page
    statement is then built once per shape and selection and reused, so SQLAlchemy finds
    its cache key memoised instead of deriving it (building and keying cost ~0.1 ms).
    """
    args.validate()
    tree = node_selection(ctx.settings, info) if kind else None
    key = (shape, kind, frozenset(tree) if tree is not None else None)
    found = _STATEMENTS.get(key) if shape is not None else MISS
    if found is MISS:
        found = _page_statement(query, order, kind, tree)
        if shape is not None:
            _STATEMENTS.put(key, found)
    stmt, blank = found
    return Connection(_ctx=ctx, _query=query, _stmt=stmt, _build=build, _args=args,
                      _kind=kind, _tree=tree, _blank=blank)


def _page_statement(query: Select[Any], order: Sequence[Any], kind: str | None,
                    tree: Tree | None) -> tuple[Select[Any], dict[str, None] | None]:
    """The ordered page of ``query`` (narrowed to the selected columns) and its blank row."""
    blank = None
    if kind and tree is not None:
        query, blank = narrow_columns(query, kind, tree)
    stmt = query.order_by(*order).offset(bindparam("page_offset", type_=Integer)) \
        .limit(bindparam("page_limit", type_=Integer))
    return stmt, blank
