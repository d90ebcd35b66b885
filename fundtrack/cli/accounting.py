"""``fundtrack report-card``: a donor's card (or a fund's scorecard) as md, json or csv."""

from __future__ import annotations

import click

from fundtrack.config import get_settings
from fundtrack.db import make_engine


@click.command("report-card")
@click.option("--donor", "donor", help="Donor organisation ref.")
@click.option("--fund", "fund", help="Pooled fund organisation ref (fund scorecard).")
@click.option("--year", type=int, required=True)
@click.option("--method", default="principal", show_default=True,
              help="Counting method: principal | gender-focused | weighted | reported-share.")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "csv"]), default="md",
              show_default=True)
def report_card_cmd(donor: str | None, fund: str | None, year: int, method: str,
                    fmt: str) -> None:
    """Print a 1325 report card; every figure names its method and benchmark source."""
    from fundtrack.accounting.methods import methods
    from fundtrack.accounting.render import RENDERERS
    from fundtrack.accounting.reportcard import donor_card, fund_scorecard

    if bool(donor) == bool(fund):
        raise click.UsageError("give exactly one of --donor or --fund")
    if method not in methods():
        raise click.UsageError(f"unknown method {method!r}; known: {', '.join(methods())}")
    engine = make_engine(get_settings().database_url)
    try:
        with engine.connect() as conn:
            card = (donor_card(conn, donor, year, method) if donor
                    else fund_scorecard(conn, fund, year))  # type: ignore[arg-type]
    finally:
        engine.dispose()
    click.echo(RENDERERS[fmt](card), nl=False)


@click.command("classify")
@click.argument("subject")
@click.argument("dimension")
@click.argument("value", required=False)
@click.option("--remove", is_flag=True, help="Remove the hand decision instead.")
@click.option("--note", help="Why (kept with the decision and cited on the figures).")
@click.option("--by", "decided_by", help="Who decided.")
def classify_cmd(subject: str, dimension: str, value: str | None, remove: bool,
                 note: str | None, decided_by: str | None) -> None:
    """Override the 1325 classification by hand.

    SUBJECT is activity:<iati-identifier> or flow:<external id>; DIMENSION is scope,
    pillar:<name> or gender; VALUE is in|out (scope, pillars) or a common-scale gender
    value (principal, significant, not-targeted, not-screened).

    \b
    Example: fundtrack classify activity:XM-DAC-7-PPR-4000004095 pillar:protection in \\
                 --note "GBV referral services (project document p. 3)"
    """
    from fundtrack.accounting.stored import set_override
    from fundtrack.ledger.writer import lock_ledger

    if remove == (value is not None):
        raise click.UsageError("give a VALUE, or --remove (not both)")
    engine = make_engine(get_settings().database_url)
    try:
        with engine.begin() as conn:
            lock_ledger(conn)
            oid = set_override(conn, subject, dimension, None if remove else value, note,
                               decided_by)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"{subject} {dimension}: " + ("hand decision removed" if remove
                                            else f"{value} (override {oid})"))
