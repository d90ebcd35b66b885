"""``fundtrack import``, ``revert`` and ``plugins``: files into the ledger and out again."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fundtrack.db import make_engine


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", help="Importer name (see `fundtrack plugins`); sniffed if omitted.")
@click.option("--dry-run", is_flag=True, help="Read and validate, report, write nothing.")
@click.option("--strict", is_flag=True, help="Reject a file on any error.")
@click.option("--mapping", type=click.Path(exists=True, path_type=Path),
              help="Column mapping (TOML) for spreadsheet imports.")
@click.option("--by", "imported_by", default=None, help="Who is importing (kept on the batch).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--derived", "derive", type=click.Choice(["auto", "each", "once"]), default="auto",
              show_default=True,
              help="Many files: update the derived tables after each file, rebuild them once "
                   "at the end, or pick the cheaper (a rebuild of at most "
                   "FUNDTRACK_REBUILD_MAX_FLOWS flows, then file by file).")
def import_cmd(paths: tuple[Path, ...], fmt: str | None, dry_run: bool, strict: bool,
               mapping: Path | None, imported_by: str | None, quiet: bool, derive: str) -> None:
    """Import report files or folders (IATI XML, ...), each file its own batch.

    Many files: other processes (one per core) parse the next files while this one
    writes, in the order given. Exit status 1 if any file is rejected (the others are
    imported).
    """
    from fundtrack.ingest.pipeline import ImportResult

    engine = make_engine()
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    options = {"mapping": str(mapping)} if mapping else {}
    if mapping and not fmt:
        fmt = "spreadsheet"
    rejected = 0

    def show(result: ImportResult) -> None:
        nonlocal rejected
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

    if len(files) == 1:
        from fundtrack.ingest.pipeline import import_file

        path = files[0]
        bar = None
        if not quiet and path.stat().st_size > 5 * 1024 * 1024 and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name,
                       leave=False)
        from fundtrack.ingest.many import resolve_stale

        if not dry_run:
            resolve_stale(engine)
        show(import_file(engine, path, fmt=fmt, dry_run=dry_run, strict=strict,
                         imported_by=imported_by, options=options,
                         progress=bar.update if bar else None))
        if bar:
            bar.close()
    else:
        from fundtrack.ingest.many import import_files

        import_files(engine, files, fmt=fmt, dry_run=dry_run, strict=strict,
                     imported_by=imported_by, options=options, derive=derive, on_result=show)
    if rejected:
        click.echo(f"{rejected} of {len(files)} file(s) rejected", err=True)
        sys.exit(1)


@click.command("revert")
@click.argument("batch_id", type=int)
def revert_cmd(batch_id: int) -> None:
    """Undo an import batch, restoring what it replaced."""
    from fundtrack.ingest.pipeline import revert_batch

    try:
        out = revert_batch(make_engine(), batch_id)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"batch {batch_id} reverted: {out}")


@click.command("plugins")
def plugins_cmd() -> None:
    """List the importers that are installed."""
    from fundtrack.plugins import LOAD_ERRORS, importers, plugin_of

    for name, imp in sorted(importers().items()):
        click.echo(f"{name:14} {imp.version:8} {imp.title}  [{plugin_of(imp)}]")
    for name, error in sorted(LOAD_ERRORS.items()):
        click.echo(f"{name:14} FAILED TO LOAD: {error}", err=True)
