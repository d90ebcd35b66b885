"""Women's rights organisations in report cards: the canonical organisation's flag.

One place decides: ``canonical_org.is_womens_rights_org``, set by the identity rebuild from
the shipped list (``fundtrack/data/identity/wro.toml``, every entry with its source), the
organisation registry and people's ``flag_wro`` decisions (:mod:`fundtrack.identity.wro`).
So flagging a name-only receiver (``name:SIHA ...``) changes every donor's WRO share, and
undoing the decision restores it.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from fundtrack.accounting.items import Item
from fundtrack.identity import tables as t


class WroRefs(set[str]):
    """The refs that denote a flagged organisation (canonical refs, identifiers, reported
    refs resolved to one), plus ``flows``: {flow id: canonical ref} of current flows whose
    receiver resolves to one (name-only receivers included)."""

    flows: dict[int, str]

    def __init__(self, refs: set[str], flows: dict[int, str]) -> None:
        super().__init__(refs)
        self.flows = flows


def wro_refs(conn: Connection) -> WroRefs:
    """Every ref and flow that reaches a flagged women's rights organisation."""
    from fundtrack.identity.wro import listed

    co, oi = t.CanonicalOrg.__table__, t.OrgIdentifier.__table__
    pr, fp = t.PartyResolution.__table__, t.FlowParty.__table__
    flagged = dict(conn.execute(select(co.c.id, co.c.ref).where(
        co.c.is_womens_rights_org.is_(True), co.c.merged_into_id.is_(None))).all())
    refs = set(flagged.values())
    ids = list(flagged)
    if ids:
        refs |= set(conn.execute(select(oi.c.value).where(oi.c.org_id.in_(ids))).scalars())
        refs |= set(conn.execute(select(pr.c.ref).where(pr.c.org_id.in_(ids), pr.c.ref != ""))
                    .scalars())
    # a listed code no flow's party carries (a CRS channel code on a flow only) has no
    # canonical organisation yet: the list still counts it
    for e in listed():
        subject = e["subject"]
        if subject.startswith("name:"):
            continue
        known = set(conn.execute(select(co.c.id).where(co.c.ref == subject)).scalars()) | set(
            conn.execute(select(oi.c.org_id).where(oi.c.value == subject)).scalars())
        if not known:
            refs.add(subject)
    flows: dict[int, str] = {}
    if ids:
        for fid, oid in conn.execute(select(fp.c.flow_id, fp.c.receiver_org_id)
                                     .where(fp.c.receiver_org_id.in_(ids))):
            flows[fid] = flagged[oid]
    return WroRefs(refs, flows)


def channel_is_wro(code: str | None, refs: set[str]) -> bool:
    """A flow's CRS channel code denotes a flagged organisation."""
    code = str(code or "")
    return bool(code) and (code in refs or f"XM-DAC-{code}" in refs)


def reaches_wro(it: Item, refs: set[str]) -> str | None:
    """Why the receiver of ``it`` is a WRO (the evidence), or None."""
    if it.receiver_ref and it.receiver_ref in refs:
        return f"receiver {it.receiver_ref}"
    flows = getattr(refs, "flows", {})
    if it.flow_id in flows:
        return f"receiver {flows[it.flow_id]}"
    code = str(it.extra.get("channel_code") or "")
    if channel_is_wro(code, refs):
        return f"CRS channel code {code}"
    return None
