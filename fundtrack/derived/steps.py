"""Derived tables: one list of steps, run inside the writer's transaction.

Every table computed from the ledger is kept by one :class:`Step` of :data:`STEPS`, in
the order they run: organisation identity (each party's canonical organisation), the
money trail (links, canonical movements, attribution), the 1325 classification, the
rollup behind ``flowsAggregate``. The ingest pipeline (after an import
or a revert), the migrations (after a revision that changes a derived table),
``fundtrack recompute`` and the registry edits (which change what attribution reads) all
iterate this list and know nothing else about the steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Text, cast, select, text, update

from fundtrack.accounting import stored as classification
from fundtrack.db import dialect
from fundtrack.derived.rollup import maintain as rollup
from fundtrack.derived.trail import recompute as trail
from fundtrack.identity import incremental as identity_batch
from fundtrack.identity import resolve as identity
from fundtrack.ledger import tables as m

log = logging.getLogger(__name__)

#: Key in ``conn.info``: seconds each step took in the last :func:`after_import`,
#: :func:`after_revert` or :func:`rebuild` on that connection (``statistics`` for the planner
#: statistics refresh), so a bench can put the derived-table time beside the ledger write
#: without the counts stored on batches changing. Also logged at INFO.
SECONDS = "derived_seconds"


def _trail_after_revert(conn: Connection, _batch_id: int) -> dict[str, int]:
    """A revert rebuilds the trail (reverts are rare); the timings are left out."""
    return {k: int(v) for k, v in trail.recompute(conn).items() if not k.startswith("seconds")}


@dataclass(frozen=True)
class Step:
    """One derived table (or family of tables) and how to keep it exact."""

    name: str
    #: After a batch merged: update for that batch; returns counts for the batch.
    after_import: Callable[[Connection, int], dict[str, int]]
    #: After a batch was reverted.
    after_revert: Callable[[Connection, int], dict[str, int]]
    #: From the whole current ledger.
    rebuild: Callable[[Connection], dict[str, Any]]
    #: Whether the step reads the registry (organisations, pooled funds): a registry edit
    #: rebuilds it.
    reads_registry: bool = False
    #: Whether its counts are part of an import's or revert's counts (the rollup's row
    #: counts never were).
    reports_counts: bool = True
    #: After a batch merged, before any step's ``after_import``: read what an earlier step
    #: will change (the rollup reads the superseded flows' stored gender value, which the
    #: classification step deletes).
    before_import: Callable[[Connection, int], dict[str, int]] | None = None


STEPS: tuple[Step, ...] = (
    # first: the trail and the filters read canonical organisations (issue 15)
    Step("identity", identity_batch.after_import, identity_batch.after_revert, identity.rebuild,
         reads_registry=True, reports_counts=False),
    Step("trail", trail.after_import, _trail_after_revert, trail.recompute,
         reads_registry=True),
    Step("classification", classification.after_import, classification.after_revert,
         classification.rebuild),
    Step("rollup", rollup.after_import, rollup.after_revert, rollup.rebuild,
         reports_counts=False, before_import=rollup.before_import),
)
NAMES = tuple(s.name for s in STEPS)


def steps(names: Iterable[str] | None = None) -> list[Step]:
    """The steps named (all by default), in :data:`STEPS` order."""
    if names is None:
        return list(STEPS)
    wanted = set(names)
    unknown = wanted - set(NAMES)
    if unknown:
        raise ValueError(f"no derived step {', '.join(sorted(unknown))}; steps: {', '.join(NAMES)}")
    return [s for s in STEPS if s.name in wanted]


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """Update derived tables for a newly merged batch; return counts for the batch."""
    return _after_batch(conn, batch_id, "after_import")


def after_revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """Update derived tables after a batch was reverted."""
    return _after_batch(conn, batch_id, "after_revert")


def _after_batch(conn: Connection, batch_id: int, hook: str) -> dict[str, int]:
    """Run every step's ``hook`` for the batch, in :data:`STEPS` order; gather the counts of
    the steps that report them; refresh planner statistics once at the end.

    The updates assume the derived tables were complete before the batch. When a set of
    files was merged without them and its rebuild never ran (:data:`STALE` marks left by an
    interrupted ``fundtrack import``), whoever writes next (an API upload, ``fundtrack
    sync``, a revert) rebuilds every step instead, which clears the marks.
    """
    stale = stale_batches(conn)
    if stale:
        log.warning("derived tables are stale: %d batch(es) (from %d) were merged without "
                    "their update; rebuilding every step with batch %d", len(stale), stale[0],
                    batch_id)
        out = rebuild(conn)
        return {k: int(v) for k, v in out.items()
                if isinstance(v, int) and not k.startswith("seconds")}
    dialect.short_queries(conn)
    counts: dict[str, int] = {}
    seconds = {step.name: 0.0 for step in STEPS}  # in step order, the reads before included
    if hook == "after_import":
        for step in STEPS:
            if step.before_import is not None:
                t = time.perf_counter()
                step.before_import(conn, batch_id)
                seconds[step.name] += time.perf_counter() - t
    for step in STEPS:
        t = time.perf_counter()
        out = getattr(step, hook)(conn, batch_id)
        seconds[step.name] += time.perf_counter() - t
        if step.reports_counts:
            counts |= out
    t = time.perf_counter()
    dialect.refresh_statistics(conn)
    seconds["statistics"] = time.perf_counter() - t
    _record(conn, f"{hook} of batch {batch_id}", seconds)
    return counts


def rebuild(conn: Connection, names: Iterable[str] | None = None,
            given: Mapping[str, Callable[[Connection], dict[str, Any]]] | None = None
            ) -> dict[str, Any]:
    """Rebuild the named steps (all by default) from the current ledger, in order.

    ``given``: by step name, a rebuild to run instead of the step's own, giving the same
    rows (e.g. the classification computed beside this one by another process)."""
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    given = given or {}
    for step in steps(names):
        t = time.perf_counter()
        out |= given.get(step.name, step.rebuild)(conn)
        seconds[step.name] = time.perf_counter() - t
    t = time.perf_counter()
    dialect.refresh_statistics(conn)
    seconds["statistics"] = time.perf_counter() - t
    if names is None:
        clear_stale(conn)
    _record(conn, "rebuild", seconds)
    return out


def _record(conn: Connection, what: str, seconds: dict[str, float]) -> None:
    """Leave the per-step seconds in ``conn.info`` (:data:`SECONDS`) and log them."""
    conn.info[SECONDS] = seconds
    log.info("derived tables, %s: %s; total %.3f s", what,
             ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items()), sum(seconds.values()),
             extra={SECONDS: seconds})


#: Key in a batch's ``counts``: the batch was merged without its derived-table update (a
#: set of files, rebuilt once at the end). Written in the batch's own transaction, so a
#: set interrupted before its rebuild leaves the mark, and the next ``fundtrack import``
#: or ``fundtrack recompute`` rebuilds (:func:`rebuild` of every step clears it).
STALE = "derived_stale"


def mark_stale(counts: dict[str, int]) -> None:
    """Mark a batch's counts (written with the batch) as awaiting the rebuild."""
    counts[STALE] = 1


def stale_batches(conn: Connection) -> list[int]:
    """Applied batches merged since the derived tables were last complete.

    Runs before every import's update: the test is the predicate of the partial index
    ``ix_import_batch_derived_stale`` (:data:`fundtrack.ledger.tables.STALE_MARKED`), so
    its cost is one probe of an index holding only marked batches, not a scan of every
    batch's counts."""
    return list(conn.execute(stale_query(conn.dialect.name)).scalars())


def stale_query(dialect_name: str) -> Select[Any]:
    """The query of :func:`stale_batches` (a test reads its plan)."""
    b = m.ImportBatch.__table__
    marked = m.STALE_MARKED.get(dialect_name)
    where = text(marked) if marked else cast(b.c.counts, Text).like(f'%"{STALE}"%')
    return select(b.c.id).where(where).order_by(b.c.id)


def clear_stale(conn: Connection) -> None:
    """Drop the mark from every batch (after a rebuild of every step)."""
    b = m.ImportBatch.__table__
    for batch_id in stale_batches(conn):
        counts = dict(conn.execute(select(b.c.counts).where(b.c.id == batch_id)).scalar_one())
        counts.pop(STALE, None)
        conn.execute(update(m.ImportBatch).where(m.ImportBatch.id == batch_id)
                     .values(counts=counts))


def after_registry_edit(conn: Connection) -> dict[str, Any]:
    """Rebuild the steps that read the registry (the caller holds the ledger lock)."""
    return rebuild(conn, [s.name for s in STEPS if s.reads_registry])


