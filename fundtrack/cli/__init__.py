"""The ``fundtrack`` command line: one module per command group, gathered here.

``db`` (schema, recompute), ``ingest`` (import, revert, plugins), ``serve`` (serve, demo),
``tokens``, ``export``, ``accounting`` (report-card, classify), ``sync``, ``wps`` (naps,
funds), ``orgs`` (decisions about who is who).
"""

from __future__ import annotations

import click

from fundtrack import __version__
from fundtrack.cli import accounting, db, export, ingest, orgs, serve, sync, tokens, wps
from fundtrack.config import configure_logging


@click.group()
@click.version_option(__version__, prog_name="fundtrack")
def main() -> None:
    """Trace money for UNSCR 1325 from pledge to beneficiary.

    The database is FUNDTRACK_DATABASE_URL (default: sqlite:///fundtrack.db here).
    """
    configure_logging()


for command in (db.db, db.recompute_cmd, ingest.import_cmd, ingest.revert_cmd,
                ingest.plugins_cmd, serve.serve_cmd, serve.demo_cmd, tokens.token_group,
                export.export_cmd, accounting.report_card_cmd, accounting.classify_cmd,
                sync.sync_cmd, wps.naps_group, wps.funds_group, orgs.orgs_group):
    main.add_command(command)
