"""Full rebuild of the money trail, and the incremental update run after each import."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from fundtrack.derived.trail import attribution, funds, links, movements
from fundtrack.derived.trail.config import TrailConfig
from fundtrack.ledger.writer import lock_ledger

log = logging.getLogger(__name__)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while millions of records are built and kept: each
    full collection walks every live object, a third of the in-memory work at 1M flows.
    The records hold no reference cycles (reference counting frees them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def recompute(conn: Connection, cfg: TrailConfig | None = None) -> dict[str, Any]:
    """Rebuild links, movements and attribution from the current ledger, in one transaction."""
    with _no_cycle_collection():
        return _recompute(conn, cfg)


def _recompute(conn: Connection, cfg: TrailConfig | None) -> dict[str, Any]:
    cfg = cfg or TrailConfig()
    lock_ledger(conn)  # no import or revert may change the ledger under the rebuild
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    out["funds_added"] = funds.seed(conn)
    attribution.clear(conn)  # first: deleting movements would cascade row by row
    moves: list = []
    builds: list = []
    out.update(movements.rebuild(conn, cfg, keep=moves, pending=builds))
    t1 = time.perf_counter()

    def rebuild_links() -> None:
        started = time.perf_counter()
        out.update(links.rebuild(conn))
        out["seconds_links_in_background"] = round(time.perf_counter() - started, 3)

    # Links are all SQL: the server rebuilds them (after the movement indexes) while the
    # rule runs here in Python. Movements and attribution never read trail_link, so the
    # order of the two does not change any result.
    out.update(attribution.rebuild(conn, cfg, moves, movement_builds=builds[0].then(rebuild_links)))
    del moves
    t2 = time.perf_counter()
    out.update({"seconds_movements": round(t1 - t0, 3), "seconds_attribution_and_links": round(t2 - t1, 3)})
    return out


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Incremental: links of the batch, movements of the pairs it touched (those rebuilt
    unchanged are kept, with their parts), attribution of the accounts whose inputs
    changed and onward only where parts change (:func:`attribution.update` states the
    bound); everything when the identity step moved earlier flows' parties."""
    from fundtrack.identity.incremental import CHANGED_FLOWS, REPORTERS_MOVED
    from fundtrack.identity.resolve import CHANGED

    moved = conn.info.pop(CHANGED_FLOWS, None)
    reporters = conn.info.pop(REPORTERS_MOVED, False)
    if conn.info.pop(CHANGED, False) and (moved is None or reporters):
        # earlier flows changed organisation and which ones is not known, or a reporter
        # moved (every activity it reports names another account): all of it
        log.info("trail: rebuilt after batch %d: %s", batch_id,
                 "a reporting organisation's identity changed" if reporters
                 else "identity was rebuilt")
        return {k: int(v) for k, v in recompute(conn).items() if not k.startswith("seconds")}
    cfg = TrailConfig()
    out = links.after_import(conn, batch_id)
    # earlier flows whose provider or receiver now is another organisation are re-paired
    # with the batch's: their old movements go, their new pairs are rebuilt
    counts, touched = movements.update(conn, batch_id, cfg, extra=moved or ())
    out.update(counts)
    out.update(attribution.update(conn, touched, cfg))
    return out

