"""The ASGI application: ``fundtrack serve`` runs ``create_app()`` with uvicorn.

Routes: ``/graphql`` (API and GraphiQL) and ``/healthz``. The web front adds its routes
to :func:`routes`.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from strawberry.asgi import GraphQL

from fundtrack.api.context import ApiContext
from fundtrack.api.http import GraphQLGuard
from fundtrack.auth import ANONYMOUS_VIEWER
from fundtrack.config import Settings, get_settings
from fundtrack.db import make_engine


class GraphQLApp(GraphQL):
    """Strawberry's ASGI view with our per-request context (viewer, loaders, engine)."""

    def __init__(self, engine: Engine, settings: Settings, replica: Engine | None = None) -> None:
        from fundtrack.api.schema import build_schema

        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,
        )
        self.engine = engine
        self.replica = replica
        self.settings = settings

    def decode_json(self, data: str | bytes) -> object:
        """JSON nested beyond Python's recursion limit is the client's mistake (issue 18: a
        body of 100,000 ``[`` was a 500)."""
        try:
            return super().decode_json(data)
        except RecursionError:
            raise HTTPException(400, "request body is JSON nested too deeply") from None

    async def get_context(self, request: Any, response: Any) -> ApiContext:  # type: ignore[override]
        viewer = request.scope.get("state", {}).get("viewer", ANONYMOUS_VIEWER)
        return ApiContext(engine=self.engine, settings=self.settings, viewer=viewer,
                          request=request, response=response, replica=self.replica)


async def healthz(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def routes(engine: Engine, settings: Settings, replica: Engine | None = None) -> list[BaseRoute]:
    graphql = GraphQLGuard(GraphQLApp(engine, settings, replica), engine, settings)
    return [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/healthz", healthz),
    ]


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Starlette:
    """The whole application; tests pass their own engine and settings.

    With ``settings.read_database_url`` GraphQL queries read from that replica
    (see :mod:`fundtrack.api.context`); everything else uses the primary ``engine``.
    """
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url,
                                   statement_timeout_ms=settings.statement_timeout_ms)
    replica = make_engine(settings.read_database_url,
                          statement_timeout_ms=settings.statement_timeout_ms) \
        if settings.read_database_url else None
    from fundtrack.web.routes import web_routes

    app = Starlette(routes=[*routes(engine, settings, replica), web_routes()], debug=False)
    app.state.engine = engine
    app.state.replica = replica
    app.state.settings = settings
    return app
