"""Attribution in the database: load movements, apply the rule, store the parts.

The rule itself is :mod:`fundtrack.trail.engine`; this module only feeds it and writes
what it returns into ``attribution``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, select, text, tuple_

from fundtrack import models as m
from fundtrack.ledger import bulk_insert
from fundtrack.trail import reach
from fundtrack.trail.bulkload import indexes_after
from fundtrack.trail.config import TrailConfig
from fundtrack.trail.engine import ORIGINATOR, Account, Move, Part, attribute
from fundtrack.trail.funds import pooled_refs
from fundtrack.trail_models import Attribution, Movement

NO_INCOMING = "no incoming funds reported"
BROKEN = "broken link"
UNNAMED = "provider not named"
#: Organisation types whose money may start with them when they report no incoming funds:
#: governments (10, 11, 15), multilaterals (40), foundations (60), private sector (70).
ORIGINATOR_TYPES = {"10", "11", "15", "40", "60", "70"}
EARMARKED = (2, 3, 4)


def load_moves(conn: Connection, cfg: TrailConfig, where: Any = None) -> list[Move]:
    """Movements (all, or those matching ``where``) as the engine's plain records."""
    t = Movement.__table__
    q = select(t.c.id, t.c.sort_key, t.c.src_org, t.c.src_activity, t.c.dst_org,
               t.c.dst_activity, t.c.kind, t.c.amount, t.c.currency, t.c.amount_usd,
               t.c.value_date, t.c.earmarking, t.c.recipient_country, t.c.sector_code)
    if where is not None:
        q = q.where(where)
    by_year = cfg.period != "all"
    return [_move(r.id, r.sort_key, r.src_org, r.src_activity, r.dst_org, r.dst_activity,
                  r.kind, r.amount, r.currency, r.amount_usd, r.value_date, r.earmarking,
                  r.recipient_country, r.sector_code, by_year)
            for r in conn.execute(q.execution_options(yield_per=50_000))]


def moves_from_rows(rows: list[dict[str, Any]], cfg: TrailConfig) -> list[Move]:
    """The movement rows a full rebuild has just written, as the engine's records (the
    same values :func:`load_moves` would read back)."""
    by_year = cfg.period != "all"
    return [_move(r["id"], r["sort_key"], r["src_org"], r["src_activity"], r["dst_org"],
                  r["dst_activity"], r["kind"], r["amount"], r["currency"], r["amount_usd"],
                  r["value_date"], r["earmarking"], r["recipient_country"], r["sector_code"],
                  by_year) for r in rows]


def _move(mid: int, key: str, src_org: str, src_act: str, dst_org: str, dst_act: str,
          kind: str, amount: Any, currency: str | None, usd: Any, value_date: Any,
          earmarking: int | None, country: str | None, sector: str | None,
          by_year: bool) -> Move:
    earmark = ((country, sector)
               if earmarking in EARMARKED and (country or sector) else None)
    return Move(id=mid, key=key, src=(src_org, src_act), dst=(dst_org, dst_act),
                terminal=kind == "expenditure", amount=amount, currency=currency,
                amount_usd=usd, period=value_date.year if (by_year and value_date) else 0,
                earmark=earmark, country=country, sector=sector)


def source_reasons(conn: Connection, accounts: Iterable[Account]) -> dict[Account, str]:
    """Why money leaving an account with no inflows cannot be called its organisation's own."""
    a, p = m.Activity.__table__, m.ParticipatingOrg.__table__
    accounts = set(accounts)
    idents = sorted({act for _, act in accounts if act})
    reported: dict[str, set[str]] = defaultdict(set)
    funded: set[tuple[str, str]] = set()
    for i in range(0, len(idents), 1000):  # only the activities these accounts name
        chunk = idents[i:i + 1000]
        for ident, org in conn.execute(select(a.c.iati_identifier, a.c.reporting_org_ref)
                                       .where(a.c.superseded_by.is_(None),
                                              a.c.iati_identifier.in_(chunk))):
            reported[ident].add(org)
        funded |= {tuple(r) for r in conn.execute(
            select(a.c.reporting_org_ref, a.c.iati_identifier).distinct()
            .select_from(p.join(a, a.c.id == p.c.activity_id))
            .where(a.c.superseded_by.is_(None), a.c.iati_identifier.in_(chunk),
                   p.c.role == "1", p.c.ref.is_not(None), p.c.ref != a.c.reporting_org_ref,
                   a.c.reporting_org_type.is_(None)
                   | a.c.reporting_org_type.not_in(ORIGINATOR_TYPES))).all()}
    pooled = pooled_refs(conn)
    out: dict[Account, str] = {}
    for acc in accounts:
        org, act = acc
        if not org:
            out[acc] = UNNAMED
        elif org in pooled:
            out[acc] = NO_INCOMING
        elif act and act not in reported:
            out[acc] = BROKEN
        elif act and (org, act) in funded:
            out[acc] = NO_INCOMING
    return out


def _rows(parts: dict[int, list[Part]], currency: dict[int, str | None]) -> list[dict[str, Any]]:
    rows = []
    for mid, ps in parts.items():
        cur = currency[mid]
        for p in ps:
            kind, name = p.origin
            rows.append({"movement_id": mid,
                         "originator_ref": name[:200] if kind == ORIGINATOR else None,
                         "untraced_reason": None if kind == ORIGINATOR else name[:40],
                         "amount": p.amount, "currency": cur, "amount_usd": p.amount_usd,
                         "depth": p.depth})
    return rows


def _copy_text(v: str | None) -> str:
    if v is None:
        return "\\N"
    if any(c in v for c in "\t\n\r\\"):
        v = v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return v


def _copy_parts(conn: Connection, parts: dict[int, list[Part]],
                currency: dict[int, str | None]) -> int:
    """PostgreSQL: stream the parts as COPY text, no per-row objects (millions of rows)."""
    cols = "movement_id, originator_ref, untraced_reason, amount, currency, amount_usd, depth"
    labels: dict = {}
    n = 0
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(f"COPY attribution ({cols}) FROM STDIN") as copy:  # type: ignore[union-attr]
        buf: list[str] = []
        for mid, ps in parts.items():
            cur_txt = _copy_text(currency[mid])
            for p in ps:
                lab = labels.get(p.origin)
                if lab is None:
                    kind, name = p.origin
                    lab = labels[p.origin] = (
                        f"{_copy_text(name[:200])}\t\\N" if kind == ORIGINATOR
                        else f"\\N\t{_copy_text(name[:40])}")
                usd = "\\N" if p.amount_usd is None else str(p.amount_usd)
                buf.append(f"{mid}\t{lab}\t{p.amount}\t{cur_txt}\t{usd}\t{p.depth}\n")
            if len(buf) >= 20_000:
                copy.write("".join(buf))
                n += len(buf)
                buf = []
        copy.write("".join(buf))
        n += len(buf)
    return n


def write(conn: Connection, parts: dict[int, list[Part]], moves: list[Move]) -> int:
    currency = {mv.id: mv.currency for mv in moves}
    if conn.dialect.name == "postgresql":
        return _copy_parts(conn, parts, currency)
    rows = _rows(parts, currency)
    for i in range(0, len(rows), 100_000):
        bulk_insert(conn, Attribution.__table__, rows[i:i + 100_000])
    return len(rows)


def rebuild(conn: Connection, cfg: TrailConfig | None = None,
            moves: list[Move] | None = None) -> dict[str, int]:
    """Attribute every movement from scratch (``moves``: all of them, if already at hand)."""
    cfg = cfg or TrailConfig()
    clear(conn)
    if moves is None:
        moves = load_moves(conn, cfg)
    reasons = source_reasons(conn, {mv.src for mv in moves})
    parts = attribute(moves, reasons)
    with indexes_after(conn, Attribution.__table__):  # PostgreSQL: millions of rows
        n = write(conn, parts, moves)
    return {"attribution_parts": n, **reach.rebuild(conn, moves, parts)}


def clear(conn: Connection) -> None:
    """Empty ``attribution`` (TRUNCATE on PostgreSQL: no per-row cascade work)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("TRUNCATE attribution"))
    else:
        conn.execute(delete(Attribution))


def downstream(moves: list[Move], start: set[Account]) -> set[Account]:
    """Accounts reachable downstream from ``start`` (including it), over loaded moves."""
    succ: dict[Account, set[Account]] = defaultdict(set)
    for mv in moves:
        if not mv.terminal:
            succ[mv.src].add(mv.dst)
    seen = set(start)
    stack = list(start)
    while stack:
        a = stack.pop()
        for b in succ.get(a, ()):
            if b not in seen:
                seen.add(b)
                stack.append(b)
    return seen


def _touching(accounts: list[Account], side: str) -> Any:
    t = Movement.__table__
    org, act = (t.c.src_org, t.c.src_activity) if side == "src" else (t.c.dst_org, t.c.dst_activity)
    return tuple_(org, act).in_(accounts)


def downstream_sql(conn: Connection, start: set[Account]) -> set[Account]:
    """Accounts reachable downstream from ``start``, walked level by level on the
    (src_org, src_activity) index: the ledger is never loaded whole."""
    t = Movement.__table__
    seen = set(start)
    frontier = sorted(start)
    while frontier:
        nxt: set[Account] = set()
        for i in range(0, len(frontier), 500):
            for o, a in conn.execute(select(t.c.dst_org, t.c.dst_activity).distinct().where(
                    t.c.kind != "expenditure", _touching(frontier[i:i + 500], "src"))):
                if (o, a) not in seen:
                    nxt.add((o, a))
        seen |= nxt
        frontier = sorted(nxt)
    return seen


def moves_around(conn: Connection, cfg: TrailConfig, accounts: set[Account]) -> list[Move]:
    """Movements leaving or entering ``accounts`` (by index)."""
    accs = sorted(accounts)
    out: dict[int, Move] = {}
    for i in range(0, len(accs), 500):
        chunk = accs[i:i + 500]
        for side in ("src", "dst"):
            for mv in load_moves(conn, cfg, _touching(chunk, side)):
                out[mv.id] = mv
    return list(out.values())


def load_parts(conn: Connection, movement_ids: Iterable[int]) -> dict[int, list[Part]]:
    t = Attribution.__table__
    out: dict[int, list[Part]] = defaultdict(list)
    ids = sorted(set(movement_ids))
    for i in range(0, len(ids), 1000):
        for r in conn.execute(select(t).where(t.c.movement_id.in_(ids[i:i + 1000]))):
            origin = ((ORIGINATOR, r.originator_ref) if r.originator_ref is not None
                      else ("u", r.untraced_reason))
            out[r.movement_id].append(Part(origin, r.amount, r.amount_usd, r.depth))
    return out


def update(conn: Connection, touched: set[Account], cfg: TrailConfig | None = None
           ) -> dict[str, int]:
    """Re-attribute only what lies downstream of ``touched`` accounts."""
    cfg = cfg or TrailConfig()
    closure = downstream_sql(conn, touched)
    moves = moves_around(conn, cfg, closure)
    t = Attribution.__table__
    recompute = [mv for mv in moves if mv.src in closure]
    outside_in = [mv.id for mv in moves if mv.dst in closure and mv.src not in closure
                  and not mv.terminal]
    fixed = load_parts(conn, outside_in)
    # movements whose rows are missing (new movements from outside) are attributed anew
    amounts = {mv.id: mv.amount for mv in moves}
    missing = [mid for mid in outside_in if mid not in fixed and amounts[mid] != 0]
    if missing:
        return rebuild(conn, cfg)
    ids = [mv.id for mv in recompute]
    for i in range(0, len(ids), 1000):
        conn.execute(delete(t).where(t.c.movement_id.in_(ids[i:i + 1000])))
    reasons = source_reasons(conn, {mv.src for mv in recompute})
    relevant = recompute + [mv for mv in moves if mv.id in fixed]
    parts = attribute(relevant, reasons, fixed=fixed, compute=closure)
    n = write(conn, parts, moves)
    return {"attribution_parts": n, "reattributed_accounts": len(closure),
            **reach.update(conn, closure)}
