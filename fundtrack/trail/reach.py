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

from sqlalchemy import Connection, case, delete, func, insert, literal, null, select, text, tuple_
from sqlalchemy import union_all as sa_union_all

from fundtrack.ledger import bulk_insert
from fundtrack.money import Money, money_number, money_sum
from fundtrack.trail.bulkload import indexes_after
from fundtrack.trail.engine import ORIGINATOR, Account, Move, Part
from fundtrack.trail_models import Attribution, Movement, Reach

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


def rows_from_parts(moves: Iterable[Move], parts: dict[int, list[Part]]
                    ) -> Iterator[dict[str, Any]]:
    """The same rows as :func:`_detail_rows` over every account, from the parts a full
    rebuild has just computed (still in memory): no second pass over millions of rows.
    Both are checked equal by the tests (incremental updates use the SQL)."""
    by_id = {mv.id: mv for mv in moves}
    spent: dict[tuple, list] = {}
    acct: dict[tuple, list] = {}
    for mid, ps in parts.items():
        mv = by_id[mid]
        for p in ps:
            kind, o = p.origin
            if kind != ORIGINATOR:
                continue
            o = o[:200]
            usd = p.amount_usd
            if mv.terminal:
                k = (o, mv.src[0], mv.src[1], mv.currency)
                s = spent.get(k)
                if s is None:
                    s = spent[k] = [ZERO, ZERO, 0, 0, 0]
                s[0] += p.amount
                if usd is not None:
                    s[1] += usd
                    s[2] += 1
                s[3] += 1
                s[4] = max(s[4], p.depth)
            else:
                k = (o, mv.dst[0], mv.dst[1])
                a = acct.get(k)
                if a is None:
                    a = acct[k] = [ZERO, ZERO, 0, 0]
                if usd is not None:
                    a[0] += usd
                a[3] = max(a[3], p.depth)
            k = (o, mv.src[0], mv.src[1])
            a = acct.get(k)
            if a is None:
                a = acct[k] = [ZERO, ZERO, 0, 0]
            if usd is not None:
                a[1] += usd
            a[2] += 1
            a[3] = max(a[3], p.depth)
    for (o, org, act, cur), (amt, usd, n_usd, n, depth) in spent.items():
        u = usd if n_usd == n else None
        yield _row(o, "spent", org, act, cur, amt, u, u or ZERO, n, depth)
    for (o, org, act), (i, x, n, depth) in acct.items():
        yield _account_row(o, org, act, i, x, n, depth)


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
            parts: dict[int, list[Part]] | None = None) -> dict[str, int]:
    """Rebuild the whole rollup: from the rebuild's own ``moves`` and ``parts`` when
    given, else from ``attribution`` in SQL."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("TRUNCATE trail_reach"))
        conn.execute(text("SET LOCAL work_mem = '256MB'"))  # hash the groups in memory
    else:
        conn.execute(delete(Reach))
    with indexes_after(conn, Reach.__table__):
        if parts is not None and moves is not None:
            n = _write(conn, rows_from_parts(moves, parts))
        else:
            n = _write(conn, list(_detail_rows(conn, None)) if conn.dialect.name != "postgresql"
                       else _detail_rows(conn, None))
        _sums(conn, None)
    return {"reach_rows": n}


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
