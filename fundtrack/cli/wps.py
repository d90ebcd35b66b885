"""``fundtrack naps ...`` and ``fundtrack funds ...``: WPS data from the command line.

Same validation and history as the API (:mod:`fundtrack.accounting.wps`); ``--by`` names
who makes the change (default: the login name), recorded as ``cli:<name>``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Connection

from fundtrack.accounting import wps, wps_csv
from fundtrack.accounting.wps import Actor, Invalid
from fundtrack.config import get_settings
from fundtrack.db import make_engine


def _actor(by: str | None) -> Actor:
    try:
        who = by or getpass.getuser()
    except OSError:
        who = "unknown"
    return Actor(f"cli:{who}", "cli")


def _write(fn: Callable[[Connection], Any]) -> Any:
    engine = make_engine(get_settings().database_url)
    try:
        with engine.begin() as conn:
            return fn(conn)
    except Invalid as exc:
        raise click.ClickException("\n".join(str(e) for e in exc.errors)) from None
    finally:
        engine.dispose()


def _read(fn: Callable[[Connection], Any]) -> Any:
    engine = make_engine(get_settings().database_url)
    try:
        with engine.connect() as conn:
            return fn(conn)
    finally:
        engine.dispose()


def _echo_row(status: str, what: str, row: Any) -> None:
    click.echo(f"{what}: {status}")
    click.echo(json.dumps(wps._json(row), ensure_ascii=False, indent=1, default=str))


by_option = click.option("--by", help="Who makes the change (kept in the history).")


def _import(paths: tuple[Path, ...], dry_run: bool, by: str | None) -> None:
    files = [(p.name, p.read_bytes()) for p in paths]
    engine = make_engine(get_settings().database_url)
    try:
        with engine.connect() as conn, conn.begin() as tx:
            try:
                summary = wps_csv.import_csv(conn, files, _actor(by))
            except wps_csv.Rejected as exc:
                tx.rollback()
                for e in exc.errors:
                    click.echo(str(e), err=True)
                raise click.ClickException(
                    f"{len(exc.errors)} error(s); nothing was imported") from None
            if dry_run:
                tx.rollback()
    finally:
        engine.dispose()
    for f in summary.files:
        click.echo(f"{f['file']}: {f['kind']}, {f['rows']} rows")
    click.echo(("dry run (nothing written): " if dry_run else "imported: ") + summary.text())


# --- naps -----------------------------------------------------------------------------------

@click.group("naps")
def naps_group() -> None:
    """National Action Plans: list, show, add or edit, lines, budget lines, import, history."""


@naps_group.command("list")
def naps_list() -> None:
    """Every plan with its costed, funded and coverage (movements counted once)."""
    from fundtrack.accounting.nap import coverage

    for p in _read(coverage):
        cov = f"{p.coverage:.1%}" if p.coverage is not None else "not costed"
        click.echo(f"{p.code or p.id:12} {p.country} {p.period_start.year}-{p.period_end.year} "
                   f"costed {p.costed_usd} funded {p.funded_usd} ({cov}) {p.title}")


@naps_group.command("show")
@click.argument("code")
def naps_show(code: str) -> None:
    """One plan's coverage as JSON (the figures the API and the fact sheet give)."""
    from fundtrack.accounting.nap import coverage

    plans = _read(lambda c: coverage(c, code=code))
    if not plans:
        raise click.ClickException(f"no National Action Plan with code {code!r}")
    click.echo(json.dumps(plans[0].as_dict(), indent=1, ensure_ascii=False))


@naps_group.command("add")
@click.argument("code")
@click.option("--country")
@click.option("--title")
@click.option("--start", "period_start", help="First year (or date) of the plan.")
@click.option("--end", "period_end", help="Last year (or date) of the plan.")
@click.option("--source", help="Where the plan's figures come from (cite it).")
@by_option
def naps_add(code: str, by: str | None, **fields: Any) -> None:
    """Create plan CODE, or change the fields given of an existing one."""
    values = {"code": code, **{k: v for k, v in fields.items() if v is not None}}
    status, row = None, None

    def run(c: Connection) -> None:
        nonlocal status, row
        row, status = wps.save_nap(c, values, _actor(by))

    _write(run)
    _echo_row(str(status), f"plan {code}", row)


@naps_group.command("delete")
@click.argument("code")
@by_option
def naps_delete(code: str, by: str | None) -> None:
    """Delete plan CODE with its lines and budget lines (the history keeps them)."""
    _write(lambda c: wps.delete_nap(c, code, _actor(by)))
    click.echo(f"plan {code}: deleted")


@naps_group.command("line")
@click.argument("nap_code")
@click.argument("code")
@click.option("--pillar")
@click.option("--title")
@click.option("--costed", "costed_amount", help="The cost as the plan states it.")
@click.option("--currency", "costed_currency")
@click.option("--usd", "costed_usd", help="The cost in USD (else converted or = amount).")
@click.option("--sectors", help="DAC sector codes, space-separated.")
@click.option("--sector-ranges", "sector_ranges", help="e.g. 15210-15261")
@click.option("--tags", help="Donors' own codes.")
@click.option("--keywords", help="Words that must also appear, ';'-separated.")
@click.option("--source")
@click.option("--remove", is_flag=True, help="Delete the line instead.")
@by_option
def naps_line(nap_code: str, code: str, remove: bool, by: str | None, **fields: Any) -> None:
    """Create, change (fields given) or --remove line CODE of plan NAP_CODE."""
    if remove:
        _write(lambda c: wps.delete_line(c, nap_code, code, _actor(by)))
        click.echo(f"line {nap_code}/{code}: deleted")
        return
    values = {"code": code, **{k: v for k, v in fields.items() if v is not None}}
    row, status = _write(lambda c: wps.save_line(c, nap_code, values, _actor(by)))
    _echo_row(status, f"line {nap_code}/{code}", row)


@naps_group.command("budget")
@click.argument("nap_code")
@click.argument("code")
@click.argument("year", type=int)
@click.option("--amount")
@click.option("--currency")
@click.option("--usd", "amount_usd")
@click.option("--institution")
@click.option("--line", "line_code", help="The costed line this allocation is for.")
@click.option("--source")
@click.option("--remove", is_flag=True, help="Delete the budget line instead.")
@by_option
def naps_budget(nap_code: str, code: str, year: int, remove: bool, by: str | None,
                **fields: Any) -> None:
    """Create, change or --remove domestic budget line CODE for YEAR of plan NAP_CODE."""
    if remove:
        _write(lambda c: wps.delete_budget_line(c, nap_code, code, year, _actor(by)))
        click.echo(f"budget line {nap_code}/{code}/{year}: deleted")
        return
    values = {"code": code, "year": year, **{k: v for k, v in fields.items() if v is not None}}
    row, status = _write(lambda c: wps.save_budget_line(c, nap_code, values, _actor(by)))
    _echo_row(status, f"budget line {nap_code}/{code}/{year}", row)


@naps_group.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@by_option
def naps_import(files: tuple[Path, ...], dry_run: bool, by: str | None) -> None:
    """Import WPS CSV files (plans, lines, budget lines, stipulations, fund targets; see
    docs/wps-data.md): all or nothing, every error named by file, row and field."""
    _import(files, dry_run, by)


@naps_group.command("history")
@click.argument("code", required=False)
@click.option("--limit", default=50, show_default=True)
def naps_history(code: str | None, limit: int) -> None:
    """Who changed what: of plan CODE (with its lines), or of all WPS data."""
    rows = _read(lambda c: wps.history(c, nap_code=code, limit=limit))
    for r in rows:
        click.echo(f"{r['at']:%Y-%m-%d %H:%M:%S} {r['actor']} {r['action']} {r['entity']} "
                   f"{r['entity_key']} ({r['via']})")
        if r["before"] and r["after"]:
            diff = {k: [r["before"].get(k), v] for k, v in r["after"].items()
                    if r["before"].get(k) != v}
            click.echo(f"    {json.dumps(diff, ensure_ascii=False)}")


# --- funds ----------------------------------------------------------------------------------

@click.group("funds")
def funds_group() -> None:
    """Pooled funds: the registry, their own targets, donors' stipulations."""


@funds_group.command("list")
def funds_list() -> None:
    """The pooled-fund registry with each fund's own target, if registered."""
    from sqlalchemy import select

    from fundtrack.derived.trail.tables import Fund

    def run(c: Connection) -> tuple[list[Any], dict[str, Any]]:
        return (list(c.execute(select(Fund.__table__).order_by(Fund.organisation_ref))),
                {t["fund_ref"]: t for t in wps.fund_targets(c)})

    funds, targets = _read(run)
    for f in funds:
        t = targets.get(f.organisation_ref)
        click.echo(f"{f.organisation_ref:22} {f.acronym or '':14} {f.name}"
                   + (f"  target {t['gender_principal_share']}" if t else ""))


@funds_group.command("add")
@click.argument("ref")
@click.argument("name")
@click.option("--acronym")
@click.option("--agent-ref", "administrative_agent_ref")
@click.option("--agent-name", "administrative_agent_name")
@click.option("--alias", "aliases", multiple=True, help="Another name or code (repeatable).")
@click.option("--note")
def funds_add(ref: str, name: str, aliases: tuple[str, ...], **fields: Any) -> None:
    """Add pooled fund REF named NAME, or edit it (as the upsertFund mutation)."""
    from fundtrack import registry

    values = {k: v for k, v in fields.items() if v is not None}
    if aliases:
        values["aliases"] = list(aliases)
    row = _write(lambda c: registry.upsert_fund(c, ref, name, **values))
    click.echo(f"fund {row['organisation_ref']}: {row['name']}")


@funds_group.command("target")
@click.argument("fund_ref")
@click.argument("share", required=False)
@click.option("--source")
@click.option("--remove", is_flag=True)
@by_option
def funds_target(fund_ref: str, share: str | None, source: str | None, remove: bool,
                 by: str | None) -> None:
    """Set FUND_REF's own gender-principal target SHARE (0..1), or --remove it."""
    if remove:
        _write(lambda c: wps.delete_fund_target(c, fund_ref, _actor(by)))
        click.echo(f"target of {fund_ref}: deleted")
        return
    values = {"fund_ref": fund_ref, **({"gender_principal_share": share} if share else {}),
              **({"source": source} if source else {})}
    row, status = _write(lambda c: wps.save_fund_target(c, values, _actor(by)))
    _echo_row(status, f"target of {fund_ref}", row)


@funds_group.command("stipulate")
@click.option("--id", "stipulation_id", type=int, help="Edit (or --remove) this one.")
@click.option("--donor", "donor_ref")
@click.option("--recipient", "recipient_ref")
@click.option("--year", type=int)
@click.option("--kind", type=click.Choice(list(wps.STIPULATION_KINDS)))
@click.option("--target")
@click.option("--min-share", "min_share")
@click.option("--source")
@click.option("--remove", is_flag=True)
@by_option
def funds_stipulate(stipulation_id: int | None, remove: bool, by: str | None,
                    **fields: Any) -> None:
    """Record a donor's condition on its money leaving a recipient (or edit/remove one)."""
    if remove:
        if stipulation_id is None:
            raise click.UsageError("--remove needs --id")
        _write(lambda c: wps.delete_stipulation(c, stipulation_id, _actor(by)))
        click.echo(f"stipulation {stipulation_id}: deleted")
        return
    values = {k: v for k, v in fields.items() if v is not None}
    row, status = _write(lambda c: wps.save_stipulation(c, values, _actor(by), stipulation_id))
    _echo_row(status, f"stipulation {row['id']}", row)


@funds_group.command("stipulations")
@click.option("--donor")
def funds_stipulations(donor: str | None) -> None:
    """Stipulations as entered (the report card checks them against the trace)."""
    for s in _read(lambda c: wps.stipulations(c, donor)):
        click.echo(f"{s['id']:5} {s['donor_ref']} -> {s['recipient_ref']} {s['year'] or 'any'} "
                   f"{s['kind']}{':' + s['target'] if s['target'] else ''} >= {s['min_share']}")


@funds_group.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True)
@by_option
def funds_import(files: tuple[Path, ...], dry_run: bool, by: str | None) -> None:
    """Import stipulation and fund-target CSV files (same import as `naps import`)."""
    _import(files, dry_run, by)
