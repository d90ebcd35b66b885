"""Real-browser fixtures: Debian's chromium driven by Playwright against a live uvicorn.

The server runs ``fundtrack.app:create_app`` on 127.0.0.1 over a copy of the session's
SQLite database loaded with the shared IATI files (uploads and reverts in these tests
must not touch the database other tests read). On PostgreSQL runs the browser tests are
skipped (they already ran on SQLite in the same CI job). Chromium must be installed
(``.ci/setup-extra`` does it); the tests skip, loudly, only when it is truly absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("FUNDTRACK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium_path(db_kind: str) -> str:
    if db_kind != "sqlite":
        pytest.skip("browser tests run on the SQLite pass only (same pages, same SQL)")
    if not Path(CHROMIUM).exists():
        msg = (f"CHROMIUM IS NOT INSTALLED ({CHROMIUM} missing): browser tests SKIPPED. "
               "Run `bash .ci/setup-extra` (apt-get install chromium).")
        warnings.warn(msg, stacklevel=1)
        print("\n" + "!" * 80 + "\n" + msg + "\n" + "!" * 80, file=sys.stderr)
        pytest.skip(msg)
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live(chromium_path: str, loaded_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[str, Any]]:
    """A running server: {"url", "db_url", "token", "engine"}."""
    from fundtrack.auth.tokens import create_token
    from fundtrack.db import make_engine

    src = loaded_url.removeprefix("sqlite:///")
    dst = tmp_path_factory.mktemp("live") / "live.db"
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    db_url = f"sqlite:///{dst}"
    engine = make_engine(db_url)
    _, token = create_token(engine, "admin", label="browser tests")
    try:
        with serve(db_url, tmp_path_factory.getbasetemp() / "uvicorn.log") as url:
            yield {"url": url, "db_url": db_url, "token": token, "engine": engine}
    finally:
        engine.dispose()


@contextmanager
def serve(db_url: str, log_path: Path) -> Iterator[str]:
    """uvicorn running ``create_app`` over ``db_url`` on a free loopback port; its URL."""
    port = _free_port()
    env = {**os.environ, "FUNDTRACK_DATABASE_URL": db_url}
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "fundtrack.app:create_app",
                             "--factory", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError("uvicorn did not answer /healthz in 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an asyncio loop running in this thread
    while it is open, which would break later tests that call ``asyncio.run``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("chromium is present but the `playwright` package is not: "
                    "pip install -e '.[test]' (or bash .ci/setup-extra)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()


def graphql(live: dict[str, Any], query: str, variables: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    r = httpx.post(live["url"] + "/graphql", json={"query": query, "variables": variables or {}},
                   timeout=60)
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]
