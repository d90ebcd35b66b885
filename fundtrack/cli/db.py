"""``fundtrack db upgrade`` and ``fundtrack recompute``: the schema, and the derived tables
rebuilt from the ledger (by iterating :data:`fundtrack.derived.steps.STEPS`)."""

from __future__ import annotations

import time

import click

from fundtrack.config import get_settings
from fundtrack.db import make_engine


@click.group("db")
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema to the latest version."""
    from fundtrack.db.migrate import upgrade

    url = get_settings().database_url
    rebuilt = upgrade(url, revision)
    click.echo(f"database at {_safe_url(url)} is at {revision}"
               + (f"; rebuilt {', '.join(rebuilt)}" if rebuilt else ""))


def _safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


@click.command("recompute")
def recompute_cmd() -> None:
    """Rebuild every derived table (identity, money trail, classification, rollup) from the ledger."""
    from fundtrack.derived import steps as derived

    engine = make_engine(statement_timeout_ms=0)
    started = time.perf_counter()
    with engine.begin() as conn:
        out = derived.rebuild(conn)
    click.echo(", ".join(f"{k}={v}" for k, v in out.items())
               + f"; total {time.perf_counter() - started:.1f}s")
    engine.dispose()
