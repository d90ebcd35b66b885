"""Settings from the environment, read in one place; logging configured in one place."""

from __future__ import annotations

import logging
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
    #: ``flowsAggregate`` answers from ``flow_rollup`` when it can; 0 turns that off.
    aggregate_rollup: bool = field(default_factory=lambda: _bool("FUNDTRACK_AGGREGATE_ROLLUP", True))
    #: The API's fast path (fundtrack/api/execution/: look-ahead prefetch, completion
    #: plans); off, GraphQL runs on plain strawberry/graphql-core execution with the same
    #: answers, ~2x slower for a page of 100 flows (docs/performance.md).
    fast_executor: bool = field(default_factory=lambda: _bool("FUNDTRACK_FAST_EXECUTOR", True))
    #: The money trail's matching and periods (fundtrack.derived.trail.config, docs/methodology.md).
    match_tolerance: str = field(
        default_factory=lambda: os.environ.get("FUNDTRACK_MATCH_TOLERANCE", "0.02"))
    match_window_days: int = field(
        default_factory=lambda: int(os.environ.get("FUNDTRACK_MATCH_WINDOW_DAYS", "90")))
    attribution_period: str = field(
        default_factory=lambda: os.environ.get("FUNDTRACK_ATTRIBUTION_PERIOD", "year"))
    #: ``fundtrack import`` of many files: the most flows (the ledger's and the set's) one
    #: rebuild of the derived tables may hold, for its memory (about 190 MB and 0.37 kB a
    #: flow: ~0.55 GB at the default; docs/performance.md); past it the rest of the set is
    #: updated file by file. Lower it on a small machine (150,000 keeps it under 300 MB),
    #: raise it where memory allows.
    rebuild_max_flows: int = field(
        default_factory=lambda: int(os.environ.get("FUNDTRACK_REBUILD_MAX_FLOWS", 1_000_000)))
    #: Folder of the 1325 accounting data (rules, NAPs); empty: the one shipped.
    accounting_data: str | None = field(
        default_factory=lambda: os.environ.get("FUNDTRACK_ACCOUNTING_DATA") or None)
    log_level: str = field(default_factory=lambda: os.environ.get("FUNDTRACK_LOG_LEVEL", "WARNING"))


def get_settings() -> Settings:
    return Settings()


def secret_from_env(name: str) -> str | None:
    """A secret kept in the environment variable a config file names (e.g. a sync
    source's ``api_key_env``), never in the file itself."""
    return os.environ.get(name) or None


def configure_logging(settings: Settings | None = None) -> None:
    """Send fundtrack's log records to stderr at ``FUNDTRACK_LOG_LEVEL`` (default
    WARNING), once per process (the CLI and the web app call this; a host application
    that configured logging itself is left alone)."""
    root = logging.getLogger()
    if root.handlers:
        return
    level = (settings or get_settings()).log_level.upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
