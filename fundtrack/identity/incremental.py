"""The identity step after an import or a revert: work that follows the batch.

:func:`fundtrack.identity.resolve.rebuild` reads every current flow and rewrites every
``flow_party`` row (about 28 s per million flows on SQLite). After a batch only a few
parties are new, so here:

- **The party set** is the one a rebuild would use, found without reading the ledger:
  the parties already resolved (``party_resolution``, with the type they were resolved
  with), the registry's, and the batch's own (its flows, its activities' reporters and
  participating organisations). Parties that only rows the batch replaced named are
  looked up by index (ref, or name for name-only parties) and dropped when nothing
  current names them any more, as a rebuild would drop them.
- **Resolution** runs over that whole set in memory
  (:func:`~fundtrack.identity.resolve.resolve_set`, the rebuild's own order): its cost
  follows the number of distinct parties (tens of thousands), not flows. This is how a
  change to *earlier* resolutions is detected exactly, not guessed: a new identifier or
  name that makes an earlier name-only party match, or a name that becomes ambiguous,
  shows as an earlier party whose canonical organisation differs from the stored one.
- **Writes:** the organisation tables (one row per organisation, identifier, name,
  party) are rewritten keeping each organisation's id; ``flow_party`` gets rows for the
  batch's flows, loses those of the flows it replaced, and is updated only for current
  flows of earlier parties whose organisation changed. Those flows' ids are left in
  ``conn.info[CHANGED_FLOWS]`` and the trail told (``CHANGED``): it then rebuilds, with
  the reason logged.
- **After a revert** the reverted flows are gone and the flows they had replaced are
  current again; which ones is not recorded, so the party set is read with ``DISTINCT``
  queries in SQL and ``flow_party`` is corrected by two anti-joins (rows of flows no
  longer current out, current flows without a row in). Parties that only the reverted
  batch brought are removed, as a rebuild would: a party left behind could still make a
  name ambiguous or lend an organisation a name, and the answers would then depend on
  history.

People's decisions (``org_decision``) and registry edits still rebuild everything
(:func:`fundtrack.derived.steps.after_registry_edit`): they are rare and may move any
party.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, exists, func, or_, select, update

from fundtrack.db.base import current
from fundtrack.db.bulk import bulk_insert
from fundtrack.identity import resolve as rs
from fundtrack.identity import tables as t
from fundtrack.ledger import tables as m

log = logging.getLogger(__name__)

Key = tuple[str, str]

#: ``conn.info`` key: ids of earlier flows whose canonical party changed in this update
#: (the trail re-pairs them with the batch's).
CHANGED_FLOWS = "fundtrack.identity_changed_flows"
#: ``conn.info`` key: a party that may be a reporting organisation (a ref reported without
#: a name) changed organisation: the trail's accounts of its activities move, it rebuilds.
REPORTERS_MOVED = "fundtrack.identity_reporters_moved"

_CHUNK = 500


def _stored(conn: Connection) -> tuple[dict[Key, str], dict[Key, str], dict[str, int]]:
    """({party: final canonical ref}, {party: type resolved with}, {org ref: id})."""
    pr, co = t.PartyResolution.__table__, t.CanonicalOrg.__table__
    orgs = {row.id: (row.ref, row.merged_into_id) for row in
            conn.execute(select(co.c.id, co.c.ref, co.c.merged_into_id))}

    def final(oid: int) -> str:
        for _ in range(50):
            ref, into = orgs[oid]
            if into is None:
                break
            oid = into
        return orgs[oid][0]

    finals: dict[Key, str] = {}
    types: dict[Key, str] = {}
    for ref, name, typ, oid in conn.execute(
            select(pr.c.ref, pr.c.name_key, pr.c.reported_type, pr.c.org_id)):
        finals[(ref, name)] = final(oid)
        if typ:
            types[(ref, name)] = typ
    return finals, types, {ref: oid for oid, (ref, _) in orgs.items()}


def _flow_keys(row: Any) -> tuple[Key, Key, Key]:
    return (rs.key(row.provider_ref, row.provider_name),
            rs.key(row.receiver_ref, row.receiver_name), rs.key(row.reporting_org_ref, None))


_FCOLS = ("id", "provider_ref", "provider_name", "receiver_ref", "receiver_name",
          "reporting_org_ref")


def _flows_naming(conn: Connection, keys: set[Key], where: Any) -> list[Any]:
    """Flows (``where``) that may carry one of ``keys`` as a party: by ref (indexed), or by
    name for name-only parties."""
    f = m.Flow.__table__
    cols = [f.c[c] for c in _FCOLS]
    refs = sorted({k[0] for k in keys if k[0]})
    names = sorted({k[1] for k in keys if not k[0] and k[1]})
    out: dict[int, Any] = {}
    for i in range(0, len(refs), _CHUNK):
        chunk = refs[i:i + _CHUNK]
        for row in conn.execute(select(*cols).where(where, or_(
                f.c.provider_ref.in_(chunk), f.c.receiver_ref.in_(chunk),
                f.c.reporting_org_ref.in_(chunk)))):
            out[row.id] = row
    for i in range(0, len(names), _CHUNK):
        chunk = names[i:i + _CHUNK]
        for row in conn.execute(select(*cols).where(where, or_(
                func.trim(f.c.provider_name).in_(chunk),
                func.trim(f.c.receiver_name).in_(chunk)))):
            out[row.id] = row
    return [row for row in out.values() if keys.intersection(_flow_keys(row))]


def _still_named(conn: Connection, keys: set[Key]) -> set[Key]:
    """The parties of ``keys`` that some current flow, activity or participating
    organisation still names."""
    f, a, po = m.Flow.__table__, m.Activity.__table__, m.ParticipatingOrg.__table__
    named: set[Key] = set()
    for row in _flows_naming(conn, keys, current(f)):
        named.update(_flow_keys(row))
    refs = sorted({k[0] for k in keys if k[0]})
    names = sorted({k[1] for k in keys if k[1]})
    for i in range(0, len(refs), _CHUNK):
        chunk = refs[i:i + _CHUNK]
        named.update((r, "") for r in conn.execute(
            select(a.c.reporting_org_ref).distinct().where(
                current(a), a.c.reporting_org_ref.in_(chunk))).scalars())
        named.update(rs.key(r, n) for r, n in conn.execute(
            select(po.c.ref, po.c.name).distinct().join(a, a.c.id == po.c.activity_id)
            .where(current(a), po.c.ref.in_(chunk))))
    for i in range(0, len(names), _CHUNK):
        chunk = names[i:i + _CHUNK]
        named.update(rs.key(r, n) for r, n in conn.execute(
            select(po.c.ref, po.c.name).distinct().join(a, a.c.id == po.c.activity_id)
            .where(current(a), func.trim(po.c.name).in_(chunk))))
    return named & keys


def _batch_parties(conn: Connection, batch_id: int, own: bool
                   ) -> tuple[set[Key], dict[Key, str]]:
    """Parties of the batch's current rows (``own``) or of the rows it replaced."""
    f, a, po = m.Flow.__table__, m.Activity.__table__, m.ParticipatingOrg.__table__
    fw = (f.c.batch_id == batch_id) & current(f) if own else f.c.superseded_by == batch_id
    aw = (a.c.batch_id == batch_id) & current(a) if own else a.c.superseded_by == batch_id
    keys: set[Key] = set()
    types: dict[Key, str] = {}
    for row in conn.execute(select(*(f.c[c] for c in _FCOLS)).where(fw)):
        keys.update(_flow_keys(row))
    for (rep,) in conn.execute(select(a.c.reporting_org_ref).distinct().where(aw)):
        keys.add(rs.key(rep, None))
    for ref, name, ptype in conn.execute(select(po.c.ref, po.c.name, po.c.type).distinct()
                                         .join(a, a.c.id == po.c.activity_id).where(aw)):
        k = rs.key(ref, name)
        keys.add(k)
        if ptype and k not in types:
            types[k] = ptype
    return keys, types


def _ledger_parties(conn: Connection) -> tuple[set[Key], dict[Key, str]]:
    """Every party the current ledger names, by ``DISTINCT`` queries (after a revert)."""
    f, a, po = m.Flow.__table__, m.Activity.__table__, m.ParticipatingOrg.__table__
    keys: set[Key] = set()
    types: dict[Key, str] = {}
    for ref_c, name_c in ((f.c.provider_ref, f.c.provider_name),
                          (f.c.receiver_ref, f.c.receiver_name)):
        keys.update(rs.key(r, n) for r, n in conn.execute(
            select(ref_c, name_c).distinct().where(current(f))))
    for col in (f.c.reporting_org_ref, a.c.reporting_org_ref):
        table = f if col.table is f else a
        keys.update(rs.key(r, None) for (r,) in conn.execute(
            select(col).distinct().where(current(table))))
    for ref, name, ptype in conn.execute(select(po.c.ref, po.c.name, po.c.type).distinct()
                                         .join(a, a.c.id == po.c.activity_id)
                                         .where(current(a))):
        k = rs.key(ref, name)
        keys.add(k)
        if ptype and k not in types:
            types[k] = ptype
    return keys, types


def _rows(pid: dict[Key, int | None], flows: list[Any]) -> list[dict[str, Any]]:
    out = []
    for row in flows:
        p, r, rep = _flow_keys(row)
        out.append({"flow_id": row.id, "provider_org_id": pid.get(p),
                    "receiver_org_id": pid.get(r), "reporter_org_id": pid.get(rep)})
    return out


def _known_parties_only(conn: Connection, batch_id: int, before: dict[Key, str],
                        stored_types: dict[Key, str], keep: dict[str, int]
                        ) -> dict[str, Any] | None:
    """The update when the batch changes no input of the resolution; ``None`` otherwise.

    Resolution is a function of the party set, the types parties were resolved with, the
    registry, the seeds and people's decisions. When the batch left the registry as it was
    (no ``batch_org_change`` row), names only parties already resolved (with a type
    already stored for each it gives one), and every party of the rows it replaced is still
    named, the set is the one already resolved, so :func:`resolve_set` would give the
    stored answers: only ``flow_party`` changes, for the batch's own flows and those it
    replaced. Cost: the batch's rows and one read of ``party_resolution``, not the
    resolution of every party (the common case: a publisher's next file).
    """
    oc = m.BatchOrgChange.__table__
    if conn.execute(select(oc.c.id).where(oc.c.batch_id == batch_id).limit(1)).first():
        return None
    new, ntypes = _batch_parties(conn, batch_id, own=True)
    new.discard(("", ""))  # a side nobody is named on is no party (resolve_set skips it)
    if not new <= before.keys() or not ntypes.keys() <= stored_types.keys():
        return None
    old, _ = _batch_parties(conn, batch_id, own=False)
    gone = old - new
    if gone and not gone <= _still_named(conn, gone):
        return None
    fp, f = cast(Table, t.FlowParty.__table__), cast(Table, m.Flow.__table__)
    conn.execute(delete(fp).where(fp.c.flow_id.in_(select(f.c.id).where(
        (f.c.superseded_by == batch_id) | (f.c.batch_id == batch_id)))))
    fresh = list(conn.execute(select(*(f.c[c] for c in _FCOLS)).where(
        f.c.batch_id == batch_id, current(f))))
    pid: dict[Key, int | None] = {k: keep.get(ref) for k, ref in before.items()}
    fresh_rows = _rows(pid, fresh)
    for i in range(0, len(fresh_rows), 50_000):
        bulk_insert(conn, fp, fresh_rows[i:i + 50_000])
    out = {"parties": len(before), "parties_changed": 0, "flows_written": len(fresh_rows),
           "flows_changed": 0, "known_parties_only": 1}
    log.info("identity (batch %d): every party already resolved: %s", batch_id, out)
    return out


def update_after(conn: Connection, batch_id: int, revert: bool = False) -> dict[str, Any]:
    """Bring the identity tables up to date after batch ``batch_id`` was merged (or
    reverted), touching ``flow_party`` only where the batch or a changed party does."""
    t0 = time.perf_counter()
    before, stored_types, keep = _stored(conn)
    if not before:  # nothing resolved yet (a first import): the rebuild is the batch
        return rs.rebuild(conn)
    if not revert:
        known = _known_parties_only(conn, batch_id, before, stored_types, keep)
        if known is not None:
            return known
    r = rs.build(conn)
    wanted, types = rs.registry_wanted(r)
    dropped = 0
    if revert:
        ledger, ptypes = _ledger_parties(conn)
        wanted |= ledger
        for k, v in stored_types.items():  # the type a party was resolved with stays
            types.setdefault(k, v)
        for k, v in ptypes.items():
            types.setdefault(k, v)
    else:
        new, ntypes = _batch_parties(conn, batch_id, own=True)
        old, _ = _batch_parties(conn, batch_id, own=False)
        for k, v in stored_types.items():
            types.setdefault(k, v)
        for k, v in ntypes.items():
            types.setdefault(k, v)
        gone = old - new - wanted  # only a party of a replaced row may be named no more
        kept_gone = _still_named(conn, gone) if gone else set()
        dropped = len(gone - kept_gone)
        wanted |= (set(before) - (gone - kept_gone)) | new
    parties = rs.resolve_set(r, wanted, types)
    t1 = time.perf_counter()
    moved = {k for k, x in parties.items()
             if k in before and x.org_ref and before[k] != r.final(x.org_ref)}
    ids = rs._write(conn, r, parties, types, keep=keep)
    pid: dict[Key, int | None] = {k: ids.get(rs._final(r, x) or "")
                                  for k, x in parties.items()}
    fp, f = cast(Table, t.FlowParty.__table__), cast(Table, m.Flow.__table__)
    if revert:
        # anti-joins as NOT EXISTS: PostgreSQL plans NOT IN over a million ids that do
        # not fit work_mem as a rescan per row
        conn.execute(delete(fp).where(~exists().where(f.c.id == fp.c.flow_id, current(f))))
        fresh = list(conn.execute(select(*(f.c[c] for c in _FCOLS)).where(
            current(f), ~exists().where(fp.c.flow_id == f.c.id))))
    else:
        # rows of the flows the batch replaced go; its own are (re)written: run twice,
        # the update gives the same tables
        conn.execute(delete(fp).where(fp.c.flow_id.in_(select(f.c.id).where(
            (f.c.superseded_by == batch_id) | (f.c.batch_id == batch_id)))))
        fresh = list(conn.execute(select(*(f.c[c] for c in _FCOLS)).where(
            f.c.batch_id == batch_id, current(f))))
    fresh_rows = _rows(pid, fresh)
    for i in range(0, len(fresh_rows), 50_000):
        bulk_insert(conn, fp, fresh_rows[i:i + 50_000])
    changed: list[int] = []
    if moved:
        fresh_ids = {row.id for row in fresh}
        earlier = [row for row in _flows_naming(conn, moved, current(f))
                   if row.id not in fresh_ids]
        for row in _rows(pid, earlier):
            conn.execute(update(fp).where(fp.c.flow_id == row["flow_id"]).values(
                provider_org_id=row["provider_org_id"], receiver_org_id=row["receiver_org_id"],
                reporter_org_id=row["reporter_org_id"]))
            changed.append(row["flow_id"])
    if moved and not revert:  # (after a revert the trail rebuilds anyway)
        # the trail's incremental path re-pairs these flows; a moved reporter moves every
        # account of its activities, and the trail rebuilds
        conn.info[rs.CHANGED] = True
        conn.info[CHANGED_FLOWS] = changed
        conn.info[REPORTERS_MOVED] = any(not k[1] for k in moved)
    if moved:
        log.info("identity: %d earlier parties changed organisation (%s%s), %d earlier "
                 "flows rewritten", len(moved),
                 ", ".join(f"{k[0] or k[1]!r}: {before[k]} -> {r.final(parties[k].org_ref)}"
                           for k in sorted(moved)[:5]), ", ..." if len(moved) > 5 else "",
                 len(changed))
    out = {"organisations": sum(1 for o in r.orgs.values() if not o.merged_into),
           "parties": len(parties), "parties_dropped": dropped,
           "parties_changed": len(moved), "flows_written": len(fresh_rows),
           "flows_changed": len(changed),
           "seconds_identity_resolve": round(t1 - t0, 3),
           "seconds_identity_write": round(time.perf_counter() - t1, 3)}
    log.info("identity (batch %d%s): %s", batch_id, ", revert" if revert else "", out)
    return out


def after_import(conn: Connection, batch_id: int) -> dict[str, int]:
    """The derived step's hook after an import (counts are left out of the batch's)."""
    update_after(conn, batch_id)
    return {}


def after_revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """The derived step's hook after a revert."""
    update_after(conn, batch_id, revert=True)
    return {}
