"""``fundtrack export``: current flows as CSV, JSON or IATI XML, streamed."""

from __future__ import annotations

import sys

import click

from fundtrack.export import FORMATS, FlowFilter, stream


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="csv",
              show_default=True)
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="year, kind, donor, reporting_org, country, gender (0,1,2,1+,none), "
              "activity; repeat for several")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-",
              show_default=True)
def export_cmd(fmt: str, where: tuple[str, ...], output: str) -> None:
    """Export current flows as CSV, JSON or IATI 2.03 activity XML (streamed)."""
    from fundtrack.db import make_engine
    from fundtrack.web.filters import FilterError

    try:
        flt = FlowFilter.parse_pairs(where)
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from None
    engine = make_engine()
    out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
    try:
        for chunk in stream(engine, fmt, flt):
            out.write(chunk)
    finally:
        if out is not sys.stdout:
            out.close()
        engine.dispose()
