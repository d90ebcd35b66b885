"""The resolver: every reported party to one canonical organisation, with rule and evidence.

Order (docs/methodology.md, "Who is who"):

0. ``decision``: people's decisions (:class:`~fundtrack.identity.tables.OrgDecision`)
   first: a split identifier or name is taken off the organisation it denoted before
   any rule runs; merges, types and flags are applied to the result.
1. ``identifier``: the reported ref is an identifier of a known organisation (seeds,
   the CRSChannelCode codelist: ``XM-DAC-nnnnn`` and bare ``nnnnn`` are one body, the
   registry, refs already seen).
2. ``identifier+name``: the ref is a code known to be put on other bodies
   (``requires_name``): it counts only when the reported name agrees with one of the
   organisation's names (equal once normalised, or containing one of its names of two
   words or more) or no name is reported; otherwise the code is taken as misused and
   the party goes on to the name rule without it.
3. ``name``: the normalised name (:func:`fundtrack.identity.names.normalise`) equals a
   name of exactly one organisation whose type (first digit of the IATI code) does not
   contradict the reported one and which holds no other identifier of the party's own
   scheme. Several fit: ``ambiguous``, the party stays an organisation of its own and
   each fit waits in ``match_candidate``: never merged silently.
4. ``new``: nothing matched: an organisation of its own (``ref``, else
   ``name:<normalised name>``).

The whole set of identity tables is rebuilt from the current ledger by :func:`rebuild`
(the derived step ``identity``, first of :data:`fundtrack.derived.steps.STEPS`, after
``fundtrack recompute``, a decision or a registry edit); after an import or a revert,
:mod:`fundtrack.identity.incremental` brings them up to date with the same
:func:`resolve_set` and writes only what the batch changes.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select, update

from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.db.bulk import bulk_insert
from fundtrack.identity import tables as t
from fundtrack.identity.names import normalise
from fundtrack.identity.seeds import crs_channel_names, load_seeds
from fundtrack.ledger import tables as m

log = logging.getLogger(__name__)

_CRS = re.compile(r"^(?:XM-DAC-)?(\d{5})$")


def ref_is_a_name(ref: str) -> bool:
    """Whether a reported ref is really a name: words with lower-case letters separated
    by spaces. Identifiers are codes ("XM-DAC-3-1", "GB-COH-1234"; even "BG - 11001",
    spaced, stays an identifier)."""
    words = ref.split()
    return len(words) >= 2 and any(c.islower() for c in ref) and sum(
        1 for w in words if any(c.isalpha() for c in w)) >= 2


def match_name(ref: str, name: str) -> str:
    """The normalised name :meth:`Resolver.resolve` compares for party (``ref``, ``name``)
    (a key as :func:`key` gives it): of the name, or of the ref when the ref is a name;
    '' when none."""
    ref = ref.strip()
    return normalise(name.strip() or (ref if ref and ref_is_a_name(ref) else None))


def scheme_of(ref: str) -> str:
    """The identifier scheme a reported ref belongs to, from its shape."""
    if ref.startswith("FTS-ORG-"):
        return "fts-org"
    if _CRS.match(ref):
        return "crs-channel"
    if ref.startswith("FT-"):
        return "fundtrack"
    if ref.startswith("GB-") and "360" in ref:
        return "360giving"
    if ref.isdigit():
        return "agency-code"
    return "iati-org"


def _type_family(code: str | None) -> str:
    return (code or "").strip()[:1]


@dataclass
class Org:
    """A canonical organisation while the resolver builds it."""

    ref: str
    name: str | None
    type: str | None = None
    country: str | None = None
    origin: str = "reported"
    source: str | None = None
    pooled: bool = False
    wro: bool = False
    merged_into: str | None = None
    ids: dict[str, tuple[str, bool, str, str | None]] = field(default_factory=dict)
    names: dict[str, tuple[str, str | None, str, str | None]] = field(default_factory=dict)

    def schemes(self) -> set[str]:
        return {v[0] for v in self.ids.values()}


@dataclass(frozen=True)
class Resolution:
    org_ref: str
    rule: str
    evidence: str


class Resolver:
    """Holds every canonical organisation being built; :meth:`resolve` a party."""

    def __init__(self) -> None:
        self.orgs: dict[str, Org] = {}
        self.by_id: dict[str, str] = {}            # identifier value -> org ref
        self.by_name: dict[str, set[str]] = defaultdict(set)  # normalised -> org refs
        self.split_ids: set[str] = set()
        self.split_names: dict[str, str | None] = {}
        self.candidates: list[tuple[str, str, str, str, str]] = []
        self.crs = crs_channel_names()
        #: People's decisions not reverted, in the order taken.
        self.decisions: list[Any] = []
        #: Rows of the organisation registry (resolved like the flows' parties).
        self.registry_parties: list[Any] = []

    # -- building --------------------------------------------------------------------
    def add_org(self, org: Org) -> Org:
        self.orgs[org.ref] = org
        return org

    def add_id(self, org: Org, value: str, scheme: str, requires_name: bool = False,
               origin: str = "reported", source: str | None = None) -> None:
        if value in self.split_ids and origin != "decision":
            return
        if value in self.by_id:
            return
        self.by_id[value] = org.ref
        org.ids[value] = (scheme, requires_name, origin, source)

    def add_name(self, org: Org, name: str | None, origin: str = "reported",
                 lang: str | None = None, source: str | None = None) -> None:
        n = normalise(name)
        if not n or name is None:
            return
        split = self.split_names.get(n, "-")
        if split != "-" and (split is None or split == org.ref):
            return
        if name not in org.names:
            org.names[name] = (n, lang, origin, source)
        self.by_name[n].add(org.ref)

    def crs_org(self, code: str) -> Org:
        """The organisation of CRS channel ``code`` (created from the codelist)."""
        ref = f"XM-DAC-{code}"
        owner = self.by_id.get(ref) or self.by_id.get(code)
        if owner:
            return self.orgs[owner]
        names = self.crs[code]
        org = self.add_org(Org(ref, names[0], origin="codelist",
                               source=f"CRSChannelCode {code}"))
        for value in (ref, code):
            self.add_id(org, value, "crs-channel", origin="codelist",
                        source=f"CRSChannelCode {code}")
        for i, nm in enumerate(names):
            self.add_name(org, nm, "codelist", "en" if i == 0 else "fr",
                          f"CRSChannelCode {code}")
        return org

    # -- resolving -------------------------------------------------------------------
    def agrees(self, org: Org, n: str) -> bool:
        """Whether normalised name ``n`` is one of ``org``'s names or contains one."""
        padded = f" {n} "
        for norm, *_ in org.names.values():
            if norm == n or (len(norm.split()) >= 2 and f" {norm} " in padded):
                return True
        return False

    def by_name_rule(self, ref: str, name: str | None, rtype: str | None
                     ) -> tuple[Org | None, list[Org]]:
        """(the one organisation the name rule picks, or None; every organisation that fit)."""
        n = normalise(name)
        if not n:
            return None, []
        scheme = scheme_of(ref) if ref else None
        fits = []
        for oref in sorted(self.by_name.get(n, ())):
            org = self.orgs[oref]
            if rtype and org.type and _type_family(rtype) != _type_family(org.type):
                continue
            if scheme and scheme in org.schemes() and scheme != "agency-code":
                continue  # another identifier of the same scheme: a different body
            fits.append(org)
        return (fits[0] if len(fits) == 1 else None), fits

    def resolve(self, ref: str | None, name: str | None, rtype: str | None = None
                ) -> Resolution:
        """Resolve one reported party; creates its organisation when nothing matches."""
        ref = (ref or "").strip()
        name = (name or "").strip() or None
        misused = ""
        if ref and ref_is_a_name(ref):
            # "Denmark - Ministry of Foreign Affairs" in a ref attribute: a name, matched
            # as one (an identifier of its own would keep it apart from its organisation)
            misused = f"the reported ref {ref!r} is a name, not an identifier; "
            name = name or ref
            ref = ""
        n = normalise(name)
        if ref and ref in self.split_ids:
            org = self._own(ref, name, rtype)
            return Resolution(org.ref, "decision",
                              f"{ref} was split off by a decision: an organisation of its own")
        if ref:
            owner = self.by_id.get(ref)
            crs = _CRS.match(ref)
            if owner is None and crs and crs.group(1) in self.crs:
                owner = self.crs_org(crs.group(1)).ref
            if owner is not None:
                org = self.orgs[owner]
                scheme, requires_name, origin, source = org.ids.get(
                    ref, (scheme_of(ref), False, "", None))
                if not requires_name:
                    if org.origin in ("reported", "registry"):
                        self.add_name(org, name)  # well-known bodies keep their own names
                    return Resolution(org.ref, "identifier",
                                      f"{ref} is a {scheme} identifier of {org.ref}"
                                      + (f" ({source})" if source else ""))
                if not n:
                    return Resolution(org.ref, "identifier",
                                      f"{ref} with no name is {org.ref}")
                if self.agrees(org, n):
                    self.add_name(org, name)
                    return Resolution(org.ref, "identifier+name",
                                      f"{ref} with name {name!r}, a name of {org.ref}")
                misused = (f"{ref} is also put on other bodies and {name!r} is not a name of "
                           f"{org.ref}: the code is taken as misused; ")
        own_ref = ref if ref and not misused else ""
        if n:
            pick, fits = self.by_name_rule(own_ref, name, rtype)
            if pick is not None:
                if own_ref:
                    self.add_id(pick, own_ref, scheme_of(own_ref))
                self.add_name(pick, name)
                return Resolution(pick.ref, "name",
                                  misused + f"name {name!r} reads {n!r}, a name of {pick.ref}")
            if len(fits) > 1:
                org = self._own(own_ref, name, rtype)
                for c in (x for x in fits if x.ref != org.ref):
                    self.candidates.append((own_ref, name or "", org.ref, c.ref,
                                            f"name {name!r} reads {n!r}, a name of "
                                            f"{len(fits)} organisations"))
                return Resolution(org.ref, "ambiguous",
                                  misused + f"{len(fits)} organisations are named {n!r}: "
                                  "left apart, waiting for review")
        if not own_ref and not n:
            return Resolution("", "none", "no ref and no name reported")
        org = self._own(own_ref, name, rtype)
        return Resolution(org.ref, "new", misused + "no identifier or name matched")

    def _own(self, ref: str, name: str | None, rtype: str | None) -> Org:
        key = ref or f"name:{normalise(name)}"[:200]
        org = self.orgs.get(key)
        if org is None:
            org = self.add_org(Org(key, name or ref, rtype, origin="reported"))
            if ref:
                self.add_id(org, ref, scheme_of(ref))
        self.add_name(org, name)
        return org

    def final(self, ref: str) -> str:
        """``ref`` after following merges."""
        seen = set()
        while ref in self.orgs and self.orgs[ref].merged_into and ref not in seen:
            seen.add(ref)
            ref = self.orgs[ref].merged_into  # type: ignore[assignment]
        return ref

    def find(self, key: str) -> Org | None:
        """The organisation a decision names: canonical ref, identifier, or name:..."""
        if key in self.orgs:
            return self.orgs[key]
        if key in self.by_id:
            return self.orgs[self.by_id[key]]
        if key.startswith("name:"):
            own = "name:" + normalise(key[5:])  # a name-only party left on its own
            if own in self.orgs:  # (ambiguous or new): a decision names it as reported
                return self.orgs[own]
            refs = sorted(self.by_name.get(normalise(key[5:]), ()))
            if len(refs) == 1:
                return self.orgs[refs[0]]
        return None


def _decisions(conn: Connection) -> list[Any]:
    d = t.OrgDecision.__table__
    return list(conn.execute(select(d).where(d.c.reverted_at.is_(None))
                             .order_by(d.c.decided_at, d.c.id)))


def build(conn: Connection, registry_refs: set[str] | None = None) -> Resolver:
    """A resolver holding seeds, registry and decisions' splits (before any party). With
    ``registry_refs``, only the registry rows of those refs (an import's update resolving
    part of the party set)."""
    r = Resolver()
    decisions = _decisions(conn)
    for dec in decisions:
        if dec.action == "split":
            if dec.subject.startswith("name:"):
                r.split_names[normalise(dec.subject[5:])] = dec.target
            else:
                r.split_ids.add(dec.subject)
    for s in load_seeds():
        org = r.add_org(Org(s.ref, s.name, s.type, s.country, "seed", s.source, s.pooled_fund))
        for i in s.identifiers:
            r.add_id(org, i.value, i.scheme, i.requires_name, "seed", i.source)
            crs = _CRS.match(i.value)
            if crs and crs.group(1) in r.crs:
                for k, nm in enumerate(r.crs[crs.group(1)]):
                    r.add_name(org, nm, "codelist", "en" if k == 0 else "fr",
                               f"CRSChannelCode {crs.group(1)}")
        r.add_name(org, s.name, "seed", source=s.source)
        for nm in s.names:
            r.add_name(org, nm, "seed", source=s.source)
    o = m.Organisation.__table__
    # Registry rows are parties like those of flows (imports store every organisation
    # they meet there); their flags are applied to what they resolve to.
    # (in the database's order of refs, as a rebuild reads them: the first registry type
    # of an organisation is the one it keeps)
    if registry_refs is None or len(registry_refs) > 5000:
        r.registry_parties = [row for row in conn.execute(select(o).order_by(o.c.ref))
                              if registry_refs is None or row.ref in registry_refs]
    else:
        r.registry_parties = list(conn.execute(
            select(o).where(o.c.ref.in_(sorted(registry_refs))).order_by(o.c.ref)))
    from fundtrack.derived.trail.tables import Fund

    for fund in conn.execute(select(Fund.__table__)):
        found = r.find(fund.organisation_ref)
        if found is not None:
            found.pooled = True
            for nm in fund.aliases or []:
                r.add_name(found, nm, "registry", source="fund registry alias")
    r.decisions = decisions
    return r


def apply_decisions(r: Resolver, decisions: list[Any]) -> None:
    """Merges in the order they were taken; then types and flags, in order, on the
    organisation their subject ends up in (a flag on a merged party flags the whole)."""
    for dec in decisions:
        org = r.find(dec.subject)
        if org is None:
            log.warning("decision %s names no organisation: %s", dec.id, dec.subject)
            continue
        if dec.action == "merge":
            target = r.find(dec.target or "")
            if target is not None and r.final(target.ref) != org.ref:
                org.merged_into = target.ref
    for dec in decisions:
        org = r.find(dec.subject)
        if org is None or dec.action == "merge":
            continue
        org = r.orgs[r.final(org.ref)]
        if dec.action == "set_type":
            org.type = dec.value
        elif dec.action == "flag_pooled_fund":
            org.pooled = (dec.value or "true").lower() == "true"
        elif dec.action == "flag_wro":
            org.wro = (dec.value or "true").lower() == "true"


_FLOW_PARTY_COLS = ("id", "provider_ref", "provider_name", "receiver_ref", "receiver_name",
                    "reporting_org_ref")


def key(ref: str | None, name: str | None) -> tuple[str, str]:
    """A party's key as ``party_resolution`` stores it: (ref, name cut to 300), '' for none."""
    return ((ref or "").strip(), (name or "").strip()[:300])


def registry_wanted(r: Resolver) -> tuple[set[tuple[str, str]], dict[tuple[str, str], str]]:
    """The registry's parties and their types: where every party set starts."""
    wanted: set[tuple[str, str]] = set()
    types: dict[tuple[str, str], str] = {}
    for row in r.registry_parties:
        wanted.add(key(row.ref, row.name))
        if row.type:
            types[key(row.ref, row.name)] = row.type
    return wanted, types


def resolve_set(r: Resolver, wanted: set[tuple[str, str]], types: dict[tuple[str, str], str]
                ) -> dict[tuple[str, str], Resolution]:
    """Resolve a whole party set in a fixed order (the result does not depend on the order
    files came in), then apply the registry's flags and people's decisions. The same
    set gives the same answers, whether a rebuild or an import's update computed it."""
    parties: dict[tuple[str, str], Resolution] = {}
    # CRS channel codes are bodies of the codelist, there before any party is compared
    for ref in sorted({k[0] for k in wanted}):
        crs = _CRS.match(ref)
        if ref not in r.by_id and crs and crs.group(1) in r.crs and ref not in r.split_ids:
            r.crs_org(crs.group(1))
    # refs first (sorted), then name-only parties (a ref that is really a name is one)
    for k in sorted(wanted, key=lambda k: (k[0] == "" or ref_is_a_name(k[0]), k)):
        if k != ("", ""):
            parties[k] = r.resolve(k[0], k[1], types.get(k))
    for row in r.registry_parties:
        res = parties.get(key(row.ref, row.name))
        if res is not None and res.org_ref:
            org = r.orgs[res.org_ref]
            org.pooled = org.pooled or bool(row.is_pooled_fund)
            org.wro = org.wro or bool(row.is_womens_rights_org)
            org.type = org.type or row.type
    from fundtrack.identity.wro import apply_list

    apply_list(r)  # the shipped WRO list; people's decisions below override it
    apply_decisions(r, r.decisions)
    return parties


def rebuild(conn: Connection) -> dict[str, Any]:
    """Rebuild every identity table (but ``org_decision``) from the current ledger."""
    t0 = time.perf_counter()
    r = build(conn)

    wanted, types = registry_wanted(r)
    # activities' reporters and participating organisations (with their reported type)
    a, po = m.Activity.__table__, m.ParticipatingOrg.__table__
    for (rep,) in conn.execute(select(a.c.reporting_org_ref).distinct().where(current(a))):
        wanted.add(key(rep, None))
    for ref, name, ptype in conn.execute(
            select(po.c.ref, po.c.name, po.c.type).distinct()
            .join(a, a.c.id == po.c.activity_id).where(current(a))):
        k = key(ref, name)
        wanted.add(k)
        if ptype and k not in types:
            types[k] = ptype
    # each distinct (ref, name) as reported keyed once (three per flow: a third of the
    # step's time went to key()); the flows are read in chunks, never all held
    reported: dict[tuple[str | None, str | None], None] = {}
    for _id, pr, pn, rr, rn, rep in _flow_sides(conn):
        reported[pr, pn] = reported[rr, rn] = reported[rep, None] = None
    keyed = {p: key(*p) for p in reported}
    wanted.update(keyed.values())
    parties = resolve_set(r, wanted, types)
    t1 = time.perf_counter()
    before = _resolved(conn)
    changed = any(before.get(k, r.final(x.org_ref)) != r.final(x.org_ref)
                  for k, x in parties.items() if x.org_ref)
    # The trail's incremental update after an import assumes earlier flows keep their
    # organisations; when they did not, it rebuilds everything (derived.trail.recompute).
    conn.info[CHANGED] = conn.info.get(CHANGED, False) or changed
    ids = _write(conn, r, parties, types)
    pid = {k: ids.get(_final(r, x)) for k, x in parties.items()}  # type: ignore[arg-type]
    org_id = {p: pid.get(k) for p, k in keyed.items()}
    fp = cast(Table, t.FlowParty.__table__)
    # the indexes are built once after the load (a million rows: 4x faster on SQLite)
    indexes = [ix for ix in fp.indexes if not ix.unique]
    for ix in indexes:
        ix.drop(conn)
    batch: list[dict[str, Any]] = []
    for fid, pr, pn, rr, rn, rep in _flow_sides(conn):  # read again: never all held
        batch.append({"flow_id": fid, "provider_org_id": org_id[pr, pn],
                      "receiver_org_id": org_id[rr, rn], "reporter_org_id": org_id[rep, None]})
        if len(batch) == 50_000:
            bulk_insert(conn, fp, batch)
            batch = []
    bulk_insert(conn, fp, batch)
    for ix in indexes:
        ix.create(conn)
    out = {"organisations": sum(1 for o in r.orgs.values() if not o.merged_into),
           "parties": len(parties), "match_candidates": len(r.candidates),
           "seconds_identity_resolve": round(t1 - t0, 3),
           "seconds_identity_write": round(time.perf_counter() - t1, 3)}
    log.info("identity: %s", out)
    return out


def _flow_sides(conn: Connection, chunk: int = 100_000) -> Iterator[Any]:
    """(id, provider ref and name, receiver ref and name, reporter) of every current flow,
    read in chunks by id: a rebuild reads them twice rather than hold 10M rows (~4 GB)."""
    f = m.Flow.__table__
    q = select(*(f.c[c] for c in _FLOW_PARTY_COLS)).where(current(f)).order_by(f.c.id)
    last = 0
    while True:
        rows = conn.execute(q.where(f.c.id > last).limit(chunk)).all()
        if not rows:
            return
        last = rows[-1][0]
        yield from rows


#: ``conn.info`` key: an identity rebuild moved a party of earlier flows to another organisation.
CHANGED = "fundtrack.identity_changed"


def _resolved(conn: Connection) -> dict[tuple[str, str], str]:
    """{(ref, name): canonical ref} as stored before a rebuild."""
    pr, co = t.PartyResolution.__table__, t.CanonicalOrg.__table__
    return {(a, b): c for a, b, c in conn.execute(
        select(pr.c.ref, pr.c.name_key, co.c.ref).join(co, co.c.id == pr.c.org_id))}


def _final(r: Resolver, res: Resolution | None) -> str | None:
    return r.final(res.org_ref) if res is not None and res.org_ref else None


def _write(conn: Connection, r: Resolver, parties: dict[tuple[str, str], Resolution],
           types: dict[tuple[str, str], str], keep: dict[str, int] | None = None,
           scope: Callable[[str], bool] | None = None, top: int | None = None
           ) -> dict[str, int]:
    """Store the organisations, identifiers, names, resolutions and candidates; returns
    {org ref: id}. With ``keep`` ({ref: id} as stored), an organisation keeps its id and
    ``flow_party`` is left alone (an import's update rewrites only the rows it must);
    without, every table is emptied and ids follow the refs' order. With ``scope`` (and
    ``keep``): only the organisations whose ref it accepts, stored or resolved, and their
    rows are compared and written (``parties`` resolved a closed part of the set, see
    :mod:`fundtrack.identity.incremental`); every other row stays as stored, and ``keep``
    need hold only those organisations, with ``top`` the largest id stored."""
    if keep is None:
        dialect.empty(conn, "flow_party", "match_candidate", "party_resolution", "org_name",
                      "org_identifier", "canonical_org")
    refs = sorted(r.orgs) if scope is None else sorted(x for x in r.orgs if scope(x))
    if keep is None:
        ids = {ref: i + 1 for i, ref in enumerate(refs)}
    else:
        top = max(keep.values(), default=0) if top is None else top
        ids = {}
        for ref in refs:
            if ref in keep:
                ids[ref] = keep[ref]
            else:
                top += 1
                ids[ref] = top
    orgs, idents, names = [], [], []
    final = {ref: ids[r.final(ref)] for ref in refs}
    for ref in refs:
        o = r.orgs[ref]
        if o.merged_into and ref not in o.ids:  # its ref now denotes the one it joined
            o.ids[ref] = (scheme_of(ref), False, "decision", "merged by decision")
        orgs.append({"id": ids[ref], "ref": ref[:200], "name": o.name, "type": o.type,
                     "country": o.country, "origin": o.origin, "source": o.source,
                     "is_pooled_fund": o.pooled, "is_womens_rights_org": o.wro,
                     "merged_into_id": ids.get(o.merged_into or "")})
        # identifiers and names of a merged organisation belong to the one it joined
        for value, (scheme, req, origin, source) in o.ids.items():
            idents.append({"org_id": final[ref], "scheme": scheme, "value": value[:200],
                           "requires_name": req, "origin": origin, "source": source})
        for nm, (norm, lang, origin, source) in o.names.items():
            names.append({"org_id": final[ref], "name": nm, "normalised": norm, "lang": lang,
                          "origin": origin, "source": source})
    res = []
    for (ref, name), x in sorted(parties.items()):
        if not x.org_ref:
            continue
        rule, ev = x.rule, x.evidence
        if r.final(x.org_ref) != x.org_ref:
            rule, ev = "decision", f"{ev}; merged by decision into {r.final(x.org_ref)}"
        typ = (types.get((ref, name)) or "")[:10] or None
        res.append({"ref": ref, "name_key": name, "reported_type": typ,
                    "match_name": match_name(ref, name),
                    "org_id": final[x.org_ref], "rule": rule, "evidence": ev})
    cands = [{"party_ref": p, "party_name": n[:300], "org_id": final[o],
              "candidate_org_id": final[c], "rule": "name", "evidence": e}
             for p, n, o, c, e in r.candidates]
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (t.CanonicalOrg, orgs), (t.OrgIdentifier, idents), (t.OrgName, names),
        (t.PartyResolution, res), (t.MatchCandidate, cands)]
    if keep is not None:
        _sync(conn, tables, None if scope is None
              else sorted(oid for ref, oid in keep.items() if scope(ref)))
        return {ref: final[ref] for ref in refs}
    for table, data in tables:
        for i, row in enumerate(data):
            row.setdefault("id", i + 1)
        for i in range(0, len(data), 50_000):
            bulk_insert(conn, table.__table__, data[i:i + 50_000])
    return {ref: final[ref] for ref in refs}


def _sync(conn: Connection, tables: list[tuple[Any, list[dict[str, Any]]]],
          old_ids: list[int] | None = None) -> None:
    """Make the stored identity tables hold ``tables``' rows, writing only the difference
    (an import changes a few organisations of tens of thousands). Organisations are
    compared by their (kept) id and updated in place; the other tables by content: rows
    gone are deleted (before any insert: an identifier may move to another organisation),
    new rows inserted with fresh ids. With ``old_ids``, only the stored organisations of
    those ids and the rows pointing at them are compared (the rest is not in ``tables``)."""
    (org_model, orgs), *children = tables
    co = cast(Table, org_model.__table__)
    cols = [c.name for c in co.columns]

    def stored(table: Table, by: str, cs: list[Any]) -> list[Any]:
        if old_ids is None:
            return list(conn.execute(select(*cs)))
        return [x for i in range(0, len(old_ids), 1000) for x in conn.execute(
            select(*cs).where(table.c[by].in_(old_ids[i:i + 1000])))]

    old_orgs = {x.id: tuple(x) for x in stored(co, "id", [co.c[c] for c in cols])}
    new_orgs = {o["id"]: tuple(o.get(c) for c in cols) for o in orgs}
    plans = []
    for model, data in children:
        table = cast(Table, model.__table__)
        ccols = [c.name for c in table.columns if c.name != "id"]
        old: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for x in stored(table, "org_id", [table.c.id, *(table.c[c] for c in ccols)]):
            old[tuple(x)[1:]].append(x.id)
        gone: list[int] = []
        new_rows: list[dict[str, Any]] = []
        wanted: dict[tuple[Any, ...], int] = defaultdict(int)
        for d in data:
            wanted[tuple(d.get(c) for c in ccols)] += 1
        for content, n in wanted.items():
            have = old.get(content, [])
            gone.extend(have[n:])
            new_rows.extend(dict(zip(ccols, content, strict=True))
                            for _ in range(max(0, n - len(have))))
        for content, have in old.items():
            if content not in wanted:
                gone.extend(have)
        plans.append((table, gone, new_rows))
    for table, gone, _ in plans:
        for i in range(0, len(gone), 1000):
            conn.execute(delete(table).where(table.c.id.in_(gone[i:i + 1000])))
    dead = sorted(set(old_orgs) - set(new_orgs))
    for i in range(0, len(dead), 1000):
        conn.execute(delete(co).where(co.c.id.in_(dead[i:i + 1000])))
    for oid, content in new_orgs.items():
        if oid in old_orgs and old_orgs[oid] != content:
            conn.execute(update(co).where(co.c.id == oid)
                         .values(dict(zip(cols, content, strict=True))))
    bulk_insert(conn, co, [dict(zip(cols, content, strict=True))
                           for oid, content in new_orgs.items() if oid not in old_orgs])
    for table, _, new_rows in plans:
        top = conn.execute(select(func.max(table.c.id))).scalar() or 0
        for i, nr in enumerate(new_rows):
            nr["id"] = top + i + 1
        bulk_insert(conn, table, new_rows)


# -- lookups ---------------------------------------------------------------------------
def canonical_ref(conn: Connection, ref: str) -> str:
    """The canonical ref of the organisation known by ``ref`` (any identifier, its
    canonical ref, or a party ref matched to it); ``ref`` itself when unknown."""
    co, oi, pr = (t.CanonicalOrg.__table__, t.OrgIdentifier.__table__,
                  t.PartyResolution.__table__)
    for q in (select(co.c.id).where(co.c.ref == ref),
              select(oi.c.org_id).where(oi.c.value == ref),
              select(pr.c.org_id).where(pr.c.ref == ref).order_by(pr.c.name_key == "")):
        oid = conn.execute(q.limit(1)).scalar()
        if oid is not None:
            return _final_ref(conn, oid)
    return ref


def _final_ref(conn: Connection, oid: int) -> str:
    co = t.CanonicalOrg.__table__
    for _ in range(50):
        row = conn.execute(select(co.c.ref, co.c.merged_into_id).where(co.c.id == oid)).one()
        if row.merged_into_id is None:
            return str(row.ref)
        oid = row.merged_into_id
    return str(row.ref)


def refs_of(conn: Connection, ref: str) -> tuple[str, ...]:
    """Every reported ref that denotes the organisation of ``ref``: canonical ref first,
    then its identifiers and the refs of parties resolved to it, sorted."""
    co, oi, pr = (t.CanonicalOrg.__table__, t.OrgIdentifier.__table__,
                  t.PartyResolution.__table__)
    canon = canonical_ref(conn, ref)
    oid = conn.execute(select(co.c.id).where(co.c.ref == canon)).scalar()
    if oid is None:
        return (ref,)
    merged = set(conn.execute(select(co.c.id).where(co.c.merged_into_id == oid)).scalars())
    ids = {oid} | merged
    out = set(conn.execute(select(oi.c.value).where(oi.c.org_id.in_(ids))).scalars())
    out |= set(conn.execute(select(pr.c.ref).where(pr.c.org_id.in_(ids), pr.c.ref != ""))
               .scalars())
    out.discard(canon)
    return (canon, *sorted(out))


def identifiers(conn: Connection, ref: str) -> dict[str, Any]:
    """The identifiers (scheme, value, origin, source) and names of an organisation."""
    co, oi, on = t.CanonicalOrg.__table__, t.OrgIdentifier.__table__, t.OrgName.__table__
    canon = canonical_ref(conn, ref)
    org = conn.execute(select(co).where(co.c.ref == canon)).mappings().first()
    if org is None:
        return {"ref": ref, "identifiers": [], "names": []}
    return {"ref": canon, "name": org["name"], "identifiers": [
        dict(x) for x in conn.execute(select(oi.c.scheme, oi.c.value, oi.c.origin, oi.c.source,
                                             oi.c.requires_name)
                                      .where(oi.c.org_id == org["id"]).order_by(oi.c.value))
        .mappings()],
        "names": [dict(x) for x in conn.execute(
            select(on.c.name, on.c.lang, on.c.origin).where(on.c.org_id == org["id"])
            .order_by(on.c.name)).mappings()]}
