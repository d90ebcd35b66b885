"""The per-request context every resolver receives as ``info.context``.

Reuse it from other API modules (e.g. ``trace.py``): ``ctx = info.context`` then
``await ctx.db(fn)`` runs ``fn(conn)`` on a SQLAlchemy connection in a worker thread, and
``ctx.loaders`` holds this request's DataLoaders (see :mod:`fundtrack.api.loaders`).

Reads of a query operation go to the read replica when one is configured
(``FUNDTRACK_READ_DATABASE_URL``); a mutation reads from the primary, so its answer shows
its own writes. This module is the one place that choice is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from fundtrack.config import Settings

if TYPE_CHECKING:
    from fundtrack.api.loaders import Loaders
    from fundtrack.auth.tokens import Viewer

T = TypeVar("T")


@dataclass
class ApiContext:
    """What a resolver may use: the database, who is asking, and batched loaders."""

    engine: Engine
    settings: Settings
    viewer: Viewer
    request: Any = None
    response: Any = None
    replica: Engine | None = None
    use_replica: bool = False
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        from fundtrack.api.loaders import Loaders

        self.loaders = Loaders(self)

    async def db(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` on a fresh read connection in a thread (never on the event loop)."""
        return await run_in_threadpool(self.run_sync, fn)

    @property
    def read_engine(self) -> Engine:
        """The replica for a query operation when there is one, else the primary."""
        return self.replica if self.use_replica and self.replica is not None else self.engine

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.read_engine.connect().execution_options(readonly=True) as conn:
            try:
                return fn(conn)
            finally:
                conn.rollback()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


class ReplicaForQueries(SchemaExtension):
    """Let a query operation (never a mutation) read from the replica."""

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        if isinstance(ec.context, ApiContext) and ec.graphql_document is not None:
            try:
                ec.context.use_replica = ec.operation_type is OperationType.QUERY
            except RuntimeError:  # no such operation: the executor reports it
                ec.context.use_replica = False
        yield
