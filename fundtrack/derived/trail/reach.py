"""The per-donor rollup (``trail_reach``) behind bounded donor traces.

A donor in a dense graph reaches tens of thousands of accounts; summing its attribution
parts on every trace costs seconds. So the sums are kept per (donor, account) and per
donor, written from ``attribution`` by the full rebuild and, for the accounts an import
touched, by the incremental update. Sums are grouped in SQL (exact: NUMERIC on
PostgreSQL, ``dsum`` on SQLite); the one subtraction (held = in - out) is done on
``Decimal`` in Python, never in SQL, where SQLite would go through REAL.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection, Table, case, delete, func, insert, literal, null, select, tuple_
from sqlalchemy import union_all as sa_union_all

from fundtrack.db import dialect
from fundtrack.db.bulk import Rebuilds, bulk_insert, copy_lines, copy_text, drop_for_load, units_text
from fundtrack.derived.trail.engine import ORIGINATOR, Account, Move, Parts, units_exp
from fundtrack.derived.trail.tables import Attribution, Movement, Reach
from fundtrack.money import SUM_CONTEXT, Money, money_number, money_sum

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


# Running sums are lists summed in place (cheaper than objects, in the rebuild's hottest
# loop); amounts are (units, exponent) pairs in two slots, added by :func:`_addx`.
# An account's sums per donor: USD in, USD out, movements out, deepest part.
IN, IN_EXP, OUT, OUT_EXP, MOVES_OUT, DEPTH = range(6)
# What a donor's parts spent at an account, per currency: amount, USD, parts with USD,
# parts, deepest part. A donor's spent sums over accounts (``spent-sum``) use the same
# slots, WITH_USD then saying whether every account's spending had its USD value.
AMOUNT, AMOUNT_EXP, USD, USD_EXP, WITH_USD, PARTS, SPENT_DEPTH = range(7)
# A donor's held sums over accounts (``held-sum``): amount, accounts, deepest part.
HELD, HELD_EXP, HELD_ACCOUNTS, HELD_DEPTH = range(4)
# A donor's account sums (``account-sum``, ``movement-sum``): accounts, deepest part,
# movements out.
ACCOUNTS, ACCOUNTS_DEPTH, ACCOUNTS_MOVES = range(3)


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


#: Rows a streamed rollup (:class:`Rollup` with ``expected``) keeps in memory before it
#: puts them on disk.
SPILL_ROWS = 100_000


class Rollup:
    """The rollup of a full rebuild, summed from the parts still in memory (integer
    units): no pass over millions of stored rows. :meth:`add` takes each movement's parts
    (the attribution's COPY calls it on its way), :meth:`rows` gives every row, details
    and totals: the same rows as :func:`_detail_rows` and :func:`_sums` give from
    ``attribution`` (checked equal by the tests; incremental updates use the SQL). Rows
    are tuples in :data:`COLS` order, amounts as (units, exponent). Sums keep the scale
    ``Decimal`` and NUMERIC sums have: the finest of their terms, never coarser than units.
    """

    def __init__(self, expected: dict[Account, int] | None = None) -> None:
        # per account, per donor: slots IN .. DEPTH
        self.acct: dict[Account, dict[str, list]] = {}
        # per (account, currency), per donor: slots AMOUNT .. SPENT_DEPTH
        self.spent: dict[tuple[str, str, str | None], dict[str, list]] = {}
        #: per account, the movements still to be added that touch its sums (each
        #: movement once for its source, transfers once more for their destination);
        #: given, an account's rows are made as soon as its last movement is added and
        #: its sums let go (kept on disk until :meth:`take_rows`)
        self.expected = expected
        self.currencies: dict[Account, list[str | None]] = {}
        self.totals = _Totals()
        self.made: list[tuple] = []
        self.spill: Any = None

    def add(self, mv: Move, ps: Parts) -> None:
        self._add(mv, ps)
        exp = self.expected
        if exp is None:
            return
        for acc in (mv.src,) if mv.terminal else (mv.src, mv.dst):
            left = exp[acc] - 1
            if left:
                exp[acc] = left
            else:
                del exp[acc]
                self._made(acc)

    def _made(self, acc: Account) -> None:
        """Every movement of ``acc`` is in: its rows are made, its sums let go."""
        made, totals = self.made, self.totals
        for cur in self.currencies.pop(acc, ()):
            k = (acc[0], acc[1], cur)
            made.extend(totals.spent(k, self.spent.pop(k)))
        donors = self.acct.pop(acc, None)
        if donors is not None:
            made.extend(totals.account(acc, donors))
        if len(made) >= SPILL_ROWS:
            if self.spill is None:
                self.spill = tempfile.TemporaryFile()  # noqa: SIM115 - closed by take_rows
            pickle.dump(made, self.spill, pickle.HIGHEST_PROTOCOL)
            made.clear()

    def _add(self, mv: Move, ps: Parts) -> None:
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
                if self.expected is not None:
                    self.currencies.setdefault(src, []).append(mv.currency)
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
            c = outs.get(o)  # the source account: money out
            if c is None:
                c = outs[o] = [0, 0, 0, 0, 0, 0]
            if u is not None:
                if ue == c[OUT_EXP]:
                    c[OUT] += u
                else:
                    _addx(c, OUT, u, ue)
            c[MOVES_OUT] += 1
            if d > c[DEPTH]:
                c[DEPTH] = d
            c = there.get(o)
            if terminal:  # spent at the source account
                if c is None:
                    c = there[o] = [0, 0, 0, 0, 0, 0, 0]
                if ae == c[AMOUNT_EXP]:
                    c[AMOUNT] += a
                else:
                    _addx(c, AMOUNT, a, ae)
                if u is not None:
                    if ue == c[USD_EXP]:
                        c[USD] += u
                    else:
                        _addx(c, USD, u, ue)
                    c[WITH_USD] += 1
                c[PARTS] += 1
                if d > c[SPENT_DEPTH]:
                    c[SPENT_DEPTH] = d
            else:  # the destination account: money in
                if c is None:
                    c = there[o] = [0, 0, 0, 0, 0, 0]
                if u is not None:
                    if ue == c[IN_EXP]:
                        c[IN] += u
                    else:
                        _addx(c, IN, u, ue)
                if d > c[DEPTH]:
                    c[DEPTH] = d

    def rows(self) -> list[tuple]:
        return _rows(self.acct, self.spent)

    def take_rows(self) -> Iterator[tuple]:
        """:meth:`rows` one at a time, emptying the rollup as they go (with ``expected``:
        the rows made on the way first, then the rest; the same rows in another order)."""
        if self.spill is not None:
            self.spill.seek(0)
            while True:
                try:
                    yield from pickle.load(self.spill)
                except EOFError:
                    break
            self.spill.close()
            self.spill = None
        made, self.made = self.made, []
        yield from made
        del made
        yield from _iter_rows(self.acct, self.spent, True, self.totals)


def rows_from_parts(moves: Iterable[Move], parts: dict[int, Parts]) -> list[tuple]:
    """Every rollup row from the parts a full rebuild computed (see :class:`Rollup`)."""
    by_id = {mv.id: mv for mv in moves}
    rollup = Rollup()
    for mid, ps in parts.items():
        rollup.add(by_id[mid], ps)
    return rollup.rows()


def _rows(acct: dict[Account, dict[str, list]], spent: dict[tuple, dict[str, list]]) -> list[tuple]:
    return list(_iter_rows(acct, spent, False))


def _iter_rows(acct: dict[Account, dict[str, list]], spent: dict[tuple, dict[str, list]],
               consume: bool, totals: _Totals | None = None) -> Iterator[tuple]:
    """:func:`_rows` one at a time, in the same order; ``consume``: each account's sums
    leave the dicts as its rows are given (31M rows at 10M flows: never all held twice).
    ``totals``: the donors' sums of rows given before."""
    totals = totals or _Totals()
    for k in list(spent):
        yield from totals.spent(k, spent.pop(k) if consume else spent[k])
    for ka in list(acct):
        yield from totals.account(ka, acct.pop(ka) if consume else acct[ka])
    yield from totals.rows()


class _Totals:
    """Per donor sums over its detail rows, made as the detail rows are given."""

    def __init__(self) -> None:
        # per donor: spent per currency (AMOUNT .. SPENT_DEPTH), held (HELD .. HELD_DEPTH),
        # accounts and movements (ACCOUNTS .. ACCOUNTS_MOVES)
        self.spent_sum: dict[tuple[str, str | None], list] = {}
        self.held_sum: dict[str, list] = {}
        self.acct_sum: dict[str, list] = {}

    def spent(self, k: tuple, donors: dict[str, list]) -> Iterator[tuple]:
        """The spent rows of one (account, currency)."""
        zero = ZERO_UNITS
        spent_sum = self.spent_sum
        org, act, cur = k
        for o, (amt, ae, usd, ue, n_usd, n, depth) in donors.items():
            u = (usd, ue) if n_usd == n else None
            yield (o, "spent", org, act, cur, (amt, ae), u, u if usd and u else zero, n, depth)
            t = spent_sum.get((o, cur))
            if t is None:
                spent_sum[(o, cur)] = [amt, ae, usd, ue, u is not None, 1, depth]
                continue
            _addx(t, AMOUNT, amt, ae)
            _addx(t, USD, usd, ue)
            t[WITH_USD] = t[WITH_USD] and u is not None
            t[PARTS] += 1
            t[SPENT_DEPTH] = max(t[SPENT_DEPTH], depth)

    def account(self, ka: Account, donors: dict[str, list]) -> Iterator[tuple]:
        """The account rows of one account."""
        zero = ZERO_UNITS
        held_sum, acct_sum = self.held_sum, self.acct_sum
        org, act = ka
        for o, (i, ie, x, xe, n, depth) in donors.items():
            e = min(ie, xe)
            iu, xu = i * 10 ** (ie - e), x * 10 ** (xe - e)
            held = (iu - xu, e) if org != o and iu > xu else zero
            yield (o, "account", org, act, "USD", held, (i, ie), (x, xe) if xu > iu else (i, ie),
                   n, depth)
            if held[0] > 0:
                t = held_sum.get(o)
                if t is None:
                    held_sum[o] = [held[0], held[1], 1, depth]
                else:
                    _addx(t, HELD, *held)
                    t[HELD_ACCOUNTS] += 1
                    t[HELD_DEPTH] = max(t[HELD_DEPTH], depth)
            t = acct_sum.get(o)
            if t is None:
                acct_sum[o] = [1, depth, n]
            else:
                t[ACCOUNTS] += 1
                t[ACCOUNTS_DEPTH] = max(t[ACCOUNTS_DEPTH], depth)
                t[ACCOUNTS_MOVES] += n

    def rows(self) -> Iterator[tuple]:
        """The donors' sums (after every detail row)."""
        zero = ZERO_UNITS
        for (o, cur), (amt, ae, usd, ue, all_usd, n, depth) in self.spent_sum.items():
            yield (o, "spent-sum", "", "", cur, (amt, ae), (usd, ue) if all_usd else None, zero,
                   n, depth)
        for o, (amt, ae, n, depth) in self.held_sum.items():
            yield (o, "held-sum", "", "", "USD", (amt, ae), (amt, ae), zero, n, depth)
        for o, (n, depth, moves_n) in self.acct_sum.items():
            yield (o, "account-sum", "", "", None, zero, None, zero, n, depth)
            yield (o, "movement-sum", "", "", None, zero, None, zero, moves_n, depth)


def _dec(acc: tuple[int, int]) -> Decimal:
    return Decimal(acc[0]).scaleb(acc[1])


NULL = "\\N"
ZERO_UNITS = (0, 0)  # Decimal(0): the rollup's zero, as the SQL path writes it
COLS = ("originator_ref", "kind", "org", "activity", "currency", "amount", "amount_usd", "rank",
        "n", "depth")


def _copy_lines(rows: Iterable[tuple]) -> Iterator[str]:
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


def load_rollup(conn: Connection, rollup: Rollup) -> int:
    """Store every row of ``rollup`` as it is made, emptying it (a full rebuild too big to
    hold the rows beside the sums)."""
    if conn.dialect.name == "postgresql":
        return copy_lines(conn, "trail_reach", ", ".join(COLS), _copy_lines(rollup.take_rows()))
    return _write(conn, map(_as_dict, rollup.take_rows()))


def load(conn: Connection, rows: list) -> int:
    """Store rows of :meth:`Rollup.rows` (PostgreSQL: as :func:`text_rows` made them)."""
    if conn.dialect.name == "postgresql":
        return copy_lines(conn, "trail_reach", ", ".join(COLS),
                          rows if rows and isinstance(rows[0], str) else _copy_lines(rows))
    return _write(conn, map(_as_dict, rows))


def update(conn: Connection, accounts: set[Account]) -> dict[str, int]:
    """Rewrite the rollup rows of ``accounts`` (whose parts changed) and their donors' totals.

    The totals move by the difference between the rows removed and the rows written
    (:func:`_delta_sums`), not by re-summing every row of each donor (a large donor has
    rows at a third of the ledger's accounts); where the difference cannot give the exact
    total (the scale or the deepest part could have gone with a removed row, or a total
    in USD is unknown), that donor is summed again in SQL, as before."""
    r = cast(Table, Reach.__table__)
    accs = sorted(accounts)
    old: list[Any] = []
    rows: list[dict[str, Any]] = []
    for i in range(0, len(accs), 500):
        chunk = accs[i:i + 500]
        here = tuple_(r.c.org, r.c.activity).in_(chunk)
        old.extend(conn.execute(select(r.c.originator_ref, r.c.kind, r.c.currency, r.c.amount,
                                       r.c.amount_usd, r.c.n, r.c.depth).where(
            here, r.c.kind.in_(("spent", "account")))))
        conn.execute(delete(r).where(here, r.c.kind.in_(("spent", "account"))))
        rows.extend(_detail_rows(conn, chunk))  # read whole before writing
    _write(conn, rows)
    removed: dict[str, list[tuple]] = {}
    added: dict[str, list[tuple]] = {}
    for x in old:
        removed.setdefault(x.originator_ref, []).append(
            (x.kind, x.currency, x.amount, x.amount_usd, x.n, x.depth))
    for d in rows:
        added.setdefault(d["originator_ref"], []).append(
            (d["kind"], d["currency"], d["amount"], d["amount_usd"], d["n"], d["depth"]))
    ds = sorted(set(removed) | set(added))
    stored: dict[str, dict[tuple[str, str | None], Any]] = {}
    for i in range(0, len(ds), 500):
        for x in conn.execute(select(r).where(r.c.originator_ref.in_(ds[i:i + 500]),
                                              r.c.kind.in_(SUM_KINDS))):
            stored.setdefault(x.originator_ref, {})[(x.kind, x.currency)] = x
    again: list[str] = []
    gone: list[int] = []
    fresh: list[dict[str, Any]] = []
    for o in ds:
        had = stored.get(o, {})
        got = _delta_sums(o, had, removed.get(o, []), added.get(o, []))
        if got is None:
            again.append(o)
            continue
        for k, x in had.items():
            new = got.pop(k, None)
            if new is None:
                gone.append(x.id)
            elif tuple(new[c] for c in _SUM_COLS) != tuple(getattr(x, c) for c in _SUM_COLS) \
                    or not _same_scale(new, x):
                gone.append(x.id)
                fresh.append(new)
        fresh.extend(got.values())
    for i in range(0, len(gone), 1000):
        conn.execute(delete(r).where(r.c.id.in_(gone[i:i + 1000])))
    _write(conn, fresh)
    for i in range(0, len(again), 500):
        conn.execute(delete(r).where(r.c.originator_ref.in_(again[i:i + 500]),
                                     r.c.kind.in_(SUM_KINDS)))
    _sums(conn, again)
    return {"reach_rows": len(rows)}


_SUM_COLS = ("amount", "amount_usd", "n", "depth")


def _same_scale(new: dict[str, Any], x: Any) -> bool:
    """Equal amounts with the same text (1.50 is not 1.5: the scale is kept)."""
    return all(str(new[c]) == str(getattr(x, c)) for c in ("amount", "amount_usd"))


class _Total:
    """One total moved by a difference: exact, or None when it cannot be known so."""

    def __init__(self, old: Decimal | None) -> None:
        self.value = old
        self.ok = True

    def move(self, out: list[Decimal | None], into: list[Decimal | None]) -> None:
        if not self.ok:
            return
        if self.value is None:  # no total before: the terms added are all of it
            if out:
                self.ok = False
                return
            self.value = _exact_sum(into)
            return
        e = _exp(self.value)
        # the total's scale is its finest term's: a removed term as fine may have been it,
        # unless a term added is as fine (then the new scale is the finest added)
        if any(v is None for v in out) or (
                any(_exp(v) <= e for v in out if v is not None)
                and not any(v is not None and _exp(v) <= e for v in into)):
            self.ok = False
            return
        total = self.value
        for v in out:
            total = SUM_CONTEXT.subtract(total, v)  # type: ignore[arg-type]
        for v in into:
            if v is None:
                self.ok = False
                return
            total = SUM_CONTEXT.add(total, v)
        self.value = total


def _exp(v: Decimal) -> int:
    e = v.as_tuple().exponent
    return e if isinstance(e, int) else 0


def _exact_sum(values: list[Decimal | None]) -> Decimal | None:
    out: Decimal | None = None
    for v in values:
        if v is None:
            return None
        out = v if out is None else SUM_CONTEXT.add(out, v)
    return out


def _delta_sums(o: str, had: dict[tuple[str, str | None], Any], removed: list[tuple],
                added: list[tuple]) -> dict[tuple[str, str | None], dict[str, Any]] | None:
    """The donor's total rows (:func:`_sums`) from its stored ones and the detail rows
    removed and added; None where only a new sum is exact."""
    out: dict[tuple[str, str | None], dict[str, Any]] = {}
    # spent-sum, per currency: amounts, USD (all parts known, else NULL), parts, depth
    spent_cur = {c for k, c, *_ in removed + added if k == "spent"}
    for cur in spent_cur:
        rem = [x for x in removed if x[0] == "spent" and x[1] == cur]
        add = [x for x in added if x[0] == "spent" and x[1] == cur]
        old = had.get(("spent-sum", cur))
        if old is not None and old.amount_usd is None and rem:
            return None  # how many parts lack USD is not stored
        got = _moved(old, rem, add, amounts=True)
        if got is None:
            return None
        if got:
            n, depth, amt = got["n"], got["depth"], got["amount"]
            usd = got["amount_usd"] if old is None or old.amount_usd is not None else None
            out[("spent-sum", cur)] = _row(o, "spent-sum", "", "", cur, amt, usd, ZERO, n, depth)
    acc_rem = [x for x in removed if x[0] == "account"]
    acc_add = [x for x in added if x[0] == "account"]
    if acc_rem or acc_add:
        held_rem = [x for x in acc_rem if x[2] > 0]
        held_add = [x for x in acc_add if x[2] > 0]
        if held_rem or held_add:
            got = _moved(had.get(("held-sum", "USD")), held_rem, held_add, amounts=True,
                         usd_is_amount=True)
            if got is None:
                return None
            if got:
                out[("held-sum", "USD")] = _row(o, "held-sum", "", "", "USD", got["amount"],
                                                got["amount"], ZERO, got["n"], got["depth"])
        elif ("held-sum", "USD") in had:
            x = had[("held-sum", "USD")]
            out[("held-sum", "USD")] = _row(o, "held-sum", "", "", "USD", x.amount,
                                            x.amount_usd, x.rank, x.n, x.depth)
        got = _moved(had.get(("account-sum", None)), acc_rem, acc_add, amounts=False)
        if got is None:
            return None
        if got:
            out[("account-sum", None)] = _row(o, "account-sum", "", "", None, ZERO, None, ZERO,
                                              got["n"], got["depth"])
        old = had.get(("movement-sum", None))
        if got:
            n = (old.n if old is not None else 0) - sum(x[4] for x in acc_rem) \
                + sum(x[4] for x in acc_add)
            out[("movement-sum", None)] = _row(o, "movement-sum", "", "", None, ZERO, None,
                                               ZERO, n, got["depth"])
    # totals of kinds no removed or added row touches stay as they are
    for k, x in had.items():
        if k not in out and not ((k[0] == "spent-sum" and k[1] in spent_cur)
                                 or (k[0] != "spent-sum" and (acc_rem or acc_add))):
            out[k] = _row(o, x.kind, x.org, x.activity, x.currency, x.amount, x.amount_usd,
                          x.rank, x.n, x.depth)
    return out


def _moved(old: Any, rem: list[tuple], add: list[tuple], *, amounts: bool,
           usd_is_amount: bool = False) -> dict[str, Any] | None:
    """A total moved by the rows ``rem`` out and ``add`` in: {} when no row is left,
    None when the result cannot be exact (then the caller sums again)."""
    n = (old.n if old is not None else 0) - len(rem) + len(add)
    if old is None and rem:
        return None
    if n <= 0:
        return {} if n == 0 else None
    depth = old.depth if old is not None else 0
    if rem and old is not None and max(x[5] for x in rem) >= depth \
            and not (add and max(x[5] for x in add) >= depth):
        return None  # the deepest may have gone (and none as deep comes)
    depth = max([depth] + [x[5] for x in add])
    out: dict[str, Any] = {"n": n, "depth": depth, "amount": ZERO, "amount_usd": None}
    if amounts:
        amt = _Total(old.amount if old is not None else None)
        amt.move([x[2] for x in rem], [x[2] for x in add])
        if not amt.ok or amt.value is None:
            return None
        out["amount"] = amt.value
        if not usd_is_amount:
            usd = _Total(old.amount_usd if old is not None else None)
            usd.move([x[3] for x in rem], [x[3] for x in add])
            out["amount_usd"] = usd.value if usd.ok else None
            if old is not None and old.amount_usd is not None and not usd.ok \
                    and all(x[3] is not None for x in add):
                return None  # all parts have USD, but the scale cannot be known
    return out
