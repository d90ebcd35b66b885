"""Trace queries: who paid for an activity (upstream), where a donor's money went (downstream).

Upstream answers come straight from stored attribution. Downstream from an originating
donor also does; downstream from anything else (an activity, a flow, a fund) re-runs the
same rule on the sub-graph below it, labelling the money that passed through the start,
so the answer follows exactly the rule used everywhere else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, null, or_, select, union_all

from fundtrack.db.base import current
from fundtrack.derived.trail.attribution import (
    _touching,
    downstream_sql,
    load_moves,
    load_parts,
    moves_around,
    source_reasons,
)
from fundtrack.derived.trail.config import TrailConfig
from fundtrack.derived.trail.engine import ORIGINATOR, Account, Part, attribute
from fundtrack.derived.trail.reach import SUM_KINDS
from fundtrack.derived.trail.reasons import HELD
from fundtrack.derived.trail.tables import HELD_ROWS, Attribution, Movement, Reach
from fundtrack.ledger import tables as m
from fundtrack.money import money_number, money_sum

#: Accounts per statement ((org, activity) IN (VALUES ...): two bound values each) and
#: ids per IN list: every statement stays small whatever the organisation's size.
ACCOUNT_CHUNK = 500
ID_CHUNK = 1000
TRACED = "\x00traced"
OTHER = "\x00other"


LISTS = ("accounts", "movements", "originators", "terminals", "untraced")
TOTALLED = ("originators", "terminals", "untraced")


@dataclass
class TraceResult:
    """A trace's answer. With a ``limit`` each list holds its largest items first, at most
    ``limit`` of them; ``counts`` and ``totals`` (per currency) are always exact."""

    accounts: list[Account] = field(default_factory=list)
    movements: list[dict[str, Any]] = field(default_factory=list)
    originators: list[dict[str, Any]] = field(default_factory=list)
    terminals: list[dict[str, Any]] = field(default_factory=list)
    untraced: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    totals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _largest(row: dict[str, Any]) -> tuple:
    usd = row.get("amount_usd")
    keys = tuple(str(row.get(k) or "") for k in ("organization", "activity", "currency",
                                                   "reason", "id"))
    return (usd is None, -(usd or Decimal(0)), -row["amount"], keys)


def totals_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exact sums per currency; ``amount_usd`` None if any row lacks it."""
    acc: dict = {}
    for r in rows:
        _add(acc, (r.get("currency"),), r["amount"], r.get("amount_usd"))
    return [{"currency": k[0], "amount": v[0], "amount_usd": v[1] if v[2] else None}
            for k, v in sorted(acc.items(), key=lambda kv: kv[0][0] or "")]


def _finish(res: TraceResult, limit: int | None) -> TraceResult:
    """Order every list largest first, count and total it, then keep ``limit`` items."""
    weight: dict[Account, Decimal] = defaultdict(Decimal)
    if "accounts" not in res.counts:
        through: dict[Account, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for mv in res.movements:
            src = mv["src"] if "src" in mv else (mv["src_org"], mv["src_activity"])
            dst = mv["dst"] if "dst" in mv else (mv["dst_org"], mv["dst_activity"])
            usd = mv.get("amount_usd") or Decimal(0)
            through[src][1] += usd
            if mv["kind"] != "expenditure":
                through[dst][0] += usd
        weight.update({a: max(v) for a, v in through.items()})
        res.accounts = sorted(res.accounts, key=lambda a: (-weight.get(a, Decimal(0)), a))
    for name in LISTS:
        rows = getattr(res, name)
        if name not in res.counts:
            res.counts[name] = len(rows)
            if name != "accounts":
                rows.sort(key=_largest)
            if name in TOTALLED:
                res.totals[name] = totals_of(rows)
        if limit is not None:
            setattr(res, name, rows[:limit])
    return res


def _add(acc: dict, key: tuple, amount: Decimal, usd: Decimal | None) -> None:
    cur = acc.setdefault(key, [Decimal(0), Decimal(0), True])
    cur[0] += amount
    if usd is None:
        cur[2] = False
    else:
        cur[1] += usd


def _accounts_of(conn: Connection, activity: str | None, organization: str | None
                 ) -> set[Account]:
    """The accounts of an activity or organisation that the movements know (index lookups)."""
    t, a = Movement.__table__, m.Activity.__table__
    out: set[Account] = set()
    if organization is not None:
        for so, sa_ in conn.execute(select(t.c.src_org, t.c.src_activity).distinct()
                                    .where(t.c.src_org == organization)):
            out.add((so, sa_))
        for do, da in conn.execute(select(t.c.dst_org, t.c.dst_activity).distinct()
                                   .where(t.c.dst_org == organization)):
            out.add((do, da))
        return out
    orgs = set(conn.execute(select(a.c.reporting_org_ref).where(
        a.c.iati_identifier == activity, current(a))).scalars())
    if not orgs:  # an activity only named by others (a broken link): look it up by name
        orgs = set(conn.execute(select(t.c.dst_org).distinct().where(
            t.c.dst_activity == activity)).scalars())
    for org in orgs:
        if conn.execute(select(t.c.id).where(
                ((t.c.src_org == org) & (t.c.src_activity == activity))
                | ((t.c.dst_org == org) & (t.c.dst_activity == activity))).limit(1)).first():
            out.add((org, activity or ""))
    return out


def trace(conn: Connection, *, activity: str | None = None, organization: str | None = None,
          flow: int | None = None, direction: str = "DOWNSTREAM", max_depth: int = 6,
          limit: int | None = None) -> TraceResult:
    """Trace from one activity (iati-identifier), organisation (ref) or flow (id).

    ``limit``: keep the largest ``limit`` items of each list (None: all); counts and
    totals stay exact either way.
    """
    if sum(x is not None for x in (activity, organization, flow)) != 1:
        raise ValueError("trace from exactly one of activity, organization, flow")
    if organization is not None:  # the trail names organisations canonically (issue 15)
        from fundtrack.identity.resolve import canonical_ref

        organization = canonical_ref(conn, organization)
    if direction.upper() == "UPSTREAM":
        return _finish(_upstream(conn, activity, organization, flow, max_depth), limit)
    if organization is not None and _pure_originator(conn, organization):
        fast = _donor_reach(conn, organization, max_depth, limit)
        if fast is not None:
            return fast
        donor = _donor_downstream(conn, organization, max_depth)
        # No stored parts although money leaves it (a pooled fund such as CERF whose
        # grants the attribution does not start from): follow its movements instead.
        if donor.movements or donor.accounts:
            return _finish(donor, limit)
    return _finish(_downstream(conn, activity, organization, flow, max_depth), limit)


def _pure_originator(conn: Connection, org: str) -> bool:
    """True if no money enters the organisation from outside: its stored attribution is the trace."""
    t = Movement.__table__
    return conn.execute(select(t.c.id).where(
        t.c.dst_org == org, t.c.kind == "transfer", t.c.src_org != org).limit(1)).first() is None


def _donor_reach(conn: Connection, org: str, max_depth: int, limit: int | None
                 ) -> TraceResult | None:
    """Downstream from a donor, read from the rollup: a few index range scans, however far
    the money went. None when the rollup cannot answer exactly (not built yet, or
    ``max_depth`` cuts through the donor's parts): then the parts are summed instead."""
    r, t, at = Reach.__table__, Movement.__table__, Attribution.__table__
    sums = conn.execute(select(r.c.kind, r.c.currency, r.c.amount, r.c.amount_usd, r.c.n,
                               r.c.depth).where(r.c.originator_ref == org,
                                                r.c.kind.in_(SUM_KINDS))).all()
    by_kind = {s.kind: s for s in sums}
    if "account-sum" not in by_kind or by_kind["account-sum"].depth > max_depth:
        return None
    res = TraceResult()
    spent = sorted((s for s in sums if s.kind == "spent-sum"), key=lambda s: s.currency or "")
    held = by_kind.get("held-sum")
    res.counts = {"accounts": by_kind["account-sum"].n,
                  "movements": int(by_kind["movement-sum"].n or 0),
                  "terminals": sum(s.n for s in spent), "originators": 0,
                  "untraced": held.n if held else 0}
    res.totals = {"originators": [],
                  "terminals": [{"currency": s.currency, "amount": s.amount,
                                 "amount_usd": s.amount_usd} for s in spent],
                  "untraced": [{"currency": "USD", "amount": held.amount,
                                "amount_usd": held.amount} for s in [held] if held]}
    mine = (r.c.originator_ref == org,)

    def capped(q: Any) -> Any:
        return conn.execute(q if limit is None else q.limit(limit))

    for o, a, c, amt, usd in capped(
            select(r.c.org, r.c.activity, r.c.currency, r.c.amount, r.c.amount_usd)
            .where(*mine, r.c.kind == "spent")
            .order_by(money_number(r.c.rank).desc(), r.c.org, r.c.activity, r.c.currency)):
        res.terminals.append({"organization": o, "activity": a or None, "currency": c,
                              "amount": amt, "amount_usd": usd})
    for o, a, amt in capped(
            select(r.c.org, r.c.activity, r.c.amount)
            .where(*mine, HELD_ROWS, money_number(r.c.amount) > 0)
            .order_by(money_number(r.c.amount).desc(), r.c.org, r.c.activity)):
        res.untraced.append({"reason": HELD, "organization": o,
                             "activity": a or None, "currency": "USD", "amount": amt,
                             "amount_usd": amt})
    res.accounts = [(o, a) for o, a in capped(
        select(r.c.org, r.c.activity).where(*mine, r.c.kind == "account")
        .order_by(money_number(r.c.rank).desc(), r.c.org, r.c.activity))]
    j = at.join(t, t.c.id == at.c.movement_id)
    cols = (t.c.id, t.c.kind, t.c.src_org, t.c.src_activity, t.c.dst_org, t.c.dst_activity,
            t.c.currency, at.c.amount, at.c.amount_usd, at.c.depth)
    rows = list(capped(select(*cols).select_from(j)
                       .where(at.c.originator_ref == org, at.c.amount_usd.is_not(None))
                       .order_by(money_number(at.c.amount_usd).desc(), at.c.movement_id)))
    if limit is None or len(rows) < limit:  # parts without a USD value come last
        q = (select(*cols).select_from(j)
             .where(at.c.originator_ref == org, at.c.amount_usd.is_(None))
             .order_by(at.c.movement_id))
        rows += conn.execute(q if limit is None else q.limit(limit - len(rows))).all()
    res.movements = [{"id": x.id, "src": (x.src_org, x.src_activity),
                      "dst": (x.dst_org, x.dst_activity), "kind": x.kind, "amount": x.amount,
                      "currency": x.currency, "amount_usd": x.amount_usd, "depth": x.depth}
                     for x in rows]
    return res


def _donor_downstream(conn: Connection, org: str, max_depth: int) -> TraceResult:
    """Downstream from a donor whose money all starts with it: the stored parts, summed in SQL
    (exact at any ``max_depth``; the rollup answers faster when it can).

    Terminals and what accounts hold are aggregated by the database (index on
    originator_ref); only the movements themselves come back row by row.
    """
    t, at = Movement.__table__, Attribution.__table__
    cond = (at.c.originator_ref == org, at.c.depth <= max_depth)
    j = at.join(t, t.c.id == at.c.movement_id)
    res = TraceResult()
    accounts: set[Account] = set()
    for r in conn.execute(select(t.c.id, t.c.kind, t.c.src_org, t.c.src_activity, t.c.dst_org,
                                 t.c.dst_activity, t.c.currency, at.c.amount, at.c.amount_usd,
                                 at.c.depth).select_from(j).where(*cond)):
        src, dst = (r.src_org, r.src_activity), (r.dst_org, r.dst_activity)
        accounts.add(src)
        if r.kind != "expenditure":
            accounts.add(dst)
        res.movements.append({"id": r.id, "src": src, "dst": dst, "kind": r.kind,
                              "amount": r.amount, "currency": r.currency,
                              "amount_usd": r.amount_usd, "depth": r.depth})
    res.accounts = sorted(accounts)
    usd_known = func.min(case((at.c.amount_usd.is_(None), 0), else_=1))
    q = (select(t.c.src_org, t.c.src_activity, t.c.currency, money_sum(at.c.amount),
                money_sum(at.c.amount_usd), usd_known).select_from(j)
         .where(*cond, t.c.kind == "expenditure")
         .group_by(t.c.src_org, t.c.src_activity, t.c.currency)
         .order_by(t.c.src_org, t.c.src_activity, t.c.currency))
    res.terminals = [{"organization": o, "activity": a or None, "currency": c, "amount": amt,
                      "amount_usd": (usd or Decimal(0)) if known else None}
                     for o, a, c, amt, usd, known in conn.execute(q)]
    none = null().cast(at.c.amount_usd.type)
    inn = (select(t.c.dst_org.label("o"), t.c.dst_activity.label("a"),
                  at.c.amount_usd.label("i"), none.label("x")).select_from(j)
           .where(*cond, t.c.kind != "expenditure"))
    out = (select(t.c.src_org, t.c.src_activity, none, at.c.amount_usd).select_from(j)
           .where(*cond))
    u = union_all(inn, out).subquery()
    q = (select(u.c.o, u.c.a, money_sum(u.c.i), money_sum(u.c.x)).where(u.c.o != org)
         .group_by(u.c.o, u.c.a).order_by(u.c.o, u.c.a))
    for o, a, i, x in conn.execute(q):
        v = (i or Decimal(0)) - (x or Decimal(0))
        if v <= 0:
            continue
        res.untraced.append({"reason": HELD, "organization": o,
                             "activity": a or None, "currency": "USD", "amount": v,
                             "amount_usd": v})
    return res


def _movements_of_flow(conn: Connection, flow: int) -> list[int]:
    """The movements a flow reports (several when it is part of a lump match)."""
    t = Movement.__table__
    return sorted(conn.execute(select(t.c.id).where(
        (t.c.flow_id == flow) | (t.c.mirror_flow_id == flow))).scalars())


def _upstream(conn: Connection, activity: str | None, organization: str | None,
              flow: int | None, max_depth: int) -> TraceResult:
    t, at = Movement.__table__, Attribution.__table__
    res = TraceResult()
    if flow is not None:
        ids = _movements_of_flow(conn, flow)
        start: set[Account] = set()
    else:
        start = _accounts_of(conn, activity, organization)
        res.accounts = sorted(start)
        # Bounded statements whatever the number of accounts (UNDP: 1,220 activities;
        # one OR term per account overflowed SQLite's expression depth of 1000): the
        # accounts go in chunks of ACCOUNT_CHUNK pairs, (org, activity) IN (VALUES ...).
        accs = sorted(start)
        rows_by_id: dict[int, Any] = {}
        for i in range(0, len(accs), ACCOUNT_CHUNK):
            chunk = accs[i:i + ACCOUNT_CHUNK]
            for side in ("src", "dst"):
                for r in conn.execute(select(t.c.id, t.c.src_org, t.c.src_activity, t.c.dst_org,
                                             t.c.dst_activity, t.c.kind)
                                      .where(_touching(chunk, side))):
                    rows_by_id[r.id] = r
        rows = [rows_by_id[k] for k in sorted(rows_by_id)]
        inflow = [r.id for r in rows if r.kind == "transfer" and (r.dst_org, r.dst_activity)
                  in start and (r.src_org, r.src_activity) not in start]
        ids = inflow or [r.id for r in rows if (r.src_org, r.src_activity) in start]
    origin: dict = {}
    untraced: dict = {}
    for i in range(0, len(ids), ID_CHUNK):
        for r in conn.execute(select(at.c.originator_ref, at.c.untraced_reason, at.c.amount,
                                     at.c.currency, at.c.amount_usd)
                              .where(at.c.movement_id.in_(ids[i:i + ID_CHUNK]))):
            if r.originator_ref is not None:
                _add(origin, (r.originator_ref, r.currency), r.amount, r.amount_usd)
            else:
                _add(untraced, (r.untraced_reason, r.currency), r.amount, r.amount_usd)
    res.originators = [{"organization": k[0], "currency": k[1], "amount": v[0],
                        "amount_usd": v[1] if v[2] else None} for k, v in sorted(origin.items())]
    res.untraced = [{"reason": k[0], "currency": k[1], "amount": v[0],
                     "amount_usd": v[1] if v[2] else None} for k, v in sorted(untraced.items())]
    found = [dict(r._mapping) for i in range(0, len(ids), ID_CHUNK)
             for r in conn.execute(select(t).where(t.c.id.in_(ids[i:i + ID_CHUNK])))]
    res.movements = sorted(found, key=lambda mv: (mv["sort_key"], mv["id"]))
    return res


def _downstream(conn: Connection, activity: str | None, organization: str | None,
                flow: int | None, max_depth: int) -> TraceResult:
    cfg = TrailConfig()
    fixed: dict[int, list[Part]] = {}
    first_moves = []
    if flow is not None:
        mids = _movements_of_flow(conn, flow)
        if not mids:
            return TraceResult()
        first_moves = load_moves(conn, cfg, Movement.__table__.c.id.in_(mids))
        for first in first_moves:
            fixed[first.id] = [Part((ORIGINATOR, TRACED), first.amount, first.amount_usd, 0)]
        start = {first.dst for first in first_moves if not first.terminal}
        seeds: set[Account] = set()
    else:
        seeds = _accounts_of(conn, activity, organization)
        start = seeds
    closure = downstream_sql(conn, start)  # the sub-graph below, by index: not the ledger
    moves = moves_around(conn, cfg, closure)
    by_id = {mv.id: mv for mv in moves}
    for mv in first_moves:
        if mv.id not in by_id:
            moves.append(mv)
            by_id[mv.id] = mv
    for mv in moves:
        if mv.id in fixed or mv.terminal or mv.dst not in closure:
            continue
        if mv.dst in seeds:
            fixed[mv.id] = [Part((ORIGINATOR, TRACED), mv.amount, mv.amount_usd, 0)]
        elif mv.src not in closure:
            fixed[mv.id] = [Part((ORIGINATOR, OTHER), mv.amount, mv.amount_usd, 0)]
    reasons = source_reasons(conn, closure)
    for s in seeds:  # money that starts at the start is traced, whatever its own story
        reasons[s] = TRACED
    relevant = [mv for mv in moves if mv.src in closure or mv.id in fixed]
    parts = attribute(relevant, reasons, fixed=fixed, compute=closure)

    def traced(p: Part, _src: Account) -> bool:
        return p.origin[1] == TRACED

    res = TraceResult(accounts=sorted(closure))
    term: dict = {}
    held_in: dict = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for mid, ps in sorted(parts.items()):
        mv = by_id[mid]
        amt = sum((p.amount for p in ps if traced(p, mv.src)), Decimal(0))
        usd = sum((p.amount_usd or Decimal(0) for p in ps if traced(p, mv.src)), Decimal(0))
        depth = min((p.depth for p in ps if traced(p, mv.src)), default=0)
        if not amt or depth > max_depth:
            continue
        res.movements.append({"id": mid, "src": mv.src, "dst": mv.dst, "kind":
                              "expenditure" if mv.terminal else "transfer", "amount": amt,
                              "currency": mv.currency, "amount_usd": usd, "depth": depth})
        if mv.terminal:
            _add(term, (mv.src[0], mv.src[1], mv.currency), amt, usd)
        else:
            held_in[mv.dst][0] += usd
        held_in[mv.src][1] += usd
    for mv in first_moves:
        if mv.terminal:
            _add(term, (mv.src[0], mv.src[1], mv.currency), mv.amount, mv.amount_usd)
    res.terminals = [{"organization": k[0], "activity": k[1] or None, "currency": k[2],
                      "amount": v[0], "amount_usd": v[1] if v[2] else None}
                     for k, v in sorted(term.items())]
    for acc, (inn, out) in sorted(held_in.items()):
        if acc not in seeds and inn - out > 0:
            res.untraced.append({"reason": HELD, "organization": acc[0],
                                 "activity": acc[1] or None, "currency": "USD",
                                 "amount": inn - out, "amount_usd": inn - out})
    return res


def donor_summary(conn: Connection, organization: str) -> dict[str, list[dict[str, Any]]]:
    """Where a donor's money ended: by fund, recipient organisation, country, gender, kind."""
    t, at = Movement.__table__, Attribution.__table__
    a, pm = m.Activity.__table__, m.PolicyMarker.__table__
    from fundtrack.derived.trail.funds import pooled_refs
    from fundtrack.identity.resolve import canonical_ref

    organization = canonical_ref(conn, organization)
    funds = pooled_refs(conn)
    # The activity's gender marker on the common scale as a DAC number (the crosswalk of
    # fundtrack.accounting.markers: IOM's, ADB's ... markers too), as genderSummary counts.
    from fundtrack.accounting.markers import activity_marker
    from fundtrack.query.vocabulary import GENDER_STORED

    rows: dict[str, list[tuple]] = {}
    for mr in conn.execute(select(a.c.iati_identifier, pm.c.vocabulary, pm.c.code,
                                  pm.c.significance, pm.c.vocabulary_uri)
                          .select_from(pm.join(a, a.c.id == pm.c.activity_id))
                          .where(current(a), or_(and_(pm.c.vocabulary == "1", pm.c.code == "1"),
                                                 pm.c.vocabulary == "99"))
                          .order_by(pm.c.id)):
        rows.setdefault(mr.iati_identifier, []).append(tuple(mr)[1:])
    gender = {ident: str(GENDER_STORED[f"gender:{mk.common}"]) for ident, mk in
              ((i, activity_marker(rs)) for i, rs in rows.items())
              if f"gender:{mk.common}" in GENDER_STORED}
    out: dict[str, dict] = {k: {} for k in ("fund", "recipient", "country", "gender", "kind")}
    q = (select(t.c.kind, t.c.src_org, t.c.src_activity, t.c.recipient_country, at.c.amount,
                at.c.amount_usd)
         .select_from(at.join(t, t.c.id == at.c.movement_id))
         .where(at.c.originator_ref == organization))
    for r in conn.execute(q):
        usd = r.amount_usd
        if r.src_org in funds:
            _add(out["fund"], (r.src_org,), r.amount_usd or Decimal(0), usd)
        if r.kind != "expenditure":
            continue
        _add(out["recipient"], (r.src_org,), usd or Decimal(0), usd)
        _add(out["country"], (r.recipient_country or "",), usd or Decimal(0), usd)
        _add(out["gender"], (gender.get(r.src_activity) or "not marked",), usd or Decimal(0), usd)
        _add(out["kind"], ("expenditure",), usd or Decimal(0), usd)
    return {k: [{"key": kk[0], "amount_usd": v[0]} for kk, v in sorted(d.items())]
            for k, d in out.items()}


__all__ = ["TraceResult", "donor_summary", "load_parts", "totals_of", "trace"]
