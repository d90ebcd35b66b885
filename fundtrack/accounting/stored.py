"""The scope, pillars and gender marker of every current flow, kept in ``flow_classification``
for SQL.

:class:`fundtrack.accounting.classify.Classifier` (what ``classify`` runs) stays the one
place for the rules; this module runs one per write (rules, plugins and overrides read once,
verdicts shared by flows with the same codes and text) and writes down what it decided
(with the rule ids, ``override:<id>`` for hand decisions), so the API's
``FlowWhere.pillar`` / ``inScope`` / ``genderSignificance`` and the web Sankey filter in
SQL instead of classifying in Python per request. The gender
rows (``gender:principal`` ...) are the crosswalk's common value of the flow's effective
marker (:mod:`fundtrack.accounting.markers`), the one ``genderSummary`` counts.

Kept exact by the ingest pipeline (``fundtrack.derived``): after an import, the flows the
batch superseded lose their rows and the batch's flows are classified; after a revert,
rows of flows no longer current go and restored flows are classified. :func:`rebuild`
(also run by ``fundtrack recompute``) starts over: needed when ``rules.toml`` or the
installed classifier plugins change. :func:`set_override` records a hand decision and
reclassifies the flows it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, exists, func, or_, select

from fundtrack.accounting.classify import (
    SCOPE,
    Classification,
    Classifier,
    apply_gender_overrides,
    load_overrides,
    plugin_classifiers,
    subject_of,
)
from fundtrack.accounting.items import Item, RuleInput, load_items, load_rule_inputs
from fundtrack.accounting.markers import GENDER_DIMENSIONS, marker_rule
from fundtrack.accounting.tables import ClassificationOverride, FlowClassification
from fundtrack.db.base import current
from fundtrack.db.bulk import bulk_insert
from fundtrack.ledger import tables as m

#: Flows classified per round trip (bounds memory on a full rebuild).
CHUNK = 5_000


def _table() -> Any:
    return FlowClassification.__table__


def classifier(conn: Connection) -> Classifier:
    """The rules, plugin classifiers and hand overrides as they are now, read once for one
    write of many flows (per flow, the rule file lookup alone re-read the settings)."""
    return Classifier(None, load_overrides(conn), plugin_classifiers())


def rows_for(conn: Connection, flow_ids: Iterable[int], clf: Classifier | None = None
             ) -> list[dict[str, Any]]:
    """The rows the given (current) flows should have, classified as ``classify_all`` does
    (``clf``: a :func:`classifier` to reuse across calls of one run)."""
    f = m.Flow.__table__
    rows: list[dict[str, Any]] = []
    ids = sorted(set(flow_ids))
    clf = clf or classifier(conn)
    for i in range(0, len(ids), CHUNK):
        rows += _rows(conn, f.c.id.in_(ids[i:i + CHUNK]), clf)
    return rows


def _rows(conn: Connection, where: ColumnElement[bool], clf: Classifier
          ) -> list[dict[str, Any]]:
    """The rows of the current flows ``where`` picks (on the flow table)."""
    overrides = clf.overrides
    # Plugins read whole items; the rules, overrides and gender rows only a few fields.
    items: list[Item] | list[RuleInput] = (load_items(conn, where) if clf.extra
                                           else load_rule_inputs(conn, where))
    apply_gender_overrides(items, overrides)
    rows: list[dict[str, Any]] = []
    by_hits: dict[tuple[tuple[str, str], ...], list[tuple[str, bool, str | None]]] = {}
    for it in items:
        mk = it.marker
        if mk.common in GENDER_DIMENSIONS:
            rows.append({"flow_id": it.flow_id, "dimension": GENDER_DIMENSIONS[mk.common],
                         "is_in": True, "rules": marker_rule(mk)})
        mine = overrides.get(subject_of(it))
        if mine or clf.extra:
            found = _found(clf.classify(it), mine or {})
        else:  # the rules alone decide: flows with the same hits have the same rows
            hits = clf.rule_hits(it)
            found = by_hits.get(hits) or by_hits.setdefault(hits, _found(clf.classify(it), {}))
        rows += [{"flow_id": it.flow_id, "dimension": dim, "is_in": is_in, "rules": rules}
                 for dim, is_in, rules in found]
    return rows


def _found(c: Classification, mine: dict[str, tuple[str, int]]
           ) -> list[tuple[str, bool, str | None]]:
    """(dimension, is in, rules) rows of a classification: scope always (out of scope
    too, citing a hand "out" if there is one), each other dimension it is in, and the
    dimensions a hand decision took out."""
    out_by_hand = {dim: f"override:{oid}" for dim, (value, oid) in mine.items()
                   if value == "out" and dim != "gender"}
    found: list[tuple[str, bool, str | None]] = [
        (SCOPE, c.in_scope, " ".join(c.why.get(SCOPE, [])) or out_by_hand.get(SCOPE))]
    found += [(dim[:40], True, " ".join(why)) for dim, why in sorted(c.why.items())
              if dim != SCOPE]
    found += [(dim[:40], False, why) for dim, why in sorted(out_by_hand.items())
              if dim != SCOPE and dim not in c.why]
    return found


def _write(conn: Connection, flow_ids: list[int]) -> int:
    """Replace the rows of these flows; returns how many flows were classified."""
    t, f = _table(), m.Flow.__table__
    for i in range(0, len(flow_ids), CHUNK):
        conn.execute(delete(t).where(t.c.flow_id.in_(flow_ids[i:i + CHUNK])))
    if not flow_ids:
        return 0
    clf = classifier(conn)
    for i in range(0, len(flow_ids), CHUNK):
        bulk_insert(conn, t, _rows(conn, f.c.id.in_(flow_ids[i:i + CHUNK]), clf))
    return len(flow_ids)


#: One chunk of a rebuild: (how many flows it classified, their rows).
Chunk = tuple[int, list[dict[str, Any]]]


def rebuild_chunks(conn: Connection) -> Iterator[Chunk]:
    """The rows of every current flow, chunk by chunk (read by id range), as
    :func:`rebuild` inserts them. It only reads (the ledger and the hand decisions), so
    another connection may compute them while the writer rebuilds other steps
    (``fundtrack.ingest.many``)."""
    f = m.Flow.__table__
    ids = _current_ids(conn, f.c.id.is_not(None))
    if not ids:
        return
    clf = classifier(conn)
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        yield len(chunk), _rows(conn, and_(f.c.id >= chunk[0], f.c.id <= chunk[-1]), clf)


def _current_ids(conn: Connection, where: ColumnElement[bool]) -> list[int]:
    f = m.Flow.__table__
    return list(conn.execute(select(f.c.id).where(current(f), where)
                             .order_by(f.c.id)).scalars())


def _drop_not_current(conn: Connection, where: ColumnElement[bool] | None = None) -> int:
    """Delete rows of flows that are superseded (``where`` narrows the flows looked at)."""
    t, f = _table(), m.Flow.__table__
    gone = select(f.c.id).where(f.c.superseded_by.is_not(None))
    if where is not None:
        gone = gone.where(where)
    return conn.execute(delete(t).where(t.c.flow_id.in_(gone))).rowcount or 0


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """The batch's flows (and current flows of activities it wrote) classified; the rows
    of flows it superseded deleted."""
    f, a = m.Flow.__table__, m.Activity.__table__
    dropped = _drop_not_current(conn, f.c.superseded_by == batch_id)
    # two indexed reads, not one OR: PostgreSQL cannot serve "batch_id = X OR activity_id
    # IN (subquery)" from the indexes and scanned every flow (2 s at 10M flows)
    ids = sorted(set(_current_ids(conn, f.c.batch_id == batch_id)).union(_current_ids(
        conn, f.c.activity_id.in_(select(a.c.id).where(a.c.batch_id == batch_id)))))
    return {"classified_flows": _write(conn, ids), "classification_dropped": dropped}


def after_revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """Rows of flows no longer current deleted (the batch's own went with its flows);
    current flows without a row (the ones the revert restored) classified."""
    t, f = _table(), m.Flow.__table__
    dropped = _drop_not_current(conn)
    missing = _current_ids(conn, ~exists(select(t.c.flow_id).where(
        t.c.flow_id == f.c.id, t.c.dimension == SCOPE)))
    return {"classified_flows": _write(conn, missing), "classification_dropped": dropped}


def rebuild(conn: Connection, chunks: Iterable[Chunk] | None = None) -> dict[str, int]:
    """Every current flow classified afresh (rules, plugins and overrides as they are now).

    ``chunks``: :func:`rebuild_chunks` of the same ledger computed elsewhere (on another
    connection, after this transaction took the ledger lock); only inserted here."""
    t = _table()
    conn.execute(delete(t))
    flows = 0
    for n, rows in rebuild_chunks(conn) if chunks is None else chunks:
        bulk_insert(conn, t, rows)
        flows += n
    return {"classified_flows": flows}


def _subject_flows(conn: Connection, subject: str) -> list[int]:
    """Current flows an override subject names (see :func:`classify.subject_of`)."""
    f, a = m.Flow.__table__, m.Activity.__table__
    kind, _, key = subject.partition(":")
    if kind == "activity":
        return _current_ids(conn, f.c.activity_id.in_(
            select(a.c.id).where(a.c.iati_identifier == key, current(a))))
    if kind == "flow":
        cond = f.c.external_id == key
        if key.isdigit():
            cond = or_(cond, f.c.id == int(key))
        return _current_ids(conn, and_(f.c.activity_id.is_(None), cond))
    raise ValueError(f"override subject must be activity:<identifier> or flow:<id>, not {subject!r}")


def set_override(conn: Connection, subject: str, dimension: str, value: str | None,
                 note: str | None = None, decided_by: str | None = None) -> int | None:
    """Record (or, with ``value=None``, remove) a hand decision and reclassify its flows.

    ``dimension``: scope | pillar:<name> | gender; ``value``: in | out (a common-scale
    gender value for gender). Returns the override's id (None when removed)."""
    flows = _subject_flows(conn, subject)  # validates the subject first
    o = ClassificationOverride.__table__
    old = conn.execute(select(o.c.id).where(o.c.subject == subject,
                                            o.c.dimension == dimension)).scalar()
    oid: int | None = None
    if value is None:
        if old is not None:
            conn.execute(delete(o).where(o.c.id == old))
    elif old is not None:
        conn.execute(o.update().where(o.c.id == old).values(
            value=value, note=note, decided_by=decided_by, decided_at=datetime.now(UTC)))
        oid = old
    else:
        oid = conn.execute(o.insert().values(
            subject=subject, dimension=dimension, value=value, note=note,
            decided_by=decided_by, decided_at=datetime.now(UTC))).inserted_primary_key[0]
    _write(conn, flows)
    if dimension == "gender":
        # flow_rollup groups by the stored gender value: its years of these flows change.
        from fundtrack.derived.rollup.maintain import refresh_flows

        refresh_flows(conn, flows)
    return oid


def counts(conn: Connection) -> dict[str, int]:
    """Flows per stored dimension that are in it (for reports and checks)."""
    t = _table()
    return dict(conn.execute(select(t.c.dimension, func.count()).where(t.c.is_in)
                             .group_by(t.c.dimension).order_by(t.c.dimension)).all())


def cited(conn: Connection, flow_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Per flow, the dimensions it is in (scope first, then pillars), each with the rules
    that put it there and their rationale (``rules.toml``): what a page shows beside a
    flow. A flow out of scope with no pillar has an empty list."""
    from fundtrack.accounting.classify import rule_info

    t = _table()
    ids = sorted(set(flow_ids))
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for i in range(0, len(ids), CHUNK):
        for r in conn.execute(select(t.c.flow_id, t.c.dimension, t.c.rules).where(
                t.c.flow_id.in_(ids[i:i + CHUNK]), t.c.is_in,
                t.c.dimension.not_like("gender:%"))  # genderSignificance's, not 1325's
                .order_by(t.c.flow_id, t.c.dimension != SCOPE, t.c.dimension)):
            rules = []
            for rid in (r.rules or "").split():
                note, low = rule_info(rid)
                rules.append({"id": rid, "note": note, "low_confidence": low})
            out[r.flow_id].append({"dimension": r.dimension.removeprefix("pillar:"),
                                   "rules": rules})
    return out
