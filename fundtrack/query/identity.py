"""Reading organisation identity (issue 15): which canonical organisation a ref denotes,
its identifiers and names, how each reported party was matched to it, what waits for
review, and the decisions people took. The tables are :mod:`fundtrack.identity.tables`;
the resolver that fills them is :mod:`fundtrack.identity.resolve`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, or_, select
from sqlalchemy.orm import aliased

from fundtrack.identity.tables import (
    CanonicalOrg,
    MatchCandidate,
    OrgDecision,
    OrgIdentifier,
    OrgName,
    PartyResolution,
)


def canonical(conn: Connection, ref: str) -> Any:
    """The canonical organisation ``ref`` denotes (merges followed), or None when the
    identity tables do not know it."""
    from fundtrack.identity.resolve import canonical_ref

    co = CanonicalOrg.__table__
    return conn.execute(select(co).where(co.c.ref == canonical_ref(conn, ref))
                        ).mappings().first()


def merged_into(conn: Connection, ref: str) -> Any:
    """The organisation a decision merged ``ref``'s own organisation into (the end of the
    chain), or None."""
    co = CanonicalOrg.__table__
    own = conn.execute(select(co).where(co.c.ref == ref)).mappings().first()
    if own is None or own["merged_into_id"] is None:
        return None
    row = own
    for _ in range(50):  # a chain of merges, never a cycle (the resolver refuses those)
        if row["merged_into_id"] is None:
            break
        row = conn.execute(select(co).where(co.c.id == row["merged_into_id"])).mappings().one()
    return row


def identifiers(conn: Connection, org_id: int) -> list[Any]:
    oi = OrgIdentifier.__table__
    return list(conn.execute(select(oi).where(oi.c.org_id == org_id)
                             .order_by(oi.c.scheme, oi.c.value)).mappings())


def names(conn: Connection, org_id: int) -> list[Any]:
    """Its names, each (name, language, origin, source) once."""
    on = OrgName.__table__
    cols = (on.c.name, on.c.lang, on.c.origin, on.c.source)
    return list(conn.execute(select(*cols).distinct().where(on.c.org_id == org_id)
                             .order_by(*cols)).mappings())


def _member_ids(org_id: int) -> Any:
    """The organisation and those merged into it (their parties are its parties)."""
    co = CanonicalOrg.__table__
    return select(co.c.id).where(or_(co.c.id == org_id, co.c.merged_into_id == org_id))


def matches_query(org_id: int) -> Select[Any]:
    """How each reported party (ref, name) was matched to the organisation: rule, evidence."""
    pr = PartyResolution.__table__
    return select(pr).where(pr.c.org_id.in_(_member_ids(org_id)))


def candidates_query() -> Select[Any]:
    """The review list: parties the rules would not match alone, with each candidate
    organisation's ref and name beside the organisation the party was left as."""
    mc = MatchCandidate.__table__
    left, cand = aliased(CanonicalOrg), aliased(CanonicalOrg)
    return (select(mc, left.ref.label("org_ref"), left.name.label("org_name"),
                   cand.ref.label("candidate_ref"), cand.name.label("candidate_name"))
            .join(left, left.id == mc.c.org_id).join(cand, cand.id == mc.c.candidate_org_id)
            # a decision that merged the party into the candidate settled it
            .where(mc.c.org_id != mc.c.candidate_org_id))


def decisions_query(keys: list[str] | None = None, include_undone: bool = False,
                    ) -> Select[Any]:
    """Decisions (in force, or all), those naming one of ``keys`` as subject or target."""
    d = OrgDecision.__table__
    q = select(d)
    if keys is not None:
        q = q.where(or_(d.c.subject.in_(keys), d.c.target.in_(keys)))
    if not include_undone:
        q = q.where(d.c.reverted_at.is_(None))
    return q


def keys_of(conn: Connection, org: Any) -> list[str]:
    """Everything a decision may name the canonical organisation ``org`` by: its ref,
    identifiers, the refs of its parties and name:<name> of its name-only parties."""
    out = {org["ref"]}
    out.update(i["value"] for i in identifiers(conn, org["id"]))
    for r in conn.execute(matches_query(org["id"])).mappings():
        if r["ref"]:
            out.add(r["ref"])
        elif r["name_key"]:
            out.add(f"name:{r['name_key']}")
    return sorted(out)
