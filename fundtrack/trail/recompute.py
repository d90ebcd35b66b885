"""Full rebuild of the money trail, and the incremental update run after each import."""

from __future__ import annotations

import time
from typing import Any

import click
from sqlalchemy import Connection

from fundtrack.ledger import lock_ledger
from fundtrack.trail import attribution, funds, links, movements
from fundtrack.trail.config import TrailConfig


def recompute(conn: Connection, cfg: TrailConfig | None = None) -> dict[str, Any]:
    """Rebuild links, movements and attribution from the current ledger, in one transaction."""
    cfg = cfg or TrailConfig()
    lock_ledger(conn)  # no import or revert may change the ledger under the rebuild
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    out["funds_added"] = funds.seed(conn)
    attribution.clear(conn)  # first: deleting movements would cascade row by row
    out.update(links.rebuild(conn))
    t1 = time.perf_counter()
    rows: list = []
    builds: list = []
    out.update(movements.rebuild(conn, cfg, keep=rows, pending=builds))
    t2 = time.perf_counter()
    moves = attribution.moves_from_rows(rows, cfg)
    del rows
    out.update(attribution.rebuild(conn, cfg, moves, movement_builds=builds[0]))
    del moves
    t3 = time.perf_counter()
    out.update({"seconds_links": round(t1 - t0, 3), "seconds_movements": round(t2 - t1, 3),
                "seconds_attribution": round(t3 - t2, 3)})
    return out


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Incremental: links of the batch, movements of the pairs it touched, attribution downstream."""
    cfg = TrailConfig()
    out = links.after_import(conn, batch_id)
    counts, touched = movements.update(conn, batch_id, cfg)
    out.update(counts)
    out.update(attribution.update(conn, touched, cfg))
    return out


@click.command("recompute")
def recompute_cmd() -> None:
    """Rebuild links, canonical movements and attribution from the whole ledger."""
    from fundtrack import rollup
    from fundtrack.accounting.stored import rebuild as rebuild_classification
    from fundtrack.db import make_engine

    engine = make_engine(statement_timeout_ms=0)
    started = time.perf_counter()
    with engine.begin() as conn:
        out = recompute(conn)
        out.update(rollup.rebuild(conn))
        out.update(rebuild_classification(conn))
    click.echo(", ".join(f"{k}={v}" for k, v in out.items())
               + f"; total {time.perf_counter() - started:.1f}s")
