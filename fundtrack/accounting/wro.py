"""Women's rights organisations: the flag, from the registry, CRS channel codes, organisation
types and the ``wro.toml`` list. One function decides; everything else asks it."""

from __future__ import annotations

from sqlalchemy import Connection, or_, select

from fundtrack.accounting.config import load
from fundtrack.accounting.items import Item
from fundtrack.ledger import tables as m


def wro_refs(conn: Connection) -> set[str]:
    """Refs of organisations flagged in the registry, listed in wro.toml, of a listed type,
    or named XM-DAC-<listed channel code>."""
    cfg = load("wro")
    o = m.Organisation.__table__
    conds = [o.c.is_womens_rights_org.is_(True)]
    if cfg.get("organisation_types"):
        conds.append(o.c.type.in_(cfg["organisation_types"]))
    refs = {r.ref for r in conn.execute(select(o.c.ref).where(or_(*conds)))}
    refs |= set(cfg.get("refs", []))
    refs |= {f"XM-DAC-{c}" for c in cfg.get("crs_channel_codes", [])}
    return refs


def reaches_wro(it: Item, refs: set[str]) -> str | None:
    """Why the receiver of ``it`` is a WRO (the evidence), or None."""
    if it.receiver_ref and it.receiver_ref in refs:
        return f"receiver {it.receiver_ref}"
    code = str(it.extra.get("channel_code") or "")
    if code and code in load("wro").get("crs_channel_codes", []):
        return f"CRS channel code {code}"
    return None
