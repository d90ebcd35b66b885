"""Which organisation an account belongs to, and what people call it.

The money trail names an organisation by its ref as reported (``NL-KVK-41198890``), or,
when a report gives only a name, by ``name:`` and the name in lower case
(:func:`fundtrack.derived.trail.movements.org_key`). Reports spell one organisation's ref in
trivially different ways (``NL-KvK-41198890`` beside ``NL-KVK-41198890``), and a Sankey
that drew each spelling as its own node would split one ministry in two.

:func:`identity` is the one place that says which refs are the same organisation on the
pages (the Sankey's nodes, the trace page's names). It folds case and spaces; the money
trail and ``groupBy`` already name organisations canonically (issue 15,
:mod:`fundtrack.identity`), and :func:`names` falls back on the canonical organisation's
name.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, select

from fundtrack.ledger import tables as m

NAME_PREFIX = "name:"


def identity(ref: str | None) -> str:
    """The organisation a ref names, as one key: refs that differ only in case or spaces
    are one organisation. ``''`` for no organisation."""
    return " ".join((ref or "").split()).upper()


def variants(conn: Connection, ref: str) -> list[str]:
    """Every spelling of ``ref``'s organisation that the money trail uses (sorted).

    Read from the movements' source organisations (the trail's own names); ``ref``
    itself is always included so a donor with no movements still finds its flows.
    """
    from fundtrack.derived.trail.tables import Movement

    col = Movement.__table__.c.src_org
    found = {ref}
    found.update(conn.execute(select(col).distinct().where(
        func.upper(func.trim(col)) == identity(ref))).scalars())
    return sorted(found)


def names(conn: Connection, refs: Iterable[str | None]) -> dict[str, str]:
    """A readable name for each ref: the organisation registry's name (for any spelling
    of the ref, :func:`identity`), else, for ``name:`` keys, the name as a report spelled
    it, else the ref itself."""
    wanted: set[str] = {r for r in refs if r}
    o = m.Organisation.__table__
    plain = sorted(r for r in wanted if not r.startswith(NAME_PREFIX))
    keys = sorted({identity(r) for r in plain})
    registry: dict[str, tuple[bool, str]] = {}  # identity -> (exact spelling?, name)
    for i in range(0, len(keys), 500):
        for ref, name in conn.execute(select(o.c.ref, o.c.name).where(
                func.upper(o.c.ref).in_(keys[i:i + 500]))):
            if name and name.strip():
                k = identity(ref)
                exact = ref in wanted
                if k not in registry or (exact and not registry[k][0]):
                    registry[k] = (exact, name.strip())
    out = {r: registry[identity(r)][1] for r in plain if identity(r) in registry}
    # the canonical organisation's name (issue 15): for refs the registry does not name and
    # for ``name:`` keys of bodies only ever named (the overview's PROVIDER groups)
    out.update(_canonical_names(conn, sorted(r for r in wanted if r not in out)))
    out.update(_reported_names(conn, sorted(r for r in wanted
                                            if r.startswith(NAME_PREFIX) and r not in out)))
    for r in wanted:
        out.setdefault(r, r[len(NAME_PREFIX):] if r.startswith(NAME_PREFIX) else r)
    return out


def _canonical_names(conn: Connection, refs: list[str]) -> dict[str, str]:
    """Names of canonical organisations (issue 15) the registry does not name (a CRS
    channel code's body, for one)."""
    from fundtrack.identity.tables import CanonicalOrg

    co = CanonicalOrg.__table__
    out: dict[str, str] = {}
    for i in range(0, len(refs), 500):
        out.update({ref: name.strip() for ref, name in conn.execute(
            select(co.c.ref, co.c.name).where(co.c.ref.in_(refs[i:i + 500])))
            if name and name.strip()})
    return out


def _reported_names(conn: Connection, keys: list[str]) -> dict[str, str]:
    """For ``name:`` keys, the name as a report spelled it: read from the flows of the
    movements that carry the key (by the movement indexes, not a scan of the flows)."""
    from fundtrack.derived.trail.movements import org_key
    from fundtrack.derived.trail.tables import Movement

    t, f = Movement.__table__, m.Flow.__table__
    out: dict[str, str] = {}
    for i in range(0, len(keys), 200):
        chunk = keys[i:i + 200]
        for side in (t.c.dst_org, t.c.src_org):
            q = (select(f.c.provider_name, f.c.receiver_name).distinct()
                 .select_from(t.join(f, f.c.id == t.c.flow_id)).where(side.in_(chunk))
                 .order_by(f.c.provider_name, f.c.receiver_name))
            for pair in conn.execute(q):
                for name in pair:
                    key = org_key(None, name)
                    if name and key in chunk and key not in out:
                        out[key] = " ".join(name.split())
    return out


def label(ref: str | None, known: dict[str, str]) -> str:
    """How a page shows an organisation: its name and, when it has one, its ref."""
    if not ref:
        return "(not named)"
    name = known.get(ref, ref)
    if ref.startswith(NAME_PREFIX):
        return f"{name} (no identifier reported)"
    return name if name == ref else f"{name} ({ref})"
