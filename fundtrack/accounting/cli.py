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
