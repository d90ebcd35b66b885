"""``syncRuns``: what ``fundtrack sync`` fetched, when, from where, and what failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from fundtrack.api.paging import Connection, PageArgs, connection
from fundtrack.sync.tables import SyncRun as SyncRunRow


@strawberry.type(description="A document that could not be synced, and why.")
class SyncError:
    key: str = strawberry.field(description="The Registry dataset id or the query's page.")
    url: str
    error: str


@strawberry.type(description="One source synced once by `fundtrack sync` (docs/sync.md).")
class SyncRun:
    source: str = strawberry.field(description="The source's name in the sync config file.")
    source_type: str
    url: str
    started_at: datetime
    finished_at: datetime | None
    status: str = strawberry.field(description="running, ok, failed (something failed) or "
                                               "interrupted (the next run resumed it).")
    listed: int
    downloaded: int
    not_modified: int
    unchanged: int
    imported: int
    withdrawn: int
    failed: int
    bytes_downloaded: float
    message: str | None
    errors: list[SyncError]

    @classmethod
    def from_row(cls, r: Any) -> SyncRun:
        return cls(source=r["source"], source_type=r["source_type"], url=r["url"],
                   started_at=r["started_at"], finished_at=r["finished_at"], status=r["status"],
                   listed=r["listed"], downloaded=r["downloaded"],
                   not_modified=r["not_modified"], unchanged=r["unchanged"],
                   imported=r["imported"], withdrawn=r["withdrawn"], failed=r["failed"],
                   bytes_downloaded=r["bytes_downloaded"], message=r["message"],
                   errors=[SyncError(key=e.get("key", ""), url=e.get("url", ""),
                                     error=e.get("error", "")) for e in r["errors"] or []])


@strawberry.type
class SyncQuery:
    @strawberry.field(description="Sync runs (one per source per `fundtrack sync`), newest first.")
    def sync_runs(self, info: Info, source: str | None = None,
                  first: int | None = None, after: str | None = None,
                  last: int | None = None, before: str | None = None,
                  ) -> Connection[SyncRun]:
        t = SyncRunRow.__table__
        q = select(t)
        if source is not None:
            q = q.where(t.c.source == source)
        return connection(info.context, q, [t.c.id.desc()], SyncRun.from_row,
                          PageArgs(first, after, last, before))
