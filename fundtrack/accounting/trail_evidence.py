"""What the follow-the-money tables (links, movements, attribution) can tell accounting.

Those tables are built by :mod:`fundtrack.derived.trail`. When they are missing or empty, every
function here says so (``None`` + a reason) instead of guessing a number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, inspect, select

from fundtrack.accounting.items import Item, load_items, year_between
from fundtrack.db.metadata import metadata

NO_ATTRIBUTION = "not available: attribution not computed"
NO_LINKS = "not available: links not computed"
#: Links that say where a flow went: the recipient activity, or the pooled fund.
LINK_KINDS = ("receiver-activity", "fund-contribution", "fund-allocation")


def _has_rows(conn: Connection, table: str) -> bool:
    if not inspect(conn).has_table(table):
        return False

    t = metadata.tables.get(table)
    if t is None:
        return False
    return bool(conn.execute(select(func.count()).select_from(t)).scalar())


def attribution_available(conn: Connection) -> bool:
    return _has_rows(conn, "attribution") and _has_rows(conn, "movement")


def links_available(conn: Connection) -> bool:
    return _has_rows(conn, "trail_link")


def donor_parts(conn: Connection, donor: str, *, src_org: str | None = None,
                year: int | None = None, min_depth: int = 1) -> list[tuple[Decimal | None, Item]]:
    """(USD attributed to ``donor``, the movement's canonical flow as an Item) for every
    movement carrying the donor's money, optionally leaving ``src_org``, in ``year``."""
    from fundtrack.derived.trail.tables import Attribution as A
    from fundtrack.derived.trail.tables import Movement as M

    q = (select(A.amount_usd, M.flow_id).join(M, M.id == A.movement_id)
         .where(A.originator_ref == donor, A.depth >= min_depth))
    if src_org is not None:
        q = q.where(M.src_org == src_org)
    if year is not None:
        q = q.where(year_between(M.value_date, year))
    rows = list(conn.execute(q))
    if not rows:
        return []
    from fundtrack.ledger import tables as m

    items = {it.flow_id: it for it in load_items(
        conn, m.Flow.__table__.c.id.in_({r.flow_id for r in rows}))}
    return [(r.amount_usd, items[r.flow_id]) for r in rows if r.flow_id in items]


def resolved_link_flows(conn: Connection, flow_ids: set[int]) -> set[int]:
    """Of ``flow_ids``, those with at least one resolved link to another activity at the
    other end (a link to the flow's own activity resolves by construction: not counted)."""
    from fundtrack.derived.trail.tables import TrailLink as L

    out: set[int] = set()
    ids = sorted(flow_ids)
    for i in range(0, len(ids), 500):
        out |= {r[0] for r in conn.execute(
            select(L.flow_id).where(L.flow_id.in_(ids[i:i + 500]), L.resolved.is_(True),
                                    L.to_self.is_(False), L.kind.in_(LINK_KINDS)))}
    return out


def self_link_flows(conn: Connection, flow_ids: set[int]) -> set[int]:
    """Of ``flow_ids``, those with a link to their own activity (counted apart)."""
    from fundtrack.derived.trail.tables import TrailLink as L

    out: set[int] = set()
    ids = sorted(flow_ids)
    for i in range(0, len(ids), 500):
        out |= {r[0] for r in conn.execute(
            select(L.flow_id).where(L.flow_id.in_(ids[i:i + 500]), L.to_self.is_(True)))}
    return out


def as_text(v: Any) -> str | None:
    return None if v is None else str(v)
