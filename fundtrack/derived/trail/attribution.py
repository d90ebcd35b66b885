"""Attribution in the database: load movements, apply the rule, store the parts.

The rule itself is :mod:`fundtrack.derived.trail.engine`; this module only feeds it and writes
what it returns into ``attribution``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, tuple_

from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.db.bulk import Rebuilds, bulk_insert, copy_lines, copy_text, drop_for_load, units_text
from fundtrack.derived.trail import reach
from fundtrack.derived.trail.config import TrailConfig
from fundtrack.derived.trail.engine import (
    CIRCULAR,
    ORIGINATOR,
    UNTRACED,
    ZERO,
    Account,
    Move,
    Origin,
    Part,
    Parts,
    attribute,
    attribute_stream,
    attribute_units,
    given_parts,
)
from fundtrack.derived.trail.funds import pooled_refs
from fundtrack.derived.trail.tables import Attribution, Movement
from fundtrack.ledger import tables as m
from fundtrack.money import to_text

log = logging.getLogger(__name__)

NO_INCOMING = "no incoming funds reported"
BROKEN = "broken link"
UNNAMED = "provider not named"
NULL = "\\N"
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


def moves_from_rows(rows: list[dict[str, Any]], cfg: TrailConfig,
                    shared: dict[Any, Any] | None = None, keys: bool = True) -> list[Move]:
    """The movement rows a full rebuild has just written, as the engine's records (the
    same values :func:`load_moves` would read back). ``shared``: one per rebuild, so equal
    accounts, codes and currencies are one object each (8M movements at 10M flows), and a
    USD amount written as the amount is the amount's object. ``keys=False``: each record's
    key is left 0, for :func:`rank_keys` to fill once every row is written (a sort key is
    ~170 bytes, a third of a record)."""
    by_year = cfg.period != "all"
    one = (shared if shared is not None else {}).setdefault
    out = []
    for r in rows:
        src, dst = (r["src_org"], r["src_activity"]), (r["dst_org"], r["dst_activity"])
        country, sector, cur = r["recipient_country"], r["sector_code"], r["currency"]
        if country is not None:
            country = one(country, country)
        if sector is not None:
            sector = one(sector, sector)
        if cur is not None:
            cur = one(cur, cur)
        amount, usd = r["amount"], r["amount_usd"]
        if usd is not None and usd is not amount and usd == amount and str(usd) == str(amount):
            usd = amount
        value_date, earmarking = r["value_date"], r["earmarking"]
        earmark = ((country, sector)
                   if earmarking in EARMARKED and (country or sector) else None)
        out.append(Move(id=r["id"], key=r["sort_key"] if keys else 0, src=one(src, src), dst=one(dst, dst),
                        terminal=r["kind"] == "expenditure", amount=amount, currency=cur,
                        amount_usd=usd,
                        period=one(value_date.year, value_date.year)
                        if (by_year and value_date) else 0,
                        earmark=None if earmark is None else one(earmark, earmark),
                        country=country, sector=sector))
    return out


def rank_keys(conn: Connection, moves: list[Move]) -> None:
    """Give each of ``moves`` (every movement of the table) its sort key's rank among all
    the table's keys in place of the key: equal keys get equal ranks, so the rule, which
    uses a key only to order the movements of one account (:mod:`engine`), orders them as
    it would by the keys themselves, ties included. The table sorts the keys (by code
    point, as Python compares strings), so they are never all held: 170 bytes a movement
    at 1M (a third of the records' memory) become a small int and, while this runs, an
    index by id."""
    by_id = {mv.id: mv for mv in moves}
    t = Movement.__table__
    key = t.c.sort_key.collate("C") if conn.dialect.name == "postgresql" else t.c.sort_key
    rank, last, n = -1, None, 0
    rows = conn.execute(select(t.c.id, t.c.sort_key).order_by(key)
                        .execution_options(yield_per=50_000))
    for mid, k in rows:
        if k != last:
            rank, last = rank + 1, k
        by_id[mid].key = rank  # a KeyError: a movement of the table not among ``moves``
        n += 1
    if n != len(by_id) or n != len(moves):
        raise ValueError(f"rank_keys: {len(moves):,} records for {n:,} movements")


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
                                       .where(current(a),
                                              a.c.iati_identifier.in_(chunk))):
            reported[ident].add(org)
        funded |= {tuple(r) for r in conn.execute(
            select(a.c.reporting_org_ref, a.c.iati_identifier).distinct()
            .select_from(p.join(a, a.c.id == p.c.activity_id))
            .where(current(a), a.c.iati_identifier.in_(chunk),
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


PART_COLS = "movement_id, originator_ref, untraced_reason, amount, currency, amount_usd, depth"


def _part_lines(parts: Iterable[tuple[Move, Parts]], rollup: reach.Rollup | None = None
                ) -> Iterator[str]:
    """COPY text of every part, formatted straight from integer units (millions of rows:
    no ``Decimal`` or dict per row). ``str(Decimal(u).scaleb(e))`` is the text the
    ``Decimal`` rule wrote, so PostgreSQL stores the same value and scale. ``rollup``:
    summed on the way, while the server parses what was sent."""
    labels: dict[Origin, str] = {}
    zero = "0"
    for mv, ps in parts:
        mid = mv.id
        if rollup is not None:
            rollup.add(mv, ps)
        head = f"{mid}\t"
        cur_txt = f"\t{copy_text(mv.currency)}\t"
        if ps.given is not None:
            for p in ps.given:
                usd = NULL if p.amount_usd is None else str(p.amount_usd)
                yield f"{head}{_label(labels, p.origin)}\t{p.amount}{cur_txt}{usd}\t{p.depth}\n"
            continue
        ae, ue = ps.a_exp, ps.u_exp
        for o, a, u, d in ps.items:
            amt = units_text(a, ae) if a else zero
            if u is None:
                usd = NULL
            elif u == a and ue == ae:
                usd = amt
            else:
                usd = units_text(u, ue) if u else zero
            yield f"{head}{_label(labels, o)}\t{amt}{cur_txt}{usd}\t{d}\n"


def _label(labels: dict[Origin, str], origin: Origin) -> str:
    lab = labels.get(origin)
    if lab is None:
        kind, name = origin
        lab = labels[origin] = (f"{copy_text(name[:200])}\t\\N" if kind == ORIGINATOR
                                else f"\\N\t{copy_text(name[:40])}")
    return lab


def write(conn: Connection, parts: dict[int, list[Part]] | dict[int, Parts], moves: list[Move],
          rollup: reach.Rollup | None = None) -> int:
    """Store parts (``Decimal`` lists, or the engine's integer :class:`Parts`); ``rollup``:
    add them to it too."""
    by_id = {mv.id: mv for mv in moves}
    return write_stream(conn, ((by_id[mid], ps if isinstance(ps, Parts) else given_parts(ps))
                               for mid, ps in parts.items()), rollup)


#: Parts a streamed write holds before it inserts them (SQLite; PostgreSQL sends each as
#: it comes): ~500 bytes each as Decimals and row dicts, so 100,000 held 50 MB.
PARTS_CHUNK = 20_000


def write_stream(conn: Connection, parts: Iterable[tuple[Move, Parts]],
                 rollup: reach.Rollup | None = None) -> int:
    """Store each movement's parts as they come (the engine may still be computing the
    next ones: nothing is held but a chunk); ``rollup``: add them to it too."""
    if conn.dialect.name == "postgresql":
        return copy_lines(conn, "attribution", PART_COLS, _part_lines(parts, rollup))
    n = 0
    chunk: dict[int, list[Part]] = {}
    currency: dict[int, str | None] = {}
    held = 0
    for mv, ps in parts:
        if rollup is not None:
            rollup.add(mv, ps)
        chunk[mv.id] = ps.decimals()
        currency[mv.id] = mv.currency
        held += len(chunk[mv.id])
        if held >= PARTS_CHUNK:
            n += _insert(conn, chunk, currency)
            chunk, currency, held = {}, {}, 0
    return n + _insert(conn, chunk, currency)


def _insert(conn: Connection, parts: dict[int, list[Part]], currency: dict[int, str | None]
            ) -> int:
    rows = _rows(parts, currency)
    for i in range(0, len(rows), 100_000):
        bulk_insert(conn, Attribution.__table__, rows[i:i + 100_000])
    return len(rows)


#: A full rebuild of more movements than this streams the parts out as the rule gives them
#: (:func:`~fundtrack.derived.trail.engine.attribute_stream`) instead of holding them all
#: (6 parts a movement at 1M flows, ~150 bytes each): the movement table's index builds
#: then run before the rule instead of beside it (the connection writes the parts).
#: Held, the parts are most of a rebuild's memory: 250,000 generated flows peaked at 467 MB
#: held, 328 MB streamed (SQLite; the same rebuild time); below this they are few enough
#: to hold (100 real files, 53,000 flows: ~150 MB) and the index builds overlap the rule.
STREAM_PARTS_OVER = 100_000


def rebuild(conn: Connection, cfg: TrailConfig | None = None, moves: list[Move] | None = None,
            movement_builds: Rebuilds | None = None) -> dict[str, Any]:
    """Attribute every movement from scratch, and rebuild the rollup from the parts.

    ``moves``: all of them, if already at hand (over :data:`STREAM_PARTS_OVER` of them,
    the list is emptied once their parts are written). ``movement_builds``: the movement table's
    index builds still to run; the server runs them while the rule runs here in Python,
    as it builds the attribution's indexes while the rollup is summed."""
    cfg = cfg or TrailConfig()
    t0 = time.perf_counter()
    clear(conn)
    if moves is None:
        moves = load_moves(conn, cfg)
    # a reason is asked for only where money originates: accounts no movement enters
    entered = {mv.dst for mv in moves if not mv.terminal and mv.dst != mv.src}
    reasons = source_reasons(conn, {mv.src for mv in moves} - entered)
    # PostgreSQL: millions of rows; the movements were emptied and reloaded before
    builds = drop_for_load(conn, Attribution.__table__, emptied=(Movement.__table__,))
    reach_builds = reach.prepare(conn)
    t1 = time.perf_counter()
    n_moves = len(moves)
    streamed = n_moves > STREAM_PARTS_OVER
    rollup = reach.Rollup(_expected(moves) if streamed else None)
    if streamed:
        if movement_builds is not None:
            movement_builds.run()
        t_rule = t2 = time.perf_counter()
        # the rule runs while the parts are sent, the rollup summed on the way
        n = write_stream(conn, attribute_stream(moves, reasons), rollup)
        moves.clear()  # the caller's list too: nothing reads the movements after this
        t3 = time.perf_counter()
        builds.run()
        t_sums = t4 = time.perf_counter()
        n_reach = reach.load_rollup(conn, rollup)  # each row sent as it is made
        del rollup
        t5 = time.perf_counter()
        reach_builds.run()
        tell_planner(conn, n_moves, n)
        return {"attribution_parts": n, "reach_rows": n_reach, "streamed": 1,
                "seconds_attribution_prepare": round(t1 - t0, 3),
                "seconds_then_movement_indexes": round(t2 - t1, 3),
                "seconds_rule_and_attribution_copy": round(t3 - t2, 3),
                "seconds_then_attribution_indexes": round(t4 - t3, 3),
                "seconds_reach_rows_and_copy": round(t5 - t_sums, 3),
                "seconds_reach_indexes": round(time.perf_counter() - t5, 3)}
    else:
        if movement_builds is not None:
            movement_builds.start()
        try:
            parts = attribute_units(moves, reasons)
            t_rule = time.perf_counter()
        finally:
            if movement_builds is not None:
                movement_builds.join()
        t2 = time.perf_counter()
        n = write(conn, parts, moves, rollup)  # the rollup is summed while the server parses
        del parts
    t3 = time.perf_counter()
    builds.start()
    try:
        rows = reach.text_rows(conn, rollup.rows())
        del rollup
        t_sums = time.perf_counter()
    finally:
        builds.join()
    t4 = time.perf_counter()
    n_reach = reach.load(conn, rows)
    del rows
    t5 = time.perf_counter()
    reach_builds.run()
    tell_planner(conn, n_moves, n)
    return {"attribution_parts": n, "reach_rows": n_reach,
            "seconds_attribution_prepare": round(t1 - t0, 3),
            "seconds_rule": round(t_rule - t1, 3),
            "seconds_then_movement_indexes": round(t2 - t_rule, 3),
            "seconds_attribution_copy_and_reach_sums": round(t3 - t2, 3),
            "seconds_reach_rows": round(t_sums - t3, 3),
            "seconds_then_attribution_indexes": round(t4 - t_sums, 3),
            "seconds_reach_copy": round(t5 - t4, 3),
            "seconds_reach_indexes": round(time.perf_counter() - t5, 3)}


def _expected(moves: list[Move]) -> dict[Account, int]:
    """Per account, the movements whose parts add to its reach sums (its outflows, and
    the transfers into it): the rollup makes an account's rows when the last is in."""
    out: dict[Account, int] = {}
    get = out.get
    for mv in moves:
        out[mv.src] = get(mv.src, 0) + 1
        if not mv.terminal:
            out[mv.dst] = get(mv.dst, 0) + 1
    return out


def tell_planner(conn: Connection, movements: int, parts: int) -> None:
    """PostgreSQL: record how many parts a movement has (``n_distinct`` of
    ``attribution.movement_id``, as a fraction of the rows) and ANALYZE the table.

    ANALYZE's sample guesses that fraction far too low on a large table (416k distinct
    movements for 8M at 10M flows: 147 parts a movement instead of 7.6), and the planner
    then answered the import's reach update, for a few hundred accounts, by scanning all
    61M parts (9.5 s instead of 0.04 s)."""
    if conn.dialect.name != "postgresql" or not parts:
        return
    fraction = min(1.0, movements / parts)
    conn.exec_driver_sql("ALTER TABLE attribution ALTER COLUMN movement_id "
                         f"SET (n_distinct = {-fraction:.6f})")
    conn.exec_driver_sql("ANALYZE attribution")


def clear(conn: Connection) -> None:
    """Empty ``attribution`` (TRUNCATE on PostgreSQL: no per-row cascade work)."""
    dialect.empty(conn, "attribution")


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
    """Movements leaving ``accounts``, and the transfers entering them (by index).
    Expenditure entering an account (a receiver named on spending) is no input to it."""
    accs = sorted(accounts)
    out: dict[int, Move] = {}
    for side in ("src", "dst"):
        for mv in _side_moves(conn, cfg, accs, side):
            out[mv.id] = mv
    return list(out.values())


def _side_moves(conn: Connection, cfg: TrailConfig, accounts: list[Account], side: str
                ) -> list[Move]:
    """Movements leaving (``side`` "src") or transfers entering ("dst") ``accounts``."""
    t = Movement.__table__
    out: list[Move] = []
    for i in range(0, len(accounts), 500):
        where = _touching(accounts[i:i + 500], side)
        if side == "dst":
            where = where & (t.c.kind != "expenditure")
        out.extend(load_moves(conn, cfg, where))
    return out


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
    """Re-attribute the accounts whose inputs changed: ``touched``, then, round by round,
    each account an outflow of theirs enters whose parts came out different from the
    stored ones. Where an outflow's parts are unchanged the walk stops: the account it
    enters has the same inputs, so (the rule being a function of an account's inflows'
    parts and its own movements) the same outputs as before, as a full rebuild gives.

    Bound: the database work follows the movements into and out of the accounts
    re-attributed (the changed set *C*), each read once; the rule runs once per round
    over *C*, and there are as many rounds as the longest chain of accounts whose parts
    change (*R*), so the rule's work is at most *R* x (movements around *C*). A long
    chain whose every link changes (a new contribution at the top of a pooled fund,
    passed on pro rata down to spending) re-attributes all of it: an exact result needs
    that much, no less; a chain whose change is absorbed (new spending that leaves the
    donors' shares as they were) stops where it is absorbed. Cycles (parts marked
    "circular flow" met on the way) take the whole downstream closure, as before
    (:func:`update_closure`): where a cycle is broken depends on all of it.
    """
    cfg = cfg or TrailConfig()
    seen = _Loaded()
    done = _update_changed(conn, touched, cfg, seen)
    if done is not None:
        return done
    log.info("attribution: a cycle or a movement without parts near the batch: the closure")
    return update_closure(conn, touched, cfg, seen)


class _Loaded:
    """What the walk read (nothing written yet): the closure that may follow reuses it."""

    def __init__(self) -> None:
        self.outs: dict[int, Move] = {}  # movements leaving accounts of ``out_loaded``
        self.out_loaded: set[Account] = set()
        self.ins: dict[int, Move] = {}  # transfers entering accounts of ``in_loaded``
        self.in_loaded: set[Account] = set()
        self.stored: dict[int, list[Part]] = {}  # parts of movements in ``asked``
        self.asked: set[int] = set()

    def side(self, conn: Connection, cfg: TrailConfig, accounts: set[Account], side: str
             ) -> list[Move]:
        """Movements leaving (``src``) or transfers entering (``dst``) ``accounts``."""
        have, loaded = (self.outs, self.out_loaded) if side == "src" else (self.ins,
                                                                           self.in_loaded)
        for mv in _side_moves(conn, cfg, sorted(accounts - loaded), side):
            have[mv.id] = mv
        loaded |= accounts
        if side == "src":
            return [mv for mv in have.values() if mv.src in accounts]
        return [mv for mv in have.values() if mv.dst in accounts]

    def parts(self, conn: Connection, ids: list[int]) -> dict[int, list[Part]]:
        """Stored parts of these movements (those with any)."""
        want = [mid for mid in ids if mid not in self.asked]
        self.stored.update(load_parts(conn, want))
        self.asked.update(want)
        return {mid: self.stored[mid] for mid in ids if mid in self.stored}


def _circular(parts: Iterable[Part]) -> bool:
    return any(p.origin == CIRCULAR_ORIGIN for p in parts)


CIRCULAR_ORIGIN = (UNTRACED, CIRCULAR)


def _same(computed: Parts | None, stored: list[Part] | None) -> bool:
    """Whether the parts the rule gave are the parts stored (as stored: the same text)."""
    def norm(ps: list[Part]) -> list[tuple]:
        return sorted((p.origin[0], p.origin[1][:200 if p.origin[0] == ORIGINATOR else 40],
                       to_text(p.amount), None if p.amount_usd is None else to_text(p.amount_usd),
                       p.depth) for p in ps)
    return norm(computed.decimals() if computed is not None else []) == norm(stored or [])


def _update_changed(conn: Connection, touched: set[Account], cfg: TrailConfig, seen: _Loaded
                    ) -> dict[str, int] | None:
    """:func:`update`, walking only where parts change; None: take the closure instead."""
    compute: set[Account] = set(touched)
    reasons: dict[Account, str] = {}
    reasoned: set[Account] = set()
    while True:
        outs = {mv.id: mv for mv in seen.side(conn, cfg, compute, "src")}
        senders = {mv.src for mv in outs.values()}
        ins = {mv.id: mv for mv in seen.side(conn, cfg, senders, "dst")}
        fixed_ids = [mid for mid, mv in ins.items() if mv.src not in compute]
        boundary = [mv for mv in outs.values()
                    if not mv.terminal and mv.dst not in compute and mv.dst != mv.src]
        stored = seen.parts(conn, fixed_ids + [mv.id for mv in boundary])
        if any(mid not in stored and ins[mid].amount != 0 for mid in fixed_ids):
            return None  # a movement from outside without parts: the closure path rebuilds
        fixed = {mid: stored[mid] for mid in fixed_ids if mid in stored}
        if any(_circular(ps) for ps in fixed.values()):
            return None
        if senders - reasoned:
            reasons.update(source_reasons(conn, senders - reasoned))
            reasoned |= senders
        moves = list({**ins, **outs}.values())
        parts = attribute_units(moves, reasons, fixed=fixed, compute=compute)
        for ps in parts.values():
            if _circular(ps.given if ps.given is not None
                         else (Part(o, ZERO, None, d) for o, _, _, d in ps.items)):
                return None
        grow = set()
        for mv in boundary:
            if _circular(stored.get(mv.id, ())):
                return None
            if not _same(parts.get(mv.id), stored.get(mv.id)):
                grow.add(mv.dst)
        log.debug("attribution round: %d accounts, %d moves, %d grow", len(compute),
                  len(moves), len(grow))
        if not grow:
            break
        compute |= grow
    t = cast(Table, Attribution.__table__)
    ids = sorted(outs)
    for i in range(0, len(ids), 1000):
        conn.execute(delete(t).where(t.c.movement_id.in_(ids[i:i + 1000])))
    n = write(conn, {mid: ps for mid, ps in parts.items() if mid in outs}, moves)
    return {"attribution_parts": n, "reattributed_accounts": len(compute),
            **reach.update(conn, compute)}


def update_closure(conn: Connection, touched: set[Account], cfg: TrailConfig | None = None,
                   seen: _Loaded | None = None) -> dict[str, int]:
    """Re-attribute everything downstream of ``touched`` accounts (the whole closure).
    ``seen``: what a walk read already (not read again)."""
    cfg = cfg or TrailConfig()
    seen = seen or _Loaded()
    closure = downstream_sql(conn, touched)
    # the movements leaving the closure's accounts, and the transfers entering those of
    # them that pass money on (an account without outflows needs no inputs)
    outs = seen.side(conn, cfg, closure, "src")
    moves = list({mv.id: mv for mv in outs + seen.side(
        conn, cfg, {mv.src for mv in outs}, "dst")}.values())
    t = Attribution.__table__
    recompute = [mv for mv in moves if mv.src in closure]
    outside_in = [mv.id for mv in moves if mv.dst in closure and mv.src not in closure
                  and not mv.terminal]
    fixed = seen.parts(conn, outside_in)
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
