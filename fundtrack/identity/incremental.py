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
- **Resolution** (:func:`~fundtrack.identity.resolve.resolve_set`, the rebuild's own
  order) runs over the part of that set the batch can move (:func:`_part`): the parties
  tied to the batch's new parties, new or changed registry rows, dropped or newly typed
  parties by ref or normalised name, found by index, round by round; a batch that
  changes none of those skips it (:func:`_known_parties_only`). Its cost follows that
  part, not the number of parties; the whole set is resolved only after a revert or when
  the part cannot be followed. A change to *earlier* resolutions is detected exactly,
  not guessed: a new identifier or name that makes an earlier name-only party match, or
  a name that becomes ambiguous, shows as an earlier party (of the part) whose canonical
  organisation differs from the stored one.
- **Writes:** the organisation tables (one row per organisation, identifier, name,
  party) are rewritten for the part's organisations only, each keeping its id;
  ``flow_party`` gets rows for the batch's flows, loses those of the flows it replaced,
  and is updated only for current flows of earlier parties whose organisation changed.
  Those flows' ids are left in ``conn.info[CHANGED_FLOWS]`` and the trail told
  (``CHANGED``): it then rebuilds, with the reason logged.
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
from collections import defaultdict
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Select,
    Table,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)

from fundtrack.db.base import current
from fundtrack.db.bulk import bulk_insert
from fundtrack.identity import resolve as rs
from fundtrack.identity import tables as t
from fundtrack.identity.names import normalise
from fundtrack.identity.seeds import crs_channel_names, load_seeds
from fundtrack.identity.wro import listed
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


def _final_ref(orgs: dict[int, tuple[str, int | None]], oid: int) -> str:
    """The ref of the organisation ``oid`` was merged into, at the end of its chain of
    merges (at most 50 followed, so a cycle cannot hang the import)."""
    for _ in range(50):
        ref, into = orgs[oid]
        if into is None:
            break
        oid = into
    return orgs[oid][0]


def _stored(conn: Connection) -> tuple[dict[Key, str], dict[Key, str], dict[str, int]]:
    """({party: final canonical ref}, {party: type resolved with}, {org ref: id})."""
    pr, co = t.PartyResolution.__table__, t.CanonicalOrg.__table__
    orgs = {row.id: (row.ref, row.merged_into_id) for row in
            conn.execute(select(co.c.id, co.c.ref, co.c.merged_into_id))}

    def final(oid: int) -> str:
        return _final_ref(orgs, oid)

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


def name_only_flows(side: str, names: list[str], where: Any) -> Select[Any]:
    """Flows (``where``) whose ``side`` (provider or receiver) has no ref and one of
    ``names`` (trimmed): read through the partial index ``ix_flow_<side>_name_only``."""
    f = m.Flow.__table__
    return select(*(f.c[c] for c in _FCOLS)).where(
        where, text(m.NAME_ONLY[side]), m.trimmed(f.c[f"{side}_name"]).in_(names))


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
    # name-only parties' sides, through the partial indexes on the trimmed name of a side
    # without a ref (``NAME_ONLY``: its predicate, as text, so that both databases match it)
    for i in range(0, len(names), _CHUNK):
        chunk = names[i:i + _CHUNK]
        for side in ("provider", "receiver"):
            for row in conn.execute(name_only_flows(side, chunk, where)):
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
            .where(current(a), m.trimmed(po.c.name).in_(chunk))))
    return named & keys


#: ``conn.info`` key: the batch's parties read once per update (:func:`update_after`
#: drops it when done): the short path, the part and the full path each ask for them.
_BATCH_PARTIES = "fundtrack.identity_batch_parties"


def _batch_parties(conn: Connection, batch_id: int, own: bool
                   ) -> tuple[set[Key], dict[Key, str]]:
    """Parties of the batch's current rows (``own``) or of the rows it replaced (copies:
    callers change them)."""
    memo = conn.info.setdefault(_BATCH_PARTIES, {})
    if (batch_id, own) not in memo:
        memo[(batch_id, own)] = _read_batch_parties(conn, batch_id, own)
    keys, types = memo[(batch_id, own)]
    return set(keys), dict(types)


def _read_batch_parties(conn: Connection, batch_id: int, own: bool
                        ) -> tuple[set[Key], dict[Key, str]]:
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


def _stored_subset(conn: Connection, keys: set[Key], refs: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[dict[Key, str], dict[Key, str], dict[str, int]]:
    """:func:`_stored` for the parties ``keys`` only (those stored), and for the
    organisations of those parties and of ``refs``: read by index (``party_resolution``
    by (ref, name), ``canonical_org`` by id and ref), so that an import's update reads
    what its batch touches, not every party."""
    pr, co = t.PartyResolution.__table__, t.CanonicalOrg.__table__
    rows: list[Any] = []
    wanted = sorted(keys)
    for i in range(0, len(wanted), _CHUNK):
        rows += conn.execute(select(pr.c.ref, pr.c.name_key, pr.c.reported_type, pr.c.org_id)
                             .where(tuple_(pr.c.ref, pr.c.name_key).in_(wanted[i:i + _CHUNK])))
    orgs: dict[int, tuple[str, int | None]] = {}
    by_ref = sorted(refs)
    for i in range(0, len(by_ref), _CHUNK):
        orgs.update((x.id, (x.ref, x.merged_into_id)) for x in conn.execute(
            select(co.c.id, co.c.ref, co.c.merged_into_id)
            .where(co.c.ref.in_(by_ref[i:i + _CHUNK]))))
    ids = {row.org_id for row in rows}
    for _ in range(50):  # the organisations, then those they were merged into
        todo = sorted(ids - orgs.keys())
        if not todo:
            break
        for i in range(0, len(todo), _CHUNK):
            orgs.update((x.id, (x.ref, x.merged_into_id)) for x in conn.execute(
                select(co.c.id, co.c.ref, co.c.merged_into_id)
                .where(co.c.id.in_(todo[i:i + _CHUNK]))))
        ids = {into for _, into in orgs.values() if into is not None}

    def final(oid: int) -> str:
        return _final_ref(orgs, oid)

    finals = {(r.ref, r.name_key): final(r.org_id) for r in rows}
    types = {(r.ref, r.name_key): r.reported_type for r in rows if r.reported_type}
    return finals, types, {ref: oid for oid, (ref, _) in orgs.items()}


def _pids(conn: Connection, keys: set[Key]) -> dict[Key, int | None]:
    """{party: id of its organisation} as stored, for ``keys``."""
    before, _, keep = _stored_subset(conn, keys)
    return {k: keep.get(ref) for k, ref in before.items()}


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
    replaced. Cost: the batch's rows and their parties' ``party_resolution`` rows (by
    index), not the resolution of every party (the common case: a publisher's next file).
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
    out = {"parties_of_batch": len(new), "parties_changed": 0,
           "flows_written": len(fresh_rows), "flows_changed": 0, "known_parties_only": 1}
    log.info("identity (batch %d): every party already resolved: %s", batch_id, out)
    return out


Token = tuple[str, str]


def _tokens(k: Key) -> set[Token] | None:
    """What party ``k`` reads and writes in the resolver: ``("r", ref)``, the identifier
    it looks up (and may add, or create an organisation keyed by), and ``("n", name)``,
    the normalised name it compares (and may add, or key an organisation ``name:<name>``
    by). ``None``: a party this closure does not follow (a ref that reads as such a key,
    ``name:...``; a name whose key the resolver cuts at 200 characters, so that two names
    may share it)."""
    ref = k[0].strip()
    if ref and rs.ref_is_a_name(ref):
        ref = ""
    n = rs.match_name(k[0], k[1])
    if ref.startswith("name:") or len(f"name:{n}") > 200:
        return None
    return ({("r", ref)} if ref else set()) | ({("n", n)} if n else set())


def _key_tokens(s: str) -> set[Token]:
    """The tokens :meth:`Resolver.find` reads for ``s`` (a canonical ref, an identifier
    or ``name:<name>``)."""
    out: set[Token] = {("r", s)}
    if s.startswith("name:"):
        out |= {("n", s[5:]), ("n", normalise(s[5:]))}
    return out


def _org_in(tokens: set[Token], ref: str) -> bool:
    """Whether the organisation keyed ``ref`` (a ref, or ``name:<name>``) is in the part."""
    return (("n", ref[5:]) if ref.startswith("name:") else ("r", ref)) in tokens


@lru_cache(maxsize=1)
def _shipped_groups() -> tuple[frozenset[Token], ...]:
    """Tokens the shipped data ties together before any party: each seed's ref,
    identifiers and names (and its CRS codes' names), each CRS channel code's two forms
    and names, each subject of the WRO list."""
    crs = crs_channel_names()
    groups: list[set[Token]] = []
    for s in load_seeds():
        g: set[Token] = {("r", s.ref)} | {("r", i.value) for i in s.identifiers}
        g |= {("n", normalise(x)) for x in (s.name, *s.names)}
        for i in s.identifiers:
            crs_id = rs._CRS.match(i.value)
            if crs_id and crs_id.group(1) in crs:
                g |= {("n", normalise(x)) for x in crs[crs_id.group(1)]}
        groups.append(g)
    for code, names in crs.items():
        groups.append({("r", f"XM-DAC-{code}"), ("r", code)}
                      | {("n", normalise(x)) for x in names})
    groups += [_key_tokens(e["subject"]) for e in listed()]
    return tuple(frozenset(g - {("n", "")}) for g in groups)


def _groups(conn: Connection) -> dict[Token, frozenset[Token]]:
    """{token: every token tied to it before any party}: the shipped groups, each fund's
    organisation with its aliases, each decision's subject with its target (a merge, a
    split, a type or flag reads and writes the organisations both name)."""
    from fundtrack.derived.trail.tables import Fund

    groups = [set(g) for g in _shipped_groups()]
    fu, d = Fund.__table__, t.OrgDecision.__table__
    for ref, aliases in conn.execute(select(fu.c.organisation_ref, fu.c.aliases)):
        groups.append(_key_tokens(ref) | {("n", normalise(a)) for a in aliases or []})
    for subject, target in conn.execute(select(d.c.subject, d.c.target)
                                        .where(d.c.reverted_at.is_(None))):
        groups.append(_key_tokens(subject) | (_key_tokens(target) if target else set()))
    parent: dict[Token, Token] = {}

    def root(x: Token) -> Token:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in groups:
        g.discard(("n", ""))
        first = None
        for x in g:
            parent.setdefault(x, x)
            if first is None:
                first = root(x)
            else:
                parent[root(x)] = first
    members: dict[Token, set[Token]] = defaultdict(set)
    for x in parent:
        members[root(x)].add(x)
    return {x: frozenset(members[root(x)]) for x in parent}


def _closure(conn: Connection, start: set[Token], extra: dict[Key, set[Token]]
             ) -> tuple[set[Token], set[Key]] | None:
    """(tokens, parties): the smallest set of tokens holding ``start`` that no party and
    no group ties to a token outside it, and the parties (stored, or ``extra``: not
    stored yet) that carry them. Found by index (``party_resolution`` by ref and by
    ``match_name``), round by round. ``None`` when a party is one :func:`_tokens`
    cannot follow."""
    pr = t.PartyResolution.__table__
    groups = _groups(conn)
    seen: set[Token] = set()
    found: set[Key] = set()
    frontier = set(start)
    while frontier:
        seen |= frontier
        grow: set[Token] = set()
        for x in frontier:
            grow |= groups.get(x, frozenset())
        refs = sorted(v for kind, v in frontier if kind == "r")
        names = sorted(v for kind, v in frontier if kind == "n")
        keys: set[Key] = set()
        for col, values in ((pr.c.ref, refs), (pr.c.match_name, names)):
            for i in range(0, len(values), _CHUNK):
                keys.update((a, b) for a, b in conn.execute(
                    select(pr.c.ref, pr.c.name_key).where(col.in_(values[i:i + _CHUNK]))))
        keys |= {k for k, toks in extra.items() if toks & frontier}
        for k in keys - found:
            toks = _tokens(k)
            if toks is None:
                return None
            found.add(k)
            grow |= toks
        frontier = grow - seen
    return seen, found


def _registry_changes(conn: Connection, batch_id: int) -> tuple[set[Key], set[Key]]:
    """(registry rows the batch created or changed, as parties; the parties they were
    before the change)."""
    oc, o = m.BatchOrgChange.__table__, m.Organisation.__table__
    changes = list(conn.execute(select(oc.c.org_ref, oc.c.existed, oc.c.name)
                                .where(oc.c.batch_id == batch_id)))
    refs = sorted({c.org_ref for c in changes})
    now: set[Key] = set()
    for i in range(0, len(refs), _CHUNK):
        now.update(rs.key(a, b) for a, b in conn.execute(
            select(o.c.ref, o.c.name).where(o.c.ref.in_(refs[i:i + _CHUNK]))))
    was = {rs.key(c.org_ref, c.name) for c in changes if c.existed}
    return now, was


def _part(conn: Connection, batch_id: int, before: dict[Key, str],
          stored_types: dict[Key, str], keep: dict[str, int]) -> dict[str, Any] | None:
    """Resolve only the part of the party set the batch can move; ``None`` when the
    closure cannot be followed (the caller resolves the whole set).

    The resolver (:func:`~fundtrack.identity.resolve.resolve_set`) handles parties in a
    fixed order, and each reads and writes its organisations only through two keys: the
    identifier it reports (``by_id``, and the organisation keyed by it) and its normalised
    name (``by_name``, the ``name:`` key, the names an identifier must agree with): see
    :func:`_tokens`. Organisations tie their identifiers and names together, and only
    parties (or the seeds, the CRS codelist, the funds' aliases, people's decisions and
    the WRO list: :func:`_groups`) put them there. So parties fall into parts, the
    connected pieces of the graph in which a party joins its ref to its name and a group
    joins its tokens, and each part resolves alone exactly as it does within the whole set
    (in the same relative order). A new registry row with ref R and name N, a new party,
    a party dropped or given a type can only move the parties of its part: those whose
    ref or normalised name is R or N, then, through what those carry, round by round.
    Those parties (:func:`_closure`) are resolved, in the set a full update would use (the
    stored parties, the registry's, the batch's, less the dropped), and only the
    organisations of that part (found by their key's token) and their rows are written;
    every other party keeps its stored resolution and every other organisation its rows.

    The exact condition, per party P = (ref, name) as :meth:`Resolver.resolve` reads it
    (a ref that reads as a name is the name): P is resolved again iff its ref or its
    normalised name is reachable from the batch's tokens (the refs and normalised names
    of its new parties, of the registry rows it created or changed, before and after,
    and of parties it dropped or gave a first type) through parties sharing a ref or a
    normalised name and through :func:`_groups`. ``None`` (the whole set) when a party
    of the part has a ref of the form ``name:...`` or a normalised name over 195
    characters (the resolver cuts ``name:`` keys at 200, so such names may share one).

    Assumes, like the short path, that the registry's rows are resolved parties but those
    the batch changed (``batch_org_change``): registry edits rebuild every step.
    """
    t0 = time.perf_counter()
    new, ntypes = _batch_parties(conn, batch_id, own=True)
    new.discard(("", ""))
    old, _ = _batch_parties(conn, batch_id, own=False)
    reg_now, reg_was = _registry_changes(conn, batch_id)
    o = m.Organisation.__table__
    gone = old - new - reg_now
    if gone:  # a party the registry names is never dropped
        refs = sorted({k[0] for k in gone})
        for i in range(0, len(refs), _CHUNK):
            gone -= {rs.key(a, b) for a, b in conn.execute(
                select(o.c.ref, o.c.name).where(o.c.ref.in_(refs[i:i + _CHUNK])))}
    dropped = gone - _still_named(conn, gone) if gone else set()
    fresh = (new | reg_now) - before.keys()
    retyped = {k for k in ntypes if k not in stored_types}
    start: set[Token] = set()
    for k in fresh | reg_now | reg_was | dropped | retyped:
        toks = _tokens(k)
        if toks is None:
            return None
        start |= toks
    extra: dict[Key, set[Token]] = {}
    for k in fresh:
        toks = _tokens(k)
        assert toks is not None
        extra[k] = toks
    closed = _closure(conn, start, extra)
    if closed is None:
        return None
    tokens, found = closed
    part = found - dropped
    # what is stored of the part's parties, and the organisations keyed by its tokens
    # (those the write may keep, change or delete)
    scope_refs = {v if kind == "r" else f"name:{v}" for kind, v in tokens}
    more = _stored_subset(conn, found - before.keys(), scope_refs)
    before = {**before, **more[0]}
    stored_types = {**stored_types, **more[1]}
    keep = {**keep, **more[2]}
    r = rs.build(conn, registry_refs={k[0] for k in part})
    r.registry_parties = [row for row in r.registry_parties
                          if rs.key(row.ref, row.name) in part]
    _, types = rs.registry_wanted(r)
    for k, v in stored_types.items():
        if k in part:
            types.setdefault(k, v)
    for k, v in ntypes.items():
        if k in part:
            types.setdefault(k, v)
    parties = rs.resolve_set(r, part, types)
    t1 = time.perf_counter()
    moved = {k for k, x in parties.items()
             if k in before and x.org_ref and before[k] != r.final(x.org_ref)}
    co, pr = t.CanonicalOrg.__table__, t.PartyResolution.__table__
    top = conn.execute(select(func.max(co.c.id))).scalar() or 0
    ids = rs._write(conn, r, parties, types, keep=keep,
                    scope=lambda ref: _org_in(tokens, ref), top=top)
    pid: dict[Key, int | None] = {k: keep.get(ref) for k, ref in before.items()
                                  if k not in dropped}
    pid.update((k, ids.get(rs._final(r, x) or "")) for k, x in parties.items())
    return {"r": r, "parties": parties, "pid": pid, "moved": moved, "before": before,
            "t0": t0, "t1": t1, "counts": {
                "parties": conn.execute(select(func.count()).select_from(pr)).scalar() or 0,
                "parties_resolved": len(parties), "parties_dropped": len(dropped)}}



def update_after(conn: Connection, batch_id: int, revert: bool = False) -> dict[str, Any]:
    """Bring the identity tables up to date after batch ``batch_id`` was merged (or
    reverted), touching ``flow_party`` only where the batch or a changed party does."""
    try:
        return _update_after(conn, batch_id, revert)
    finally:
        conn.info.pop(_BATCH_PARTIES, None)


def _update_after(conn: Connection, batch_id: int, revert: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    pr = t.PartyResolution.__table__
    if conn.execute(select(pr.c.id).limit(1)).first() is None:
        # nothing resolved yet (a first import): the rebuild is the batch
        return rs.rebuild(conn)
    if not revert:
        # what is stored of the batch's parties (and of the registry rows it changed):
        # enough for the short path; the part path reads its part's
        new, _ = _batch_parties(conn, batch_id, own=True)
        old, _ = _batch_parties(conn, batch_id, own=False)
        reg_now, reg_was = _registry_changes(conn, batch_id)
        sub = _stored_subset(conn, new | old | reg_now | reg_was)
        known = _known_parties_only(conn, batch_id, *sub)
        if known is not None:
            return known
        done = _part(conn, batch_id, *sub)
        if done is not None:
            return _finish(conn, batch_id, revert, done["r"], done["parties"], done["pid"],
                           done["moved"], done["before"],
                           done["t0"], done["t1"], done["counts"])
    before, stored_types, keep = _stored(conn)
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
    counts = {"organisations": sum(1 for o in r.orgs.values() if not o.merged_into),
              "parties": len(parties), "parties_dropped": dropped}
    return _finish(conn, batch_id, revert, r, parties, pid, moved, before, t0, t1, counts)


def _finish(conn: Connection, batch_id: int, revert: bool, r: rs.Resolver,
            parties: dict[Key, rs.Resolution], pid: dict[Key, int | None], moved: set[Key],
            before: dict[Key, str], t0: float, t1: float, counts: dict[str, int]
            ) -> dict[str, Any]:
    """``flow_party`` after the resolution (of the whole set or of the batch's part):
    rows of the batch's flows, and of earlier flows whose party ``moved``."""
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
        # (after a part's update, ``pid`` holds the batch's and the part's parties: the
        # other sides of these flows are read as stored)
        missing = {k for row in earlier for k in _flow_keys(row)} - pid.keys() - {("", "")}
        if missing:
            pid.update(_pids(conn, missing))
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
    out = {**counts, "parties_changed": len(moved), "flows_written": len(fresh_rows),
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
