"""``/healthz`` fails exactly when a page would: templates, static files, the database.

Why: a wheel without templates answered every page with 500 while ``/healthz`` said 200,
so the container reported healthy. ``/livez`` stays the process-only liveness check.
"""

from __future__ import annotations

from pathlib import Path

from fundtrack.api.testing import Api
from fundtrack.app import readiness_problems
from fundtrack.db import make_engine
from fundtrack.web import routes


def test_healthz_is_200_when_pages_can_be_served(db_url: str) -> None:
    api = Api(db_url)
    assert api.get("/healthz").status_code == 200
    assert api.get("/").status_code == 200
    assert api.get("/livez").text == "ok"


def test_healthz_is_503_without_a_database(tmp_path: Path) -> None:
    api = Api(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    r = api.get("/healthz")
    assert r.status_code == 503 and "database" in r.text
    assert api.get("/livez").status_code == 200


def test_readiness_names_missing_templates_and_static_files(db_url: str, monkeypatch,
                                                           tmp_path: Path) -> None:
    engine = make_engine(db_url)
    assert readiness_problems(engine) == []
    monkeypatch.setattr(routes, "HERE", tmp_path)  # a wheel built without package data
    monkeypatch.setattr(routes, "STATIC", tmp_path / "static")
    routes.env.cache_clear()
    try:
        problems = readiness_problems(engine)
    finally:
        routes.env.cache_clear()
    assert [p.split(":")[0] for p in problems] == ["templates", "static files missing"]
    assert "graphiql/graphiql.min.js" in problems[1]
    engine.dispose()
