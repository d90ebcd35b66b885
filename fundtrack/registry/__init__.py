"""Registry edits: organisations and pooled funds, entered by people.

The money trail reads the registry (attribution stops at pooled funds and starts at some
organisation types), so an edit is a ledger writer like an import: it takes the ledger
lock, writes, then rebuilds the derived steps that read the registry
(:func:`fundtrack.derived.steps.after_registry_edit`), all in the caller's transaction. The
figures the API shows after an edit are those a ``fundtrack recompute`` would give.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from fundtrack.derived import steps as derived
from fundtrack.derived.trail import funds
from fundtrack.ledger import tables as m
from fundtrack.ledger.writer import lock_ledger

ORGANISATION_FIELDS = ("name", "type", "country", "default_currency", "is_womens_rights_org",
                       "is_pooled_fund")


def upsert_organization(conn: Connection, ref: str, **values: Any) -> tuple[Any, bool]:
    """Create or edit the organisation ``ref`` (fields not given are kept); returns its
    row and whether it was created."""
    t = m.Organisation.__table__
    lock_ledger(conn)
    pk = conn.execute(select(t.c.id).where(t.c.ref == ref)).scalar()
    created = pk is None
    if created:
        values.setdefault("is_womens_rights_org", False)
        values.setdefault("is_pooled_fund", False)
        pk = conn.execute(insert(t).values(ref=ref, **values).returning(t.c.id)).scalar_one()
    elif values:
        conn.execute(update(t).where(t.c.id == pk).values(**values))
    if created or values:
        derived.after_registry_edit(conn)
    return conn.execute(select(t).where(t.c.id == pk)).mappings().one(), created


def upsert_fund(conn: Connection, ref: str, name: str, **fields: Any) -> Any:
    """Add or edit the pooled fund ``ref`` (its organisation is marked as a pooled fund);
    returns its row."""
    lock_ledger(conn)
    funds.upsert_fund(conn, ref, name, **fields)
    derived.after_registry_edit(conn)
    t = funds.Fund.__table__
    return conn.execute(select(t).where(t.c.organisation_ref == ref)).mappings().one()
