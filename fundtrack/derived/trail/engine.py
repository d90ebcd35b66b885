"""The attribution rule, in one place, on plain data (no database).

An *account* is (organisation ref, activity identifier or ''). Money enters an account by
its inflows (movements whose destination it is) and leaves by its outflows (transfers
and expenditure). Accounts are processed upstream before downstream; at each account:

1. earmarked contributions (inflows with an earmark that names a recipient country
   and/or sector) are attributed first to the outflows that match their earmark;
2. the rest of each outflow is attributed to donors pro rata to the unearmarked
   contributions to that account in the same period (calendar year of the value date);
   only when those are used up does it draw, again pro rata, on what earlier periods left
   unspent; what is still missing is untraced: "outflow exceeding inflow";
3. an inflow's money is itself split by originating donor, so the rule applies
   recursively downstream to expenditure;
4. arithmetic is in exact integers of the smallest unit involved (at least the cent);
   every split uses the largest remainder (ties by key), so the parts of each flow sum to
   the flow exactly and no donor ever leaves an account with more than it brought;
5. money that cannot be traced keeps a reason, carried downstream like a donor.

An account with no inflows is where money originates: its organisation is the donor,
unless there is a reason to think otherwise (``source_reasons``: a broken link, a pooled
fund with no contributions reported ...), in which case its outflows are untraced.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Account = tuple[str, str]
Origin = tuple[str, str]  # ("o", org ref) donor | ("u", reason) untraced

ORIGINATOR = "o"
UNTRACED = "u"
EXCESS = "outflow exceeding inflow"
NO_RATE = "currency without rate"
CIRCULAR = "circular flow"
NEGATIVE = "negative amount (correction)"
ZERO = Decimal(0)


@dataclass(slots=True)
class Move:
    id: int
    key: str | int  # orders an account's movements; a full rebuild's are ranks of the keys
    src: Account
    dst: Account
    terminal: bool
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None
    period: int = 0
    earmark: tuple[str | None, str | None] | None = None
    country: str | None = None
    sector: str | None = None


@dataclass(slots=True)
class Part:
    origin: Origin
    amount: Decimal
    amount_usd: Decimal | None
    depth: int = 1


class Parts:
    """The parts of one movement in integer units (the engine's own form, no ``Decimal``).

    ``items``: (origin, amount units, USD units or None, depth). Computed parts share one
    exponent per column (``a_exp``, ``u_exp``), and a unit count of 0 there stands for the
    plain ``Decimal(0)`` the rule gives a donor whose share of that column rounds to
    nothing. Parts taken as given (a movement attributed whole to one origin, or parts
    read back from the database) keep their exact ``Decimal`` values in ``given``.
    """

    __slots__ = ("a_exp", "u_exp", "items", "given")

    def __init__(self, a_exp: int, u_exp: int, items: list[tuple[Origin, int, int | None, int]],
                 given: list[Part] | None = None) -> None:
        self.a_exp = a_exp
        self.u_exp = u_exp
        self.items = items
        self.given = given

    def decimals(self) -> list[Part]:
        """The same parts as ``Decimal`` (what :func:`attribute` returns)."""
        if self.given is not None:
            return self.given
        ae, ue = self.a_exp, self.u_exp
        return [Part(o, _dec(a, ae) if a else ZERO, None if u is None else _dec(u, ue) if u else ZERO, d)
                for o, a, u, d in self.items]


def given_parts(parts: list[Part]) -> Parts:
    return Parts(0, 0, [], parts)


def split(total: int, weights: dict[Origin, int]) -> dict[Origin, int]:
    """Split ``total`` units pro rata to integer ``weights`` by largest remainder.

    Each share is at most its weight when ``total`` <= sum of weights; shares sum to total.
    """
    whole = sum(weights.values())
    if total == 0 or whole <= 0:
        return {}
    shares: dict[Origin, int] = {}
    rems: list[tuple[int, Origin]] = []
    given = 0
    for k in sorted(weights):
        w = weights[k]
        if w <= 0:
            continue
        q, r = divmod(total * w, whole)
        shares[k] = q
        given += q
        rems.append((-r, k))
    rems.sort()
    for _, k in rems[: total - given]:
        shares[k] += 1
    return {k: v for k, v in shares.items() if v}


def _units(v: Decimal, e: int) -> int:
    return int(v.scaleb(-e))


def _dec(units: int, e: int) -> Decimal:
    return Decimal(units).scaleb(e)


def units_exp(v: Decimal) -> tuple[int, int]:
    """(units, exponent) of a decimal exactly: ``v == units * 10**exponent``."""
    t = str(v)
    if "E" not in t:  # fixed point (the usual form): read the digits
        i = t.find(".")
        return (int(t), 0) if i < 0 else (int(t[:i] + t[i + 1:]), i + 1 - len(t))
    e = v.as_tuple().exponent
    if not isinstance(e, int):
        raise ValueError(f"not a finite amount: {v}")
    return int(v.scaleb(-e)), e


class _Num:
    """A movement's amounts as integers, computed once per :func:`attribute` call."""

    __slots__ = ("a", "a_exp", "u", "u_exp", "same", "tag")

    def __init__(self, mv: Move) -> None:
        self.a, self.a_exp = units_exp(mv.amount)
        usd = mv.amount_usd
        if usd is None:
            self.u, self.u_exp = None, 0
        elif usd is mv.amount:
            self.u, self.u_exp = self.a, self.a_exp
        else:
            self.u, self.u_exp = units_exp(usd)
        self.same = usd == mv.amount
        self.tag = _earmark_tag(mv.earmark)


def _whole(mv: Move, origin: Origin, usd: bool = True) -> Parts:
    """The whole movement to one origin, its amounts as reported."""
    return given_parts([Part(origin, mv.amount, mv.amount_usd if usd else None, 1)])


EMPTY = Parts(-2, -2, [])


def attribute(
    moves: Iterable[Move],
    source_reasons: dict[Account, str] | None = None,
    *,
    fixed: dict[int, list[Part]] | None = None,
    compute: set[Account] | None = None,
) -> dict[int, list[Part]]:
    """Attribute every movement leaving an account in ``compute`` (default: all).

    ``fixed``: parts already known for movements entering from outside ``compute``
    (incremental updates and traces use it). Returns parts for computed movements.
    """
    return {mid: ps.decimals() for mid, ps in
            attribute_units(moves, source_reasons, fixed=fixed, compute=compute).items()}


def attribute_units(
    moves: Iterable[Move],
    source_reasons: dict[Account, str] | None = None,
    *,
    fixed: dict[int, list[Part]] | None = None,
    compute: set[Account] | None = None,
) -> dict[int, Parts]:
    """:func:`attribute`, the parts left in integer units (bulk writers format them)."""
    return {mv.id: ps for mv, ps in _attribute(moves, source_reasons, fixed, compute, False)}


def attribute_stream(moves: Iterable[Move], source_reasons: dict[Account, str] | None = None
                     ) -> Iterator[tuple[Move, Parts]]:
    """:func:`attribute_units` of every account (a full rebuild), each movement's parts
    given out as soon as no account left to do reads them: at once for spending and for
    transfers into an account that passes nothing on (or was done before, in a cycle),
    else when the account they enter is done. What is held is the parts still waiting
    for their account, not every part of the ledger (61M at 10M flows)."""
    return _attribute(moves, source_reasons, None, None, True)


def _attribute(moves: Iterable[Move], source_reasons: dict[Account, str] | None,
               fixed: dict[int, list[Part]] | None, compute: set[Account] | None,
               release: bool) -> Iterator[tuple[Move, Parts]]:
    """The rule over accounts in upstream order; ``release``: give out each movement's
    parts as soon as they are final and unread (see :func:`attribute_stream`), else all at
    the end, in the order they were computed."""
    source_reasons = source_reasons or {}
    fixed_parts = {mid: given_parts(ps) for mid, ps in (fixed or {}).items()}
    moves = list(moves)
    inflows: dict[Account, list[Move]] = defaultdict(list)
    outflows: dict[Account, list[Move]] = defaultdict(list)
    for mv in moves:
        outflows[mv.src].append(mv)
        if not mv.terminal and mv.dst != mv.src:
            inflows[mv.dst].append(mv)
    if compute is None:
        compute = set(outflows)
    todo = sorted(a for a in compute if a in outflows)
    # Kahn's order over computed accounts; cycles are broken at the smallest account key.
    indeg: dict[Account, int] = dict.fromkeys(todo, 0)
    for a in todo:
        for mv in outflows[a]:
            if not mv.terminal and mv.dst != a and mv.dst in indeg and mv.id not in fixed_parts:
                indeg[mv.dst] += 1
    heap = [a for a in todo if indeg[a] == 0]
    heapq.heapify(heap)
    done: set[Account] = set()
    result: dict[int, Parts] = {}
    num: dict[int, _Num] = {}
    order: list[Move] = []
    cursor = 0
    while len(done) < len(todo):
        if heap:
            a = heapq.heappop(heap)
            if a in done:
                continue
        else:
            while todo[cursor] in done:
                cursor += 1
            a = todo[cursor]
        done.add(a)
        outs = outflows[a]
        _account(a, inflows.get(a, []), outs, source_reasons, fixed_parts, result, done,
                 compute, num)
        if release:
            # the inflows were read for the last time; outflows nobody reads go now
            for mv in inflows.pop(a, ()):
                ps = result.pop(mv.id, None)
                num.pop(mv.id, None)
                if ps is not None:
                    yield mv, ps
            for mv in outs:
                d = mv.dst
                if mv.terminal or d == a or d not in indeg or d in done:
                    ps = result.pop(mv.id, None)
                    num.pop(mv.id, None)
                    if ps is not None:
                        yield mv, ps
            del outflows[a]
        else:
            order.extend(outs)
        for mv in outs:
            d = mv.dst
            if (not mv.terminal and d != a and d in indeg and d not in done
                    and mv.id not in fixed_parts):
                indeg[d] -= 1
                if indeg[d] == 0:
                    heapq.heappush(heap, d)
    if release:
        for mv in moves:  # none should be left; any that is goes out as computed
            ps = result.pop(mv.id, None)
            if ps is not None:
                yield mv, ps
        return
    # in the order the parts were computed (the order the dict was filled before)
    by_id = {mv.id: mv for mv in order}
    for mid, ps in result.items():
        yield by_id[mid], ps


def _key(mv: Move) -> str | int:
    return mv.key


def _account(a: Account, ins: list[Move], outs: list[Move], reasons: dict[Account, str],
             fixed: dict[int, Parts], result: dict[int, Parts], done: set[Account],
             compute: set[Account], num: dict[int, _Num]) -> None:
    if fixed:
        outs = [mv for mv in outs if mv.id not in fixed]
    if len(outs) > 1:
        outs = sorted(outs, key=_key)
    if not ins:
        reason = reasons.get(a)
        origin: Origin = (UNTRACED, reason) if reason else (ORIGINATOR, a[0])
        for mv in outs:
            if mv.amount:
                result[mv.id] = _whole(mv, (UNTRACED, NEGATIVE) if mv.amount < 0 else origin)
            else:
                result[mv.id] = EMPTY
        return
    in_parts: dict[int, Parts] = {}
    for mv in ins:
        ps = fixed.get(mv.id) if fixed else None
        if ps is None:
            ps = result.get(mv.id)
            if ps is None:
                ps = _unattributed(mv, compute, done)
        in_parts[mv.id] = ps
        if mv.id not in num:
            num[mv.id] = _Num(mv)
    for mv in outs:
        if mv.id not in num:
            num[mv.id] = _Num(mv)
    cur = ins[0].currency
    native = (cur is not None and all(mv.currency == cur for mv in ins)
              and all(mv.currency == cur for mv in outs))
    # the unit of this account: the smallest exponent of any value weighed here (<= cents)
    e = -2
    for ps in in_parts.values():
        if ps.given is not None:
            for p in ps.given:
                v = p.amount if native else p.amount_usd
                if v is not None:
                    ve = v.as_tuple().exponent
                    if isinstance(ve, int) and ve < e:
                        e = ve
        else:
            ve = ps.a_exp if native else ps.u_exp
            if ve < e and any(it[1 if native else 2] for it in ps.items):
                e = ve
    for mv in outs:
        n = num[mv.id]
        if native:
            if n.a_exp < e:
                e = n.a_exp
        elif n.u is not None and n.u_exp < e:
            e = n.u_exp
    periods = {mv.period for mv in ins}
    periods.update(mv.period for mv in outs)
    if len(periods) == 1:
        steps = [(sorted(ins, key=_key) if len(ins) > 1 else ins, outs)]
    else:
        steps = [(sorted((mv for mv in ins if mv.period == p), key=_key),
                  [mv for mv in outs if mv.period == p]) for p in sorted(periods)]
    depth: dict[Origin, int] = {}
    earmarked: dict[tuple[tuple[str, str], Origin], int] = {}
    carried: dict[Origin, int] = {}
    last = len(steps) - 1
    for step, (period_ins, period_outs) in enumerate(steps):
        current: dict[Origin, int] = {}
        for mv in period_ins:
            n = num[mv.id]
            if n.a <= 0:
                continue
            tag = n.tag
            pool = current if tag is None else earmarked
            for o, v, d in _weighed(in_parts[mv.id], native, e):
                dd = depth.get(o)
                if dd is None or d < dd:
                    depth[o] = d
                k = o if tag is None else (tag, o)
                pool[k] = pool.get(k, 0) + v
        for mv in period_outs:
            result[mv.id] = _outflow(mv, num[mv.id], native, e, earmarked, current, carried, depth)
        if step < last:
            for k, v in current.items():
                if v:
                    carried[k] = carried.get(k, 0) + v


def _unattributed(mv: Move, compute: set[Account], done: set[Account]) -> Parts:
    """An inflow nobody attributed: from a cycle, or from outside the computed accounts."""
    if mv.src in compute and mv.src not in done:  # a cycle: not yet attributed
        return _whole(mv, (UNTRACED, CIRCULAR))
    return _whole(mv, (ORIGINATOR, mv.src[0]))


def _weighed(ps: Parts, native: bool, e: int) -> list[tuple[Origin, int, int]]:
    """(origin, units at exponent ``e``, depth) of the positive parts, in the weighing column."""
    if ps.given is not None:
        out = []
        for p in ps.given:
            v = p.amount if native else p.amount_usd
            if v is None or v <= 0:
                continue
            out.append((p.origin, _units(v, e), p.depth))
        return out
    if native:
        f = 10 ** (ps.a_exp - e)
        return [(o, a * f, d) for o, a, _, d in ps.items if a > 0]
    f = 10 ** (ps.u_exp - e)
    return [(o, u * f, d) for o, _, u, d in ps.items if u is not None and u > 0]


def _earmark_tag(earmark: tuple[str | None, str | None] | None) -> tuple[str, str] | None:
    if earmark is None or (earmark[0] is None and earmark[1] is None):
        return None
    return (earmark[0] or "", earmark[1] or "")


def _matches(tag: tuple[str, str], mv: Move) -> bool:
    country, sector = tag
    return (not country or country == mv.country) and (not sector or sector == mv.sector)


def _take(need: int, pool: dict, alloc: dict[Origin, int], keyof: Any = None) -> int:
    """Take up to ``need`` units from ``pool`` pro rata; add to ``alloc``; return taken.

    The same largest-remainder split as :func:`split` (ties by pool key), inlined: this
    runs for every movement of the ledger. Pool values are never negative."""
    if need <= 0 or not pool:
        return 0
    total = sum(pool.values())
    take = need if need < total else total
    if take <= 0:
        return 0
    get = alloc.get
    if take == total:  # everything: each share is its weight, no remainders
        for k, w in pool.items():
            if w:
                o = k if keyof is None else keyof(k)
                alloc[o] = get(o, 0) + w
                pool[k] = 0
        return take
    rems: list = []
    given = 0
    for k, w in pool.items():
        if w:
            q, r = divmod(take * w, total)
            if q:
                pool[k] = w - q
                o = k if keyof is None else keyof(k)
                alloc[o] = get(o, 0) + q
                given += q
            if r:
                rems.append((-r, k))
    left = take - given
    if left:
        rems.sort()
        for _, k in rems[:left]:
            pool[k] -= 1
            o = k if keyof is None else keyof(k)
            alloc[o] = get(o, 0) + 1
    return take


def _origin(key: tuple[tuple[str, str], Origin]) -> Origin:
    return key[1]


def _spread(units: int, exp: int, alloc: dict[Origin, int]) -> tuple[int, dict[Origin, int]]:
    """Split an amount in the proportions of ``alloc``, exactly, at its own unit (<= cents):
    (exponent, signed units per origin; an origin whose share rounds to 0 is left out)."""
    e = min(exp, -2)
    total = units * 10 ** (exp - e)
    if total < 0:
        return e, {k: -v for k, v in split(-total, alloc).items()}
    return e, split(total, alloc)


def _outflow(mv: Move, n: _Num, native: bool, e: int, earmarked: dict, current: dict,
             carried: dict, depth: dict[Origin, int]) -> Parts:
    if n.a == 0:
        return EMPTY
    if n.a < 0:
        return _whole(mv, (UNTRACED, NEGATIVE))
    if native:
        need = n.a * 10 ** (n.a_exp - e)
    elif n.u is None:
        return _whole(mv, (UNTRACED, NO_RATE), usd=False)
    else:
        need = n.u * 10 ** (n.u_exp - e)
    if need <= 0:  # worth nothing in the weighing currency (USD rounds to 0): cannot weigh
        return _whole(mv, (UNTRACED, NO_RATE))
    alloc: dict[Origin, int] = {}
    matching = {k: u for k, u in earmarked.items() if u > 0 and _matches(k[0], mv)} if earmarked else None
    if matching:
        got = _take(need, matching, alloc, keyof=_origin)
        for k, u in matching.items():
            earmarked[k] = u
        need -= got
    need -= _take(need, current, alloc)
    if carried and need > 0:
        need -= _take(need, carried, alloc)
    if need > 0:
        alloc[(UNTRACED, EXCESS)] = alloc.get((UNTRACED, EXCESS), 0) + need
    dget = depth.get
    if native:
        if n.same:  # the common case (a USD flow): the USD split is the same split
            return Parts(e, e, [(k, v, v, dget(k, 0) + 1) for k, v in sorted(alloc.items())])
        if n.u is None:
            return Parts(e, e, [(k, v, None, dget(k, 0) + 1) for k, v in sorted(alloc.items())])
        ue, usd = _spread(n.u, n.u_exp, alloc)
        uget = usd.get
        return Parts(e, ue, [(k, v, uget(k, 0), dget(k, 0) + 1) for k, v in sorted(alloc.items())])
    ae, amounts = _spread(n.a, n.a_exp, alloc)
    aget = amounts.get
    return Parts(ae, e, [(k, aget(k, 0), v, dget(k, 0) + 1) for k, v in sorted(alloc.items())])
