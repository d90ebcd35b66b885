"""``fundtrack serve`` and ``fundtrack demo``: the API and pages, with or without the
bundled real demo files."""

from __future__ import annotations

from pathlib import Path

import click

from fundtrack.config import get_settings
from fundtrack.db import make_engine

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, envvar="FUNDTRACK_PORT",
              help="Port (or FUNDTRACK_PORT).")
@click.option("--workers", default=1, show_default=True, type=int)
def serve_cmd(host: str, port: int, workers: int) -> None:
    """Serve the GraphQL API (and web pages) with uvicorn."""
    import uvicorn

    uvicorn.run("fundtrack.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="info")


@click.command("demo")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Start the server after loading.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, envvar="FUNDTRACK_PORT",
              help="Port (or FUNDTRACK_PORT).")
def demo_cmd(serve: bool, host: str, port: int) -> None:
    """Create the database, load the bundled real demo files, and serve."""
    from fundtrack.db.migrate import upgrade
    from fundtrack.ingest.pipeline import import_file

    url = get_settings().database_url
    upgrade(url)
    engine = make_engine(url)
    for path in sorted(p for p in DEMO_DIR.rglob("*") if p.is_file() and p.suffix != ".md"):
        click.echo(import_file(engine, path, imported_by="demo").summary())
    engine.dispose()
    if serve:
        click.echo(f"GraphQL at http://{host}:{port}/graphql")
        serve_cmd.callback(host=host, port=port, workers=1)  # type: ignore[misc]
