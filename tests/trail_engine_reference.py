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
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

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
    key: str
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


def _exp(*values: Decimal | None) -> int:
    """The smallest exponent among values, never above -2 (cents)."""
    e = -2
    for v in values:
        if v is not None:
            ve = v.as_tuple().exponent
            if isinstance(ve, int) and ve < e:
                e = ve
    return e


def _units(v: Decimal, e: int) -> int:
    return int(v.scaleb(-e))


def _dec(units: int, e: int) -> Decimal:
    return Decimal(units).scaleb(e)


def _spread(value: Decimal | None, alloc: dict[Origin, int]) -> dict[Origin, Decimal] | None:
    """Split a decimal amount in the proportions of ``alloc`` (exactly, at its own unit)."""
    if value is None:
        return None
    e = _exp(value)
    total = _units(value, e)
    sign = -1 if total < 0 else 1
    shares = split(abs(total), alloc)
    return {k: _dec(sign * v, e) for k, v in shares.items()}


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
    source_reasons = source_reasons or {}
    fixed = fixed or {}
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
            if not mv.terminal and mv.dst != a and mv.dst in indeg and mv.id not in fixed:
                indeg[mv.dst] += 1
    heap = [a for a in todo if indeg[a] == 0]
    heapq.heapify(heap)
    done: set[Account] = set()
    result: dict[int, list[Part]] = {}
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
        _account(a, inflows.get(a, []), outflows[a], source_reasons, fixed, result, done,
                 compute)
        for mv in outflows[a]:
            d = mv.dst
            if not mv.terminal and d != a and d in indeg and d not in done and mv.id not in fixed:
                indeg[d] -= 1
                if indeg[d] == 0:
                    heapq.heappush(heap, d)
    return result


def _account(a: Account, ins: list[Move], outs: list[Move], reasons: dict[Account, str],
             fixed: dict[int, list[Part]], result: dict[int, list[Part]], done: set[Account],
             compute: set[Account]) -> None:
    outs = sorted((mv for mv in outs if mv.id not in fixed), key=lambda mv: mv.key)
    if not ins:
        reason = reasons.get(a)
        origin: Origin = (UNTRACED, reason) if reason else (ORIGINATOR, a[0])
        for mv in outs:
            o = (UNTRACED, NEGATIVE) if mv.amount < 0 else origin
            result[mv.id] = [Part(o, mv.amount, mv.amount_usd, 1)] if mv.amount else []
        return

    def parts_of(mv: Move) -> list[Part]:
        if mv.id in fixed:
            return fixed[mv.id]
        if mv.id in result:
            return result[mv.id]
        if mv.src in compute and mv.src not in done:  # a cycle: not yet attributed
            return [Part((UNTRACED, CIRCULAR), mv.amount, mv.amount_usd, 1)]
        return [Part((ORIGINATOR, mv.src[0]), mv.amount, mv.amount_usd, 1)]

    currencies = {mv.currency for mv in ins} | {mv.currency for mv in outs}
    native = len(currencies) == 1 and None not in currencies

    def value(amount: Decimal | None, usd: Decimal | None) -> Decimal | None:
        return amount if native else usd

    in_parts = {mv.id: parts_of(mv) for mv in ins}
    e = _exp(*(value(p.amount, p.amount_usd) for ps in in_parts.values() for p in ps),
             *(value(mv.amount, mv.amount_usd) for mv in outs))
    depth: dict[Origin, int] = {}
    by_period_in: dict[int, list[Move]] = defaultdict(list)
    for mv in ins:
        by_period_in[mv.period].append(mv)
    by_period_out: dict[int, list[Move]] = defaultdict(list)
    for mv in outs:
        by_period_out[mv.period].append(mv)
    earmarked: dict[tuple[tuple[str, str], Origin], int] = defaultdict(int)
    carried: dict[Origin, int] = defaultdict(int)
    for period in sorted(set(by_period_in) | set(by_period_out)):
        current: dict[Origin, int] = defaultdict(int)
        for mv in sorted(by_period_in.get(period, []), key=lambda mv: mv.key):
            if mv.amount <= 0:
                continue
            tag = _earmark_tag(mv.earmark)
            for p in in_parts[mv.id]:
                v = value(p.amount, p.amount_usd)
                if v is None or v <= 0:
                    continue
                depth[p.origin] = min(depth.get(p.origin, p.depth), p.depth)
                if tag is None:
                    current[p.origin] += _units(v, e)
                else:
                    earmarked[(tag, p.origin)] += _units(v, e)
        for mv in sorted(by_period_out.get(period, []), key=lambda mv: mv.key):
            result[mv.id] = _outflow(mv, native, e, earmarked, current, carried, depth)
        for k, v in current.items():
            if v:
                carried[k] += v


def _earmark_tag(earmark: tuple[str | None, str | None] | None) -> tuple[str, str] | None:
    if earmark is None or (earmark[0] is None and earmark[1] is None):
        return None
    return (earmark[0] or "", earmark[1] or "")


def _matches(tag: tuple[str, str], mv: Move) -> bool:
    country, sector = tag
    return (not country or country == mv.country) and (not sector or sector == mv.sector)


def _take(need: int, pool: dict, alloc: dict[Origin, int], keyof=lambda k: k) -> int:
    """Take up to ``need`` units from ``pool`` pro rata; add to ``alloc``; return taken."""
    if need <= 0 or not pool:
        return 0
    total = sum(pool.values())
    take = min(need, total)
    if take <= 0:
        return 0
    for k, v in split(take, {k: v for k, v in pool.items() if v > 0}).items():
        pool[k] -= v
        alloc[keyof(k)] = alloc.get(keyof(k), 0) + v
    return take


def _outflow(mv: Move, native: bool, e: int, earmarked: dict, current: dict, carried: dict,
             depth: dict[Origin, int]) -> list[Part]:
    if mv.amount == 0:
        return []
    if mv.amount < 0:
        return [Part((UNTRACED, NEGATIVE), mv.amount, mv.amount_usd, 1)]
    v = mv.amount if native else mv.amount_usd
    if v is None:
        return [Part((UNTRACED, NO_RATE), mv.amount, None, 1)]
    need = _units(v, e)
    if need <= 0:  # worth nothing in the weighing currency (USD rounds to 0): cannot weigh
        return [Part((UNTRACED, NO_RATE), mv.amount, mv.amount_usd, 1)]
    alloc: dict[Origin, int] = {}
    matching = {k: u for k, u in earmarked.items() if u > 0 and _matches(k[0], mv)}
    if matching:
        got = _take(need, matching, alloc, keyof=lambda k: k[1])
        for k, u in matching.items():
            earmarked[k] = u
        need -= got
    need -= _take(need, current, alloc)
    need -= _take(need, carried, alloc)
    if need > 0:
        alloc[(UNTRACED, EXCESS)] = alloc.get((UNTRACED, EXCESS), 0) + need
    if native:
        amounts = {k: _dec(u, e) for k, u in alloc.items()}
        # the common case (a USD flow): the USD split is the same split, no second pass
        usd = amounts if mv.amount_usd == mv.amount else _spread(mv.amount_usd, alloc)
    else:
        usd = {k: _dec(u, e) for k, u in alloc.items()}
        amounts = _spread(mv.amount, alloc) or {}
    zero, dget, aget = ZERO, depth.get, amounts.get
    if usd is None:
        return [Part(k, aget(k, zero), None, dget(k, 0) + 1) for k in sorted(alloc)]
    uget = usd.get
    return [Part(k, aget(k, zero), uget(k, zero), dget(k, 0) + 1) for k in sorted(alloc)]
