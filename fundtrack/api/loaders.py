"""DataLoaders, built fresh per request: every nested lookup is one SQL statement per level.

A page of 500 flows with provider, receiver, activity, sectors and markers costs the same
number of statements as a page of 10 (``tests/test_api_loaders.py`` counts them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select
from strawberry.dataloader import DataLoader

from fundtrack import models as m

if TYPE_CHECKING:
    from fundtrack.api.context import ApiContext


def _one_per_key(ctx: ApiContext, table: Table, column: str,
                 ) -> Callable[[list[Any]], Any]:
    async def load(keys: list[Any]) -> Sequence[Any]:
        def run(conn: Connection) -> dict[Hashable, Any]:
            col = table.c[column]
            rows = conn.execute(select(table).where(col.in_(set(keys)))).mappings()
            return {r[column]: r for r in rows}

        found = await ctx.db(run)
        return [found.get(k) for k in keys]

    return load


def _many_per_key(ctx: ApiContext, table: Table, column: str, order: str = "id",
                  ) -> Callable[[list[Any]], Any]:
    async def load(keys: list[Any]) -> Sequence[list[Any]]:
        def run(conn: Connection) -> dict[Hashable, list[Any]]:
            col = table.c[column]
            out: dict[Hashable, list[Any]] = defaultdict(list)
            stmt = select(table).where(col.in_(set(keys))).order_by(table.c[order])
            for r in conn.execute(stmt).mappings():
                out[r[column]].append(r)
            return out

        found = await ctx.db(run)
        return [found.get(k, []) for k in keys]

    return load


class Loaders:
    """Row loaders keyed by primary key or reference; results are raw row mappings."""

    def __init__(self, ctx: ApiContext) -> None:
        t = m.Base.metadata.tables
        self.organisation_by_ref: DataLoader[str, Any] = DataLoader(
            _one_per_key(ctx, t["organisation"], "ref"))
        self.organisation_by_id: DataLoader[int, Any] = DataLoader(
            _one_per_key(ctx, t["organisation"], "id"))
        self.activity_by_id: DataLoader[int, Any] = DataLoader(
            _one_per_key(ctx, t["activity"], "id"))
        self.flow_by_id: DataLoader[int, Any] = DataLoader(_one_per_key(ctx, t["flow"], "id"))
        self.budget_by_id: DataLoader[int, Any] = DataLoader(_one_per_key(ctx, t["budget"], "id"))
        self.batch_by_id: DataLoader[int, Any] = DataLoader(
            _one_per_key(ctx, t["import_batch"], "id"))
        self.sectors_by_activity: DataLoader[int, list[Any]] = DataLoader(
            _many_per_key(ctx, t["activity_sector"], "activity_id"))
        self.markers_by_activity: DataLoader[int, list[Any]] = DataLoader(
            _many_per_key(ctx, t["policy_marker"], "activity_id"))
        self.countries_by_activity: DataLoader[int, list[Any]] = DataLoader(
            _many_per_key(ctx, t["activity_country"], "activity_id"))
        self.regions_by_activity: DataLoader[int, list[Any]] = DataLoader(
            _many_per_key(ctx, t["activity_region"], "activity_id"))
        self.participants_by_activity: DataLoader[int, list[Any]] = DataLoader(
            _many_per_key(ctx, t["participating_org"], "activity_id"))
        self.issues_by_batch: DataLoader[int, list[Any]] = DataLoader(
            _many_per_key(ctx, t["batch_issue"], "batch_id"))
