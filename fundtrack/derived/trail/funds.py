"""The pooled-fund registry: the funds the sources name are there from the start.

References: CERF publishes to IATI as ``XM-OCHA-CERF``, which is what reports use. The
other funds publish through their administrators, so reports name them in many ways;
they get a stable registry reference (``FT-FUND-...``) and the names and codes seen in
real reports as aliases. An admin edits a fund or adds one with the ``upsertFund``
mutation or ``fundtrack funds add REF NAME`` (:mod:`fundtrack.cli.wps`), and marks any
organisation as a pooled fund with ``upsertOrganization``
(``isPooledFund``); both go through :mod:`fundtrack.registry`, which takes the ledger lock
and rebuilds the money trail (attribution reads pooled-fund status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from fundtrack.derived.trail.tables import Fund
from fundtrack.ledger import tables as m

MPTFO_REF = "FT-ORG-MPTFO"
MPTFO_NAME = "UN Multi-Partner Trust Fund Office (MPTF Office)"


@dataclass(frozen=True)
class FundSeed:
    ref: str
    name: str
    acronym: str
    agent_ref: str | None = None
    agent_name: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    note: str = ""


SEED_FUNDS: tuple[FundSeed, ...] = (
    FundSeed("FT-FUND-PBF", "UN Peacebuilding Fund", "PBF", MPTFO_REF, MPTFO_NAME,
             ("Peacebuilding Fund", "UN Peacebuilding Fund", "UNITED NATIONS PEACEBUILDING FUND",
              "MPTFO-Peacebuilding Fund"),
             "Secretary-General's fund; MPTF Office is administrative agent."),
    FundSeed("FT-FUND-WPHF", "Women's Peace and Humanitarian Fund", "WPHF", MPTFO_REF,
             MPTFO_NAME,
             ("Women's Peace and Humanitarian Fund", "Women's Peace & Humanitarian Fund",
              "MPTFO-Women's Peace and Humanitarian Fund"),
             "Successor of the Global Acceleration Instrument; MPTF Office is administrative agent."),
    FundSeed("XM-OCHA-CERF", "Central Emergency Response Fund", "CERF", None, None,
             ("OCHA Central Emergency Response Fund (CERF)", "Central Emergency Response Fund"),
             "Managed by OCHA for the Emergency Relief Coordinator; publishes to IATI itself."),
    FundSeed("FT-FUND-UNDEF", "UN Democracy Fund", "UNDEF", None, None,
             ("United Nations Democracy Fund", "UN Democracy Fund"),
             "A UN trust fund managed by the UN Secretariat."),
    FundSeed("FT-FUND-UNTF-EVAW", "UN Trust Fund to End Violence against Women", "UN Trust Fund",
             None, None,
             ("UN Trust Fund to End Violence against Women",
              "United Nations Trust Fund to End Violence against Women"),
             "Managed by UN Women on behalf of the UN system."),
)


def seed(conn: Connection) -> int:
    """Put the seed funds (and their organisations) in place; existing rows are left as edited."""
    added = 0
    for f in SEED_FUNDS:
        if conn.execute(select(Fund.id).where(Fund.organisation_ref == f.ref)).first() is None:
            conn.execute(insert(Fund).values(
                organisation_ref=f.ref, name=f.name, acronym=f.acronym,
                administrative_agent_ref=f.agent_ref, administrative_agent_name=f.agent_name,
                aliases=list(f.aliases), note=f.note))
            added += 1
        _ensure_org(conn, f.ref, f.name, pooled=True)
        if f.agent_ref:
            _ensure_org(conn, f.agent_ref, f.agent_name, pooled=False)
    return added


def _ensure_org(conn: Connection, ref: str, name: str | None, *, pooled: bool) -> None:
    org = m.Organisation.__table__
    row = conn.execute(select(org.c.id, org.c.is_pooled_fund).where(org.c.ref == ref)).first()
    if row is None:
        conn.execute(insert(org).values(ref=ref, name=name, is_womens_rights_org=False,
                                        is_pooled_fund=pooled))
    elif pooled and not row.is_pooled_fund:
        conn.execute(update(org).where(org.c.id == row.id).values(is_pooled_fund=True))


def upsert_fund(conn: Connection, ref: str, name: str, **fields: Any) -> None:
    """Add or edit a fund; its organisation is marked as a pooled fund."""
    existing = conn.execute(select(Fund.id).where(Fund.organisation_ref == ref)).scalar()
    values = {"name": name, **fields}
    if existing is None:
        conn.execute(insert(Fund).values(organisation_ref=ref, **values))
    else:
        conn.execute(update(Fund).where(Fund.id == existing).values(**values))
    _ensure_org(conn, ref, name, pooled=True)


def mark_pooled_fund(conn: Connection, ref: str, pooled: bool = True) -> bool:
    """Mark an organisation as a pooled fund (or not); False if no such organisation."""
    org = m.Organisation.__table__
    return conn.execute(update(org).where(org.c.ref == ref)
                        .values(is_pooled_fund=pooled)).rowcount > 0


def pooled_refs(conn: Connection) -> set[str]:
    """Organisation refs that are pooled funds, including the registry's aliases that are refs."""
    org = m.Organisation.__table__
    refs = set(conn.execute(select(org.c.ref).where(org.c.is_pooled_fund.is_(True))).scalars())
    refs.update(conn.execute(select(Fund.organisation_ref)).scalars())
    # the money trail names parties by canonical organisation (issue 15)
    from fundtrack.identity.tables import CanonicalOrg

    co = CanonicalOrg.__table__
    refs.update(conn.execute(select(co.c.ref).where(co.c.is_pooled_fund.is_(True))).scalars())
    return refs


def fund_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(Fund)).scalar_one()
