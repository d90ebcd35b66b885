"""The ``fundtrack`` command line.

Commands from other areas (tokens, exports, report cards, sync) live in their own
modules and are added to :data:`main` at the bottom of this file (no late imports).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from fundtrack import __version__
from fundtrack.accounting.cli import classify_cmd, report_card_cmd
from fundtrack.accounting.wps_cli import funds_group, naps_group
from fundtrack.auth import token_group
from fundtrack.config import configure_logging, get_settings
from fundtrack.db import make_engine
from fundtrack.export import export_cli
from fundtrack.sync.cli import sync_cmd

DEMO_DIR = Path(__file__).parent / "data" / "demo"


@click.group()
@click.version_option(__version__, prog_name="fundtrack")
def main() -> None:
    """Trace money for UNSCR 1325 from pledge to beneficiary.

    The database is FUNDTRACK_DATABASE_URL (default: sqlite:///fundtrack.db here).
    """
    configure_logging()


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema to the latest version."""
    from fundtrack.migrate import upgrade

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


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", help="Importer name (see `fundtrack plugins`); sniffed if omitted.")
@click.option("--dry-run", is_flag=True, help="Read and validate, report, write nothing.")
@click.option("--strict", is_flag=True, help="Reject a file on any error.")
@click.option("--mapping", type=click.Path(exists=True, path_type=Path),
              help="Column mapping (TOML) for spreadsheet imports.")
@click.option("--by", "imported_by", default=None, help="Who is importing (kept on the batch).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_cmd(paths: tuple[Path, ...], fmt: str | None, dry_run: bool, strict: bool,
               mapping: Path | None, imported_by: str | None, quiet: bool) -> None:
    """Import report files (IATI XML, ...). Exit status 1 if any file is rejected."""
    from tqdm import tqdm

    from fundtrack.importing import import_file

    engine = make_engine()
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    options = {"mapping": str(mapping)} if mapping else {}
    if mapping and not fmt:
        fmt = "spreadsheet"
    rejected = 0
    for path in files:
        size = path.stat().st_size
        bar = None
        if not quiet and size > 5 * 1024 * 1024 and sys.stderr.isatty():
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=path.name, leave=False)
        result = import_file(engine, path, fmt=fmt, dry_run=dry_run, strict=strict,
                             imported_by=imported_by, options=options,
                             progress=bar.update if bar else None)
        if bar:
            bar.close()
        click.echo(result.summary())
        if result.status == "rejected" and "format not recognised" in result.message:
            click.echo("  Name the format with --format NAME (see `fundtrack plugins`).")
        # A refused file's reason is in the summary line already: not again below it.
        shown = [i for i in result.issues if not (result.status == "rejected"
                                                   and i.code == "rejected")]
        for issue in shown[:20]:
            click.echo(f"  {issue}")
        if result.issues.total > 20:
            kinds = ", ".join(f"{k['count']:,} {k['code']}" for k in result.issues.kinds()[:5])
            click.echo(f"  ... and {result.issues.total - 20:,} more issues (see the batch); "
                       f"by kind: {kinds}")
        if not result.ok:
            rejected += 1
    if rejected:
        click.echo(f"{rejected} of {len(files)} file(s) rejected", err=True)
        sys.exit(1)


@main.command("revert")
@click.argument("batch_id", type=int)
def revert_cmd(batch_id: int) -> None:
    """Undo an import batch, restoring what it replaced."""
    from fundtrack.importing import revert_batch

    try:
        out = revert_batch(make_engine(), batch_id)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"batch {batch_id} reverted: {out}")


@main.command("plugins")
def plugins_cmd() -> None:
    """List the importers that are installed."""
    from fundtrack.plugins import LOAD_ERRORS, importers, plugin_of

    for name, imp in sorted(importers().items()):
        click.echo(f"{name:14} {imp.version:8} {imp.title}  [{plugin_of(imp)}]")
    for name, error in sorted(LOAD_ERRORS.items()):
        click.echo(f"{name:14} FAILED TO LOAD: {error}", err=True)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, envvar="FUNDTRACK_PORT",
              help="Port (or FUNDTRACK_PORT).")
@click.option("--workers", default=1, show_default=True, type=int)
def serve_cmd(host: str, port: int, workers: int) -> None:
    """Serve the GraphQL API (and web pages) with uvicorn."""
    import uvicorn

    uvicorn.run("fundtrack.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="info")


@main.command("demo")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Start the server after loading.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, envvar="FUNDTRACK_PORT",
              help="Port (or FUNDTRACK_PORT).")
def demo_cmd(serve: bool, host: str, port: int) -> None:
    """Create the database, load the bundled real demo files, and serve."""
    from fundtrack.importing import import_file
    from fundtrack.migrate import upgrade

    url = get_settings().database_url
    upgrade(url)
    engine = make_engine(url)
    for path in sorted(p for p in DEMO_DIR.rglob("*") if p.is_file() and p.suffix != ".md"):
        click.echo(import_file(engine, path, imported_by="demo").summary())
    engine.dispose()
    if serve:
        click.echo(f"GraphQL at http://{host}:{port}/graphql")
        serve_cmd.callback(host=host, port=port, workers=1)  # type: ignore[misc]

@main.command("recompute")
def recompute_cmd() -> None:
    """Rebuild every derived table (money trail, classification, rollup) from the ledger."""
    from fundtrack import derived

    engine = make_engine(statement_timeout_ms=0)
    started = time.perf_counter()
    with engine.begin() as conn:
        out = derived.rebuild(conn)
    click.echo(", ".join(f"{k}={v}" for k, v in out.items())
               + f"; total {time.perf_counter() - started:.1f}s")
    engine.dispose()


main.add_command(token_group)
main.add_command(export_cli())
main.add_command(report_card_cmd)
main.add_command(classify_cmd)
main.add_command(sync_cmd)
main.add_command(naps_group)
main.add_command(funds_group)


if __name__ == "__main__":  # pragma: no cover
    main()
