"""Run Alembic migrations from code (``fundtrack db upgrade``) and check for drift."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, select

import migrations
from fundtrack.db import make_engine, normalise_url
from fundtrack.derived import steps as derived
from fundtrack.ledger.tables import Flow
from fundtrack.ledger.writer import lock_ledger

SCRIPT_LOCATION = str(Path(migrations.__file__).parent)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


#: Derived tables that a revision adds or changes. After an upgrade that crosses one of
#: these revisions on a ledger that holds flows, they are rebuilt with the installed code
#: (migrations themselves never run model code, which would break on older schemas).
REBUILD_AFTER: dict[str, str] = {
    "0003": "trail", "0006": "trail", "0007": "classification", "0008": "rollup",
    "0009": "rollup", "0010": "trail", "0016": "identity trail",
    "0017": "classification rollup",
}


def current_revision(url: str) -> str | None:
    engine = make_engine(url, statement_timeout_ms=0)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def crossed(before: str | None, after: str | None) -> list[str]:
    """Revisions applied when going from ``before`` to ``after`` (oldest first)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if after is None:
        return []
    revs = [r.revision for r in script.iterate_revisions(after, before or "base")]
    return list(reversed(revs))


def url_of(target: str | Engine) -> str:
    """A database URL from a URL or an Engine (plugin tests hold an Engine).

    Migrations open their own connections, so an in-memory SQLite engine (each
    connection its own empty database) cannot be migrated: use a file.
    """
    if isinstance(target, Engine):
        if target.dialect.name == "sqlite" and target.url.database in (None, "", ":memory:"):
            raise ValueError("cannot migrate an in-memory SQLite engine; use a file "
                             "(sqlite:///path/test.db) or fundtrack.testing.migrated_engine()")
        return target.url.render_as_string(hide_password=False)
    return target


def upgrade(url: str | Engine, revision: str = "head") -> list[str]:
    """Migrate, then rebuild the derived tables the crossed revisions ask for.

    ``url`` is a database URL or an ``Engine``. Returns the names of the derived tables
    rebuilt (none on an empty ledger).
    """
    url = url_of(url)
    before = current_revision(url)
    command.upgrade(alembic_config(url), revision)
    after = current_revision(url)
    wanted = {name for r in crossed(before, after) if r in REBUILD_AFTER
              for name in REBUILD_AFTER[r].split()}
    if before is None or not wanted:
        return []
    return rebuild_derived(url, [name for name in derived.NAMES if name in wanted])


def rebuild_derived(url: str, names: list[str]) -> list[str]:
    """Rebuild the named derived steps (:data:`fundtrack.derived.steps.STEPS`) in one
    transaction, if the ledger holds flows."""
    engine = make_engine(url, statement_timeout_ms=0)
    try:
        with engine.begin() as conn:
            lock_ledger(conn)
            if conn.execute(select(Flow.id).limit(1)).first() is None:
                return []
            derived.rebuild(conn, names)
    finally:
        engine.dispose()
    return names


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
