"""The ASGI application: ``fundtrack serve`` runs ``create_app()`` with uvicorn.

Routes: ``/graphql`` (API and GraphiQL), ``/healthz`` (readiness: templates, static
files and the database answer) and ``/livez`` (liveness: the process answers). The web
front adds its routes to :func:`routes`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from fundtrack.api.http import GraphQLGuard
from fundtrack.api.view import GraphQLApp
from fundtrack.config import Settings, configure_logging, get_settings
from fundtrack.db import make_engine

logger = logging.getLogger(__name__)


async def livez(_request: Request) -> PlainTextResponse:
    """Liveness: the process answers (it touches nothing else)."""
    return PlainTextResponse("ok")


def readiness_problems(engine: Engine) -> list[str]:
    """What would stop a page from rendering: templates, static files, the database.

    Why: a container built from a wheel without templates used to answer every page with
    500 while ``/healthz`` said 200; the health check must fail exactly when pages do.
    """
    from sqlalchemy import select

    from fundtrack.ledger.tables import ImportBatch
    from fundtrack.web.routes import PAGE_TEMPLATES, STATIC, env

    problems: list[str] = []
    try:
        for name in PAGE_TEMPLATES:
            env().get_template(name)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        problems.append(f"templates: {type(exc).__name__}: {exc}")
    missing = [n for n in ("app.css", "graphiql/graphiql.min.js") if not (STATIC / n).is_file()]
    if missing:
        problems.append("static files missing: " + ", ".join(missing))
    try:
        with engine.connect() as conn:
            conn.execute(select(ImportBatch.id).limit(1)).all()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"database: {type(exc).__name__}")
    return problems


def healthz_endpoint(engine: Engine) -> Any:
    """Readiness for Docker and balancers: 200 only if a page could be served now."""
    async def healthz(_request: Request) -> PlainTextResponse:
        problems = await run_in_threadpool(readiness_problems, engine)
        if problems:
            logger.warning("health check failed: %s", "; ".join(problems))
            return PlainTextResponse("not ready: " + "; ".join(problems), status_code=503)
        return PlainTextResponse("ok")
    return healthz


def routes(engine: Engine, settings: Settings, replica: Engine | None = None) -> list[BaseRoute]:
    graphql = GraphQLGuard(GraphQLApp(engine, settings, replica), engine, settings)
    return [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/healthz", healthz_endpoint(engine)),
        Route("/livez", livez),
    ]


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Starlette:
    """The whole application; tests pass their own engine and settings.

    With ``settings.read_database_url`` GraphQL queries read from that replica
    (see :mod:`fundtrack.api.context`); everything else uses the primary ``engine``.
    """
    settings = settings or get_settings()
    configure_logging(settings)
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
