"""``fundtrack sync``: the command (kept beside the package, added to the main group)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fundtrack.config import configure_logging


@click.command("sync")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default="fundtrack-sync.toml", show_default=True, envvar="FUNDTRACK_SYNC_CONFIG",
              help="The sync configuration (TOML): sources, publishers, queries, plans, years "
                   "(or FUNDTRACK_SYNC_CONFIG).")
@click.option("--source", "sources", multiple=True,
              help="Sync only this source (its `name` in the config); repeatable.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--list-types", is_flag=True, help="List the source types installed, and stop.")
def sync_cmd(config_path: Path, sources: tuple[str, ...], quiet: bool, list_types: bool) -> None:
    """Fetch what changed at the IATI Registry, the IATI Datastore and FTS, and import it.

    Unchanged files are not downloaded again (ETag, Last-Modified, sha256); a run that
    stops part-way resumes without duplicates. Exit status 1 if anything failed.
    See docs/sync.md.
    """
    from fundtrack.db import make_engine
    from fundtrack.sync.config import ConfigError, load_config
    from fundtrack.sync.runner import run_sync
    from fundtrack.sync.sources import source_types

    if list_types:
        for name, src in sorted(source_types().items()):
            click.echo(f"{name:16} {src.title}")
        return
    configure_logging()
    try:
        config = load_config(config_path)
        engine = make_engine()
        summaries = run_sync(engine, config, only=sources or None,
                             progress=not quiet and sys.stderr.isatty())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    failed = 0
    for s in summaries:
        click.echo(s.line())
        for err in s.errors[:10]:
            click.echo(f"  {err['key'] or s.name}: {err['error'].splitlines()[0]}")
        if len(s.errors) > 10:
            click.echo(f"  ... and {len(s.errors) - 10} more (see syncRuns in the API)")
        failed += s.status != "ok"
    engine.dispose()
    if failed:
        sys.exit(1)
