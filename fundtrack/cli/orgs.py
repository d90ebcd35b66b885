"""``fundtrack orgs ...``: people's decisions about who is who, from the command line.

The same rules as the API's admin mutations (:mod:`fundtrack.registry.decisions`):
every decision keeps who (``--by``, default the login name, recorded as
``cli:<name>``), when and why (``--reason``, required); ``undo`` restores the answers
from before; ``apply FILE`` records a reviewable TOML file's decisions (again and again:
those in force are kept); ``export`` writes the decisions in force as such a file.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Connection

from fundtrack.config import get_settings
from fundtrack.db import make_engine
from fundtrack.registry import decisions as dec


def _who(by: str | None) -> str:
    try:
        return f"cli:{by or getpass.getuser()}"
    except OSError:
        return "cli:unknown"


def _run(fn: Callable[[Connection], Any], write: bool = True) -> Any:
    engine = make_engine(get_settings().database_url)
    try:
        with engine.begin() if write else engine.connect() as conn:  # type: ignore[attr-defined]
            return fn(conn)
    except dec.DecisionError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


def _line(r: Any) -> str:
    what = {"merge": f"merge {r['subject']} into {r['target']}",
            "split": f"split {r['subject']}" + (f" from {r['target']}" if r["target"] else "")
            }.get(r["action"], f"{r['action']} {r['subject']} = {r['value']}")
    undone = (f"  [undone {r['reverted_at']:%Y-%m-%d %H:%M} by {r['reverted_by']}]"
              if r["reverted_at"] else "")
    return (f"#{r['id']} {what}  ({r['decided_by']}, {r['decided_at']:%Y-%m-%d %H:%M}, "
            f"via {r['via']}): {r['reason']}{undone}")


@click.group("orgs")
def orgs_group() -> None:
    """Decide who is who: merge, split, set type, flag pooled funds and women's rights
    organisations (a subject is a ref, an identifier, or name:<name as reported>)."""


by_option = click.option("--by", help="Who decides (kept with the decision).")
reason_option = click.option("--reason", required=True, help="Why (kept with the decision).")


def _decide(action: str, subject: str, reason: str, by: str | None,
            target: str | None = None, value: str | None = None) -> None:
    d = dec.Decision(action, subject, reason, target, value)
    row = _run(lambda c: dec.decide(c, d, _who(by), "cli"))
    click.echo(f"recorded: {_line(row)}")


@orgs_group.command("merge")
@click.argument("subject")
@click.argument("target")
@reason_option
@by_option
def merge_cmd(subject: str, target: str, reason: str, by: str | None) -> None:
    """SUBJECT is the organisation TARGET (everything resolving to SUBJECT follows)."""
    _decide("merge", subject, reason, by, target=target)


@orgs_group.command("split")
@click.argument("subject")
@click.option("--from", "target", help="Only off this organisation.")
@reason_option
@by_option
def split_cmd(subject: str, target: str | None, reason: str, by: str | None) -> None:
    """The identifier or name SUBJECT does not denote the organisation it matched."""
    _decide("split", subject, reason, by, target=target)


@orgs_group.command("set-type")
@click.argument("subject")
@click.argument("type_code")
@reason_option
@by_option
def set_type_cmd(subject: str, type_code: str, reason: str, by: str | None) -> None:
    """SUBJECT's IATI organisation type is TYPE_CODE (10, 21, 40, 80 ...)."""
    _decide("set_type", subject, reason, by, value=type_code)


@orgs_group.command("flag")
@click.argument("subject")
@click.argument("flag", type=click.Choice(["pooled-fund", "wro"]))
@click.option("--off", is_flag=True, help="Say it is NOT one (overrides the registry).")
@reason_option
@by_option
def flag_cmd(subject: str, flag: str, off: bool, reason: str, by: str | None) -> None:
    """Flag SUBJECT as a pooled fund or a women's rights organisation (wro)."""
    action = "flag_pooled_fund" if flag == "pooled-fund" else "flag_wro"
    _decide(action, subject, reason, by, value="false" if off else "true")


@orgs_group.command("undo")
@click.argument("decision_id", type=int)
@by_option
def undo_cmd(decision_id: int, by: str | None) -> None:
    """Undo decision DECISION_ID: the answers are those from before it."""
    row = _run(lambda c: dec.undo(c, decision_id, _who(by)))
    click.echo(f"undone: {_line(row)}")


@orgs_group.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@by_option
def apply_cmd(path: Path, by: str | None) -> None:
    """Record the decisions of a TOML file ([[decision]] action, subject, target, value,
    reason) that are not in force yet."""
    got = _run(lambda c: dec.apply_file(c, path, _who(by)))
    for r in got.added:
        click.echo(f"recorded: {_line(r)}")
    click.echo(f"{len(got.added)} decision(s) recorded, {got.kept} already in force")


@orgs_group.command("list")
@click.option("--all", "include_undone", is_flag=True, help="Undone decisions too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_cmd(include_undone: bool, fmt: str) -> None:
    """The decisions in force, oldest first."""
    rows = _run(lambda c: dec.decisions(c, include_undone), write=False)
    if fmt == "json":
        click.echo(json.dumps([dict(r) for r in rows], default=str, indent=1))
        return
    for r in rows:
        click.echo(_line(r))
    if not rows:
        click.echo("no decisions")


@orgs_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_cmd(path: Path) -> None:
    """Write the decisions in force as a TOML file that `apply` reads."""
    rows = _run(lambda c: dec.decisions(c), write=False)
    path.write_text(dec.to_toml(rows), "utf-8")
    click.echo(f"{len(rows)} decision(s) written to {path}")


@orgs_group.command("wro-candidates")
@click.option("--all", "include_flagged", is_flag=True, help="Those already flagged too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def wro_candidates_cmd(include_flagged: bool, fmt: str) -> None:
    """Organisations the stated rules suggest as women's rights organisations (receivers
    of purpose 15170, names that say so, NGO or unknown type), each with its evidence.
    A suggestion flags nothing: `fundtrack orgs flag SUBJECT wro --reason ...` does."""
    from fundtrack.identity.wro import candidates

    got = [c for c in _run(candidates, write=False) if include_flagged or not c.flagged]
    if fmt == "json":
        click.echo(json.dumps([{**c.__dict__, "flows_usd": str(c.flows_usd)} for c in got],
                              indent=1))
        return
    for c in got:
        state = "flagged" if c.flagged else "not flagged"
        click.echo(f"{c.ref}  {c.name or ''}  [{state}; rules: {', '.join(c.rules)}]\n"
                   f"  suggested because: {c.why}")
    click.echo(f"{len(got)} candidate(s); decide with: fundtrack orgs flag SUBJECT wro "
               "--reason WHY (or --off)")
