"""Settings from the environment, read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Defaults suit a laptop; production sets the environment."""

    database_url: str = field(
        default_factory=lambda: os.environ.get("FUNDTRACK_DATABASE_URL", "sqlite:///fundtrack.db")
    )
    # Optional read replica (or any copy kept up to date from the primary): GraphQL queries
    # read from it; mutations, imports and token checks use ``database_url``. docs/scaling.md.
    read_database_url: str | None = field(
        default_factory=lambda: os.environ.get("FUNDTRACK_READ_DATABASE_URL") or None
    )
    debug: bool = field(default_factory=lambda: _bool("FUNDTRACK_DEBUG", False))
    max_upload_bytes: int = field(
        default_factory=lambda: int(os.environ.get("FUNDTRACK_MAX_UPLOAD_BYTES", 200 * 1024 * 1024))
    )
    graphiql: bool = field(default_factory=lambda: _bool("FUNDTRACK_GRAPHIQL", True))
    introspection: bool = field(default_factory=lambda: _bool("FUNDTRACK_INTROSPECTION", True))
    statement_timeout_ms: int = field(
        default_factory=lambda: int(os.environ.get("FUNDTRACK_STATEMENT_TIMEOUT_MS", 15000))
    )
    #: Ledger writers (imports, reverts, recomputes) are not bound by the query timeout: an
    #: import's derived-table refresh can take longer than any query should. 0 = no limit.
    write_statement_timeout_ms: int = field(
        default_factory=lambda: int(os.environ.get("FUNDTRACK_WRITE_STATEMENT_TIMEOUT_MS", 0))
    )


def get_settings() -> Settings:
    return Settings()
