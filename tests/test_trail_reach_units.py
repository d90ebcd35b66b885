"""The donor rollup summed in integer units equals the same sums done on ``Decimal``.

``reach.rows_from_parts`` (used by the full rebuild) sums the engine's integer parts and
keeps the scale a ``Decimal`` / NUMERIC sum would have. Here the rollup is worked out
the plain way, on the parts as ``Decimal``, exactly as the SQL path groups them
(``_detail_rows`` and ``_sums``), on random graphs with awkward amounts; both must give
the same rows, value and scale.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from test_trail_engine_units import graphs

from fundtrack.derived.trail import reach
from fundtrack.derived.trail.engine import ORIGINATOR, Move, attribute, attribute_units

ZERO = Decimal(0)


def _plain(moves: list[Move], reasons: dict) -> list[tuple]:
    parts = attribute(moves, reasons)
    spent: dict = defaultdict(list)
    into: dict = defaultdict(list)
    out: dict = defaultdict(list)
    for mv in moves:
        for p in parts.get(mv.id, []):
            if p.origin[0] != ORIGINATOR:
                continue
            o = p.origin[1]
            if mv.terminal:
                spent[(o, *mv.src, mv.currency)].append(p)
            else:
                into[(o, *mv.dst)].append(p)
            out[(o, *mv.src)].append(p)
    rows = []
    for (o, org, act, cur), ps in spent.items():
        usds = [p.amount_usd for p in ps]
        usd = sum(usds, ZERO) if None not in usds else None
        rows.append((o, "spent", org, act, cur, sum((p.amount for p in ps), ZERO), usd,
                     usd or ZERO, len(ps), max(p.depth for p in ps)))
    for key in set(into) | set(out):
        o, org, act = key
        i = sum((p.amount_usd for p in into.get(key, []) if p.amount_usd is not None), ZERO)
        x = sum((p.amount_usd for p in out.get(key, []) if p.amount_usd is not None), ZERO)
        held = i - x if org != o and i > x else ZERO
        depth = max(p.depth for p in into.get(key, []) + out.get(key, []))
        rows.append((o, "account", org, act, "USD", held, i, max(i, x), len(out.get(key, [])), depth))
    for o in {r[0] for r in rows}:
        mine = [r for r in rows if r[0] == o]
        for cur in {r[4] for r in mine if r[1] == "spent"}:
            sp = [r for r in mine if r[1] == "spent" and r[4] == cur]
            usd = sum((r[6] for r in sp), ZERO) if all(r[6] is not None for r in sp) else None
            rows.append((o, "spent-sum", "", "", cur, sum((r[5] for r in sp), ZERO), usd, ZERO,
                         len(sp), max(r[9] for r in sp)))
        acc = [r for r in mine if r[1] == "account"]
        held = [r for r in acc if r[5] > 0]
        if held:
            total = sum((r[5] for r in held), ZERO)
            rows.append((o, "held-sum", "", "", "USD", total, total, ZERO, len(held),
                         max(r[9] for r in held)))
        if acc:
            depth = max(r[9] for r in acc)
            rows.append((o, "account-sum", "", "", None, ZERO, None, ZERO, len(acc), depth))
            rows.append((o, "movement-sum", "", "", None, ZERO, None, ZERO, sum(r[8] for r in acc),
                         depth))
    return rows


def _text(rows: list[tuple]) -> list[tuple]:
    return sorted(tuple("None" if v is None else str(v) for v in r) for r in rows)


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_rollup_in_units_equals_decimal_sums(graph):
    rows, reasons = graph
    moves = [Move(**r) for r in rows]
    got = reach.rows_from_parts(moves, attribute_units(moves, reasons))
    as_decimals = [r[:5] + tuple(None if v is None else reach._dec(v) for v in r[5:8]) + r[8:]
                   for r in got]
    assert _text(as_decimals) == _text(_plain(moves, reasons))

