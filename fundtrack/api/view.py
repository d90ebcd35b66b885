"""The GraphQL view: strawberry's ASGI app with fundtrack's per-request context."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse
from strawberry.asgi import GraphQL

from fundtrack.api.context import ApiContext
from fundtrack.auth.tokens import ANONYMOUS_VIEWER
from fundtrack.config import Settings


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

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:  # type: ignore[override]
        """GraphiQL from our own template and vendored assets: works offline, no CDN."""
        from fundtrack.web.routes import env

        return HTMLResponse(env().get_template("graphiql.html").render())

    async def get_context(self, request: Any, response: Any) -> ApiContext:  # type: ignore[override]
        viewer = request.scope.get("state", {}).get("viewer", ANONYMOUS_VIEWER)
        return ApiContext(engine=self.engine, settings=self.settings, viewer=viewer,
                          request=request, response=response, replica=self.replica)
