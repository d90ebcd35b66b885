"""The attribution engine in integer units gives exactly what the ``Decimal`` rule gave.

``tests/trail_engine_reference.py`` is the engine as it was before it moved to integer
units (Decimal objects throughout). On random graphs with awkward amounts (more than two
decimals, whole numbers, exponents, zero and negative amounts, missing USD, several
currencies, parts fixed from outside) both must return the same parts, value *and* scale
(``str`` of each ``Decimal``), in the same order.
"""

from __future__ import annotations

from decimal import Decimal

import trail_engine_reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrack.derived.trail import engine

ACCOUNTS = [(f"ORG{i}", f"A{i}") for i in range(6)]
EXPONENTS = [-2, -2, -2, -3, -1, 0, -5, 2]


@st.composite
def amounts(draw, allow_none: bool = False):
    if allow_none and draw(st.integers(0, 6)) == 0:
        return None
    units = draw(st.one_of(st.integers(1, 10**9), st.integers(-10**4, 10**4), st.just(0)))
    return Decimal(units).scaleb(draw(st.sampled_from(EXPONENTS)))


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 20))
    rows = []
    for i in range(n):
        terminal = draw(st.booleans())
        amount = draw(amounts())
        currency = draw(st.sampled_from(["USD", "USD", "USD", "EUR", None]))
        usd = amount if currency == "USD" and draw(st.booleans()) else draw(amounts(allow_none=True))
        rows.append(dict(
            id=i + 1, key=f"k{draw(st.integers(0, 50)):03d}-{i}",
            src=ACCOUNTS[draw(st.integers(0, 4))],
            dst=(f"SUP{i}", "") if terminal else ACCOUNTS[draw(st.integers(0, 5))],
            terminal=terminal, amount=amount, currency=currency, amount_usd=usd,
            period=draw(st.sampled_from([2022, 2023])),
            earmark=draw(st.sampled_from([None, None, ("ML", None), (None, "15170")])),
            country=draw(st.sampled_from([None, "ML", "SN"])),
            sector=draw(st.sampled_from([None, "15170"]))))
    reasons = draw(st.dictionaries(st.sampled_from(ACCOUNTS), st.sampled_from(["broken link"]),
                                   max_size=2))
    return rows, reasons


def _same(old: dict, new: dict) -> None:
    assert list(old) == list(new)
    for mid, ps in old.items():
        got = new[mid]
        assert [(p.origin, str(p.amount), str(p.amount_usd), p.depth) for p in ps] == \
            [(p.origin, str(p.amount), str(p.amount_usd), p.depth) for p in got], mid


@settings(max_examples=600, deadline=None)
@given(graphs())
def test_units_engine_equals_decimal_engine(graph):
    rows, reasons = graph
    _same(ref.attribute([ref.Move(**r) for r in rows], reasons),
          engine.attribute([engine.Move(**r) for r in rows], reasons))


@settings(max_examples=300, deadline=None)
@given(graphs(), st.data())
def test_units_engine_equals_decimal_engine_with_fixed_parts(graph, data):
    rows, reasons = graph
    compute = set(data.draw(st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=4)))
    fixed_ids = [r["id"] for r in rows if r["src"] not in compute]
    fixed = {}
    for mid in fixed_ids:
        fixed[mid] = [ref.Part(("o", data.draw(st.sampled_from(["D1", "D2"]))), data.draw(amounts()),
                               data.draw(amounts(allow_none=True)), data.draw(st.integers(0, 3)))
                      for _ in range(data.draw(st.integers(0, 3)))]
    new_fixed = {mid: [engine.Part(p.origin, p.amount, p.amount_usd, p.depth) for p in ps]
                 for mid, ps in fixed.items()}
    _same(ref.attribute([ref.Move(**r) for r in rows], reasons, fixed=fixed, compute=compute),
          engine.attribute([engine.Move(**r) for r in rows], reasons, fixed=new_fixed, compute=compute))
