"""The per-request context every resolver receives as ``info.context``.

Reuse it from other API modules (e.g. ``trace.py``): ``ctx = info.context`` then
``await ctx.db(fn)`` runs ``fn(conn)`` on a SQLAlchemy connection in a worker thread, and
``ctx.loaders`` holds this request's DataLoaders (see :mod:`fundtrack.api.loaders`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from fundtrack.config import Settings

if TYPE_CHECKING:
    from fundtrack.api.loaders import Loaders
    from fundtrack.auth import Viewer

T = TypeVar("T")


@dataclass
class ApiContext:
    """What a resolver may use: the database, who is asking, and batched loaders."""

    engine: Engine
    settings: Settings
    viewer: Viewer
    request: Any = None
    response: Any = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        from fundtrack.api.loaders import Loaders

        self.loaders = Loaders(self)

    async def db(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` on a fresh read connection in a thread (never on the event loop)."""
        return await run_in_threadpool(self.run_sync, fn)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect().execution_options(readonly=True) as conn:
            try:
                return fn(conn)
            finally:
                conn.rollback()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
