"""The per-donor rollup (``trail_reach``) behind bounded donor traces.

A donor in a dense graph reaches tens of thousands of accounts; summing its attribution
parts on every trace costs seconds. So the sums are kept per (donor, account) and per
donor, written from ``attribution`` by the full rebuild and, for the accounts an import
touched, by the incremental update. Sums are grouped in SQL (exact: NUMERIC on
PostgreSQL, ``dsum`` on SQLite); the one subtraction (held = in - out) is done on
``Decimal`` in Python, never in SQL, where SQLite would go through REAL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, literal, null, select, tuple_
from sqlalchemy import union_all as sa_union_all

from fundtrack.db import dialect
from fundtrack.db.bulk import Rebuilds, bulk_insert, copy_lines, copy_text, drop_for_load, units_text
from fundtrack.derived.trail.engine import ORIGINATOR, Account, Move, Parts, units_exp
from fundtrack.derived.trail.tables import Attribution, Movement, Reach
from fundtrack.money import Money, money_number, money_sum

SUM_KINDS = ("spent-sum", "held-sum", "account-sum", "movement-sum")
ZERO = Decimal(0)


def _scope(side: str, accounts: list[Account] | None) -> list[Any]:
    if accounts is None:
        return []
    t = Movement.__table__
    cols = (t.c.src_org, t.c.src_activity) if side == "src" else (t.c.dst_org, t.c.dst_activity)
    return [tuple_(*cols).in_(accounts)]


def _detail_rows(conn: Connection, accounts: list[Account] | None) -> Iterator[dict[str, Any]]:
    """Rollup rows for ``accounts`` (None: every account), from the stored parts (streamed)."""
    t, at = Movement.__table__, Attribution.__table__
    j = at.join(t, t.c.id == at.c.movement_id)
    known = at.c.originator_ref.is_not(None)
    spent = (select(at.c.originator_ref, t.c.src_org, t.c.src_activity, t.c.currency,
                    money_sum(at.c.amount), money_sum(at.c.amount_usd), func.count(at.c.amount_usd),
                    func.count(), func.max(at.c.depth))
             .select_from(j).where(known, t.c.kind == "expenditure", *_scope("src", accounts))
             .group_by(at.c.originator_ref, t.c.src_org, t.c.src_activity, t.c.currency))
    for o, org, act, cur, amt, usd, n_usd, n, depth in conn.execute(
            spent.execution_options(yield_per=50_000)):
        usd = usd if n_usd == n else None
        yield _row(o, "spent", org, act, cur, amt, usd, usd or ZERO, n, depth)
    none = null().cast(Money())
    inn = (select(at.c.originator_ref.label("o"), t.c.dst_org.label("org"),
                  t.c.dst_activity.label("act"), at.c.amount_usd.label("i"), none.label("x"),
                  literal(0).label("n"), at.c.depth.label("d"))
           .select_from(j).where(known, t.c.kind != "expenditure", *_scope("dst", accounts)))
    out = (select(at.c.originator_ref, t.c.src_org, t.c.src_activity, none, at.c.amount_usd,
                  literal(1), at.c.depth)
           .select_from(j).where(known, *_scope("src", accounts)))
    u = sa_union_all(inn, out).subquery()
    acc = (select(u.c.o, u.c.org, u.c.act, money_sum(u.c.i), money_sum(u.c.x), func.sum(u.c.n),
                  func.max(u.c.d)).group_by(u.c.o, u.c.org, u.c.act))
    for o, org, act, i, x, n, depth in conn.execute(acc.execution_options(yield_per=50_000)):
        yield _account_row(o, org, act, i or ZERO, x or ZERO, int(n or 0), depth)


def _account_row(o: str, org: str, act: str, i: Decimal, x: Decimal, n: int, depth: int
                 ) -> dict[str, Any]:
    """An account's row: held = in - out (never below 0; nothing at the donor's own)."""
    held = i - x if org != o and i > x else ZERO
    return _row(o, "account", org, act, "USD", held, i, max(i, x), n, depth)


def _addx(acc: list, i: int, units: int, exp: int) -> None:
    """``acc[i:i+2]`` ([units, exponent]) += units * 10**exp, the scale a ``Decimal`` sum
    would have (the smaller exponent)."""
    e = acc[i + 1]
    if exp < e:
        acc[i] = acc[i] * 10 ** (e - exp) + units
        acc[i + 1] = exp
    else:
        acc[i] += units * 10 ** (exp - e)


def _items(ps: Parts) -> list[tuple[str, int, int, int | None, int, int]]:
    """(donor, amount units, exponent, USD units or None, exponent, depth) of the donors'
    parts taken as given (``Decimal``)."""
    out = []
    for p in ps.given or ():
        if p.origin[0] == ORIGINATOR:
            a, ae = units_exp(p.amount)
            u, ue = (None, 0) if p.amount_usd is None else units_exp(p.amount_usd)
            out.append((p.origin[1], a, ae, u, ue, p.depth))
    return out


class Rollup:
    """The rollup of a full rebuild, summed from the parts still in memory (integer
    units): no pass over millions of stored rows. :meth:`add` takes each movement's parts
    (the attribution's COPY calls it on its way), :meth:`rows` gives every row, details
    and totals: the same rows as :func:`_detail_rows` and :func:`_sums` give from
    ``attribution`` (checked equal by the tests; incremental updates use the SQL). Rows
    are tuples in :data:`COLS` order, amounts as (units, exponent). Sums keep the scale
    ``Decimal`` and NUMERIC sums have: the finest of their terms, never coarser than units.
    """

    def __init__(self) -> None:
        # per account, per donor: [in, in exp, out, out exp, movements out, depth]
        self.acct: dict[Account, dict[str, list]] = {}
        # per (account, currency), per donor: [amount, exp, usd, exp, parts with usd, parts, depth]
        self.spent: dict[tuple[str, str, str | None], dict[str, list]] = {}

    def add(self, mv: Move, ps: Parts) -> None:
        if ps.given is None:  # computed parts: one exponent per column; a 0 is Decimal(0)
            items = ps.items
            pae, pue = ps.a_exp, ps.u_exp
        else:
            items = _items(ps)
            pae = None
        if not items:
            return
        src = mv.src
        acct, spent = self.acct, self.spent
        outs = acct.get(src)
        if outs is None:
            outs = acct[src] = {}
        if mv.terminal:
            k = (src[0], src[1], mv.currency)
            there = spent.get(k)
            if there is None:
                there = spent[k] = {}
        else:
            there = acct.get(mv.dst)
            if there is None:
                there = acct[mv.dst] = {}
        terminal = mv.terminal
        for it in items:
            if pae is None:
                o, a, ae, u, ue, d = it
            else:
                (kind, o), a, u, d = it
                if kind != ORIGINATOR:
                    continue
                ae = pae if a else 0
                ue = pue if u else 0
            if len(o) > 200:
                o = o[:200]
            c = outs.get(o)
            if c is None:
                c = outs[o] = [0, 0, 0, 0, 0, 0]
            if u is not None:
                if ue == c[3]:
                    c[2] += u
                else:
                    _addx(c, 2, u, ue)
            c[4] += 1
            if d > c[5]:
                c[5] = d
            c = there.get(o)
            if terminal:
                if c is None:
                    c = there[o] = [0, 0, 0, 0, 0, 0, 0]
                if ae == c[1]:
                    c[0] += a
                else:
                    _addx(c, 0, a, ae)
                if u is not None:
                    if ue == c[3]:
                        c[2] += u
                    else:
                        _addx(c, 2, u, ue)
                    c[4] += 1
                c[5] += 1
                if d > c[6]:
                    c[6] = d
            else:
                if c is None:
                    c = there[o] = [0, 0, 0, 0, 0, 0]
                if u is not None:
                    if ue == c[1]:
                        c[0] += u
                    else:
                        _addx(c, 0, u, ue)
                if d > c[5]:
                    c[5] = d

    def rows(self) -> list[tuple]:
        return _rows(self.acct, self.spent)


def rows_from_parts(moves: Iterable[Move], parts: dict[int, Parts]) -> list[tuple]:
    """Every rollup row from the parts a full rebuild computed (see :class:`Rollup`)."""
    by_id = {mv.id: mv for mv in moves}
    rollup = Rollup()
    for mid, ps in parts.items():
        rollup.add(by_id[mid], ps)
    return rollup.rows()


def _rows(acct: dict[Account, dict[str, list]], spent: dict[tuple, dict[str, list]]) -> list[tuple]:
    zero = ZERO_UNITS
    rows: list[tuple] = []
    # per donor: spent per currency [amount, exp, usd, exp, all usd, rows, depth], held
    # [amount, exp, rows, depth], accounts [rows, depth], movements [n, depth]
    spent_sum: dict[tuple[str, str | None], list] = {}
    held_sum: dict[str, list] = {}
    acct_sum: dict[str, list] = {}
    for (org, act, cur), donors in spent.items():
        for o, (amt, ae, usd, ue, n_usd, n, depth) in donors.items():
            u = (usd, ue) if n_usd == n else None
            rows.append((o, "spent", org, act, cur, (amt, ae), u, u if usd and u else zero, n, depth))
            t = spent_sum.get((o, cur))
            if t is None:
                spent_sum[(o, cur)] = [amt, ae, usd, ue, u is not None, 1, depth]
                continue
            _addx(t, 0, amt, ae)
            _addx(t, 2, usd, ue)
            t[4] = t[4] and u is not None
            t[5] += 1
            t[6] = max(t[6], depth)
    for (org, act), donors in acct.items():
        for o, (i, ie, x, xe, n, depth) in donors.items():
            e = min(ie, xe)
            iu, xu = i * 10 ** (ie - e), x * 10 ** (xe - e)
            held = (iu - xu, e) if org != o and iu > xu else zero
            rows.append((o, "account", org, act, "USD", held, (i, ie), (x, xe) if xu > iu else (i, ie),
                         n, depth))
            if held[0] > 0:
                t = held_sum.get(o)
                if t is None:
                    held_sum[o] = [held[0], held[1], 1, depth]
                else:
                    _addx(t, 0, *held)
                    t[2] += 1
                    t[3] = max(t[3], depth)
            t = acct_sum.get(o)
            if t is None:
                acct_sum[o] = [1, depth, n]
            else:
                t[0] += 1
                t[1] = max(t[1], depth)
                t[2] += n
    for (o, cur), (amt, ae, usd, ue, all_usd, n, depth) in spent_sum.items():
        rows.append((o, "spent-sum", "", "", cur, (amt, ae), (usd, ue) if all_usd else None, zero,
                     n, depth))
    for o, (amt, ae, n, depth) in held_sum.items():
        rows.append((o, "held-sum", "", "", "USD", (amt, ae), (amt, ae), zero, n, depth))
    for o, (n, depth, moves_n) in acct_sum.items():
        rows.append((o, "account-sum", "", "", None, zero, None, zero, n, depth))
        rows.append((o, "movement-sum", "", "", None, zero, None, zero, moves_n, depth))
    return rows


def _dec(acc: tuple[int, int]) -> Decimal:
    return Decimal(acc[0]).scaleb(acc[1])


NULL = "\\N"
ZERO_UNITS = (0, 0)  # Decimal(0): the rollup's zero, as the SQL path writes it
COLS = ("originator_ref", "kind", "org", "activity", "currency", "amount", "amount_usd", "rank",
        "n", "depth")


def _copy_lines(rows: list[tuple]) -> Iterator[str]:
    """COPY text of rollup rows; the same amount is formatted once per row, the same
    account once for its run of rows (they come account by account)."""
    names: dict[str, str] = {}
    last: tuple | None = None
    where = ""
    for o, kind, org, act, cur, amt, usd, rank, n, depth in rows:
        if (org, act, cur) != last:
            last = (org, act, cur)
            where = (f"{copy_text(org)}\t{copy_text(act)}\t"
                     f"{NULL if cur is None else copy_text(cur)}")
        name = names.get(o)
        if name is None:
            name = names[o] = copy_text(o)
        a = "0" if amt is ZERO_UNITS else units_text(*amt)
        if usd is None:
            u = NULL
        elif usd == amt:
            u = a
        else:
            u = units_text(*usd)
        if rank is ZERO_UNITS:
            r = "0"
        elif rank is usd or rank == usd:
            r = u
        else:
            r = units_text(*rank)
        yield f"{name}\t{kind}\t{where}\t{a}\t{u}\t{r}\t{n}\t{depth}\n"


def _as_dict(r: tuple) -> dict[str, Any]:
    o, kind, org, act, cur, amt, usd, rank, n, depth = r
    return _row(o, kind, org, act, cur, _dec(amt), None if usd is None else _dec(usd), _dec(rank),
                n, depth)


def _row(o: str, kind: str, org: str, act: str, cur: str | None, amount: Decimal,
         usd: Decimal | None, rank: Decimal, n: int, depth: int | None) -> dict[str, Any]:
    return {"originator_ref": o, "kind": kind, "org": org, "activity": act, "currency": cur,
            "amount": amount, "amount_usd": usd, "rank": rank, "n": n, "depth": depth or 0}


def _write(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Insert rows in batches; the source may be a cursor still open on the same connection,
    so each batch is read whole before it is written."""
    n = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 100_000:
            n += _flush(conn, batch)
            batch = []
    return n + _flush(conn, batch)


def _flush(conn: Connection, batch: list[dict[str, Any]]) -> int:
    bulk_insert(conn, Reach.__table__, batch)
    return len(batch)


def _sums(conn: Connection, originators: list[str] | None) -> None:
    """Write the per-donor totals from the detail rows (all donors, or these)."""
    r = Reach.__table__
    cols = ["originator_ref", "kind", "org", "activity", "currency", "amount", "amount_usd",
            "rank", "n", "depth"]
    zero = literal(ZERO, Money())
    chunks: Iterable[list[str] | None] = (
        [None] if originators is None
        else (originators[i:i + 500] for i in range(0, len(originators), 500)))
    for chunk in chunks:
        scope = [] if chunk is None else [r.c.originator_ref.in_(chunk)]
        all_usd = case((func.count(r.c.amount_usd) == func.count(), money_sum(r.c.amount_usd)),
                       else_=null())
        qs = [
            select(r.c.originator_ref, literal("spent-sum"), literal(""), literal(""),
                   r.c.currency, money_sum(r.c.amount), all_usd, zero, func.count(),
                   func.max(r.c.depth))
            .where(r.c.kind == "spent", *scope).group_by(r.c.originator_ref, r.c.currency),
            select(r.c.originator_ref, literal("held-sum"), literal(""), literal(""),
                   literal("USD"), money_sum(r.c.amount), money_sum(r.c.amount), zero,
                   func.count(), func.max(r.c.depth))
            .where(r.c.kind == "account", money_number(r.c.amount) > 0, *scope)
            .group_by(r.c.originator_ref),
            select(r.c.originator_ref, literal("account-sum"), literal(""), literal(""),
                   literal(None), zero, null(), zero, func.count(), func.max(r.c.depth))
            .where(r.c.kind == "account", *scope).group_by(r.c.originator_ref),
            select(r.c.originator_ref, literal("movement-sum"), literal(""), literal(""),
                   literal(None), zero, null(), zero, func.sum(r.c.n), func.max(r.c.depth))
            .where(r.c.kind == "account", *scope).group_by(r.c.originator_ref),
        ]
        for q in qs:
            conn.execute(insert(r).from_select(cols, q))


def rebuild(conn: Connection, moves: list[Move] | None = None,
            parts: dict[int, Parts] | None = None) -> dict[str, int]:
    """Rebuild the whole rollup: from the rebuild's own ``moves`` and ``parts`` when
    given, else from ``attribution`` in SQL."""
    builds = prepare(conn)
    if parts is not None and moves is not None:
        n = load(conn, rows_from_parts(moves, parts))
    else:
        n = _write(conn, list(_detail_rows(conn, None)) if conn.dialect.name != "postgresql"
                   else _detail_rows(conn, None))
        _sums(conn, None)
    builds.run()
    return {"reach_rows": n}


def prepare(conn: Connection) -> Rebuilds:
    """Empty the rollup for a full rebuild; PostgreSQL: drop its indexes (returned, to build)."""
    dialect.empty(conn, "trail_reach")
    dialect.set_local(conn, work_mem="'256MB'")  # hash the groups in memory
    return drop_for_load(conn, Reach.__table__)


def text_rows(conn: Connection, rows: list[tuple]) -> list:
    """PostgreSQL: the rows as COPY text lines, formatted ahead (while the server builds
    the attribution's indexes); other databases: unchanged."""
    if conn.dialect.name == "postgresql":
        return list(_copy_lines(rows))
    return rows


def load(conn: Connection, rows: list) -> int:
    """Store rows of :meth:`Rollup.rows` (PostgreSQL: as :func:`text_rows` made them)."""
    if conn.dialect.name == "postgresql":
        return copy_lines(conn, "trail_reach", ", ".join(COLS),
                          rows if rows and isinstance(rows[0], str) else _copy_lines(rows))
    return _write(conn, map(_as_dict, rows))


def update(conn: Connection, accounts: set[Account]) -> dict[str, int]:
    """Rewrite the rollup rows of ``accounts`` (whose parts changed) and their donors' totals."""
    r = Reach.__table__
    accs = sorted(accounts)
    donors: set[str] = set()
    rows: list[dict[str, Any]] = []
    for i in range(0, len(accs), 500):
        chunk = accs[i:i + 500]
        here = tuple_(r.c.org, r.c.activity).in_(chunk)
        donors.update(conn.execute(select(r.c.originator_ref).distinct().where(
            here, r.c.kind.in_(("spent", "account")))).scalars())
        conn.execute(delete(r).where(here, r.c.kind.in_(("spent", "account"))))
        rows.extend(_detail_rows(conn, chunk))  # read whole before writing
    donors.update(x["originator_ref"] for x in rows)
    _write(conn, rows)
    ds = sorted(donors)
    for i in range(0, len(ds), 500):
        conn.execute(delete(r).where(r.c.originator_ref.in_(ds[i:i + 500]),
                                     r.c.kind.in_(SUM_KINDS)))
    _sums(conn, ds)
    return {"reach_rows": len(rows)}
