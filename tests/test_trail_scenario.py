"""The hand-built scenario, attributed by hand to the cent, in several import orders.

By hand (see docs/methodology.md for the same example in prose). The fund receives
D1 600,000.00 unearmarked, D2 250,000.00 earmarked to Mali (ML) and D2 150,000.00
unearmarked; its unearmarked pool is D1:D2 = 600:150 = 4:1.
- P1 (ML) 300,000.00: D2's earmark first, 250,000.00; the other 50,000.00 pro rata 4:1,
  D1 40,000.00, D2 10,000.00.            P1 = D1 40,000.00 + D2 260,000.00
- P2 (SN) 500,000.00 pro rata 4:1:       P2 = D1 400,000.00 + D2 100,000.00
- P3 (ML) 199,999.99: the earmark is spent; pool left D1 160,000.00, D2 40,000.00 (4:1):
  D1 159,999.992 and D2 39,999.998; in cents 15,999,999 r .2 and 3,999,999 r .8; the one
  cent left goes to the largest remainder, D2.   P3 = D1 159,999.99 + D2 40,000.00
  (0.01 of D1's money stays in the fund.)
- Agency 1, P1 (D1 40,000 : D2 260,000) grants NGO 1 100,000.00: D2 86,666.666.. and
  D1 13,333.333..; the cent to the larger remainder, D2 86,666.67, D1 13,333.33. Its own
  expenditure 200,000.00 takes the rest: D2 173,333.33, D1 26,666.67.
- Agency 2, P2 (4:1) grants NGO 2 250,000.00: D1 200,000.00, D2 50,000.00; spends
  250,000.00: D1 200,000.00, D2 50,000.00.
- NGO 1 spends 100,000.00: D2 86,666.67, D1 13,333.33.
- NGO 2 spends 240,000.00 of its 250,000.00 (4:1): D1 192,000.00, D2 48,000.00.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from sqlalchemy import select

from fundtrack.derived.trail.recompute import recompute
from fundtrack.derived.trail.tables import Attribution, Movement
from fundtrack.ingest.pipeline import import_file
from fundtrack.query.trace import donor_summary, trace
from tests import trail_scenario

D = Decimal
D1, D2 = "XX-DONOR-1", "XX-DONOR-2"

EXPECTED_EXPENDITURE = {
    ("XX-AGENCY-1", "XX-AG1-P1"): {D1: D("26666.67"), D2: D("173333.33")},
    ("XX-AGENCY-1", "XX-AG1-P3"): {D1: D("159999.99"), D2: D("40000.00")},
    ("XX-AGENCY-2", "XX-AG2-P2"): {D1: D("200000.00"), D2: D("50000.00")},
    ("XX-NGO-1", "XX-NGO1-N1"): {D1: D("13333.33"), D2: D("86666.67")},
    ("XX-NGO-2", "XX-NGO2-N2"): {D1: D("192000.00"), D2: D("48000.00")},
}
EXPECTED_TRANSFERS = {
    ("XX-FUND-1", "XX-AG1-P1"): {D1: D("40000.00"), D2: D("260000.00")},
    ("XX-FUND-1", "XX-AG2-P2"): {D1: D("400000.00"), D2: D("100000.00")},
    ("XX-FUND-1", "XX-AG1-P3"): {D1: D("159999.99"), D2: D("40000.00")},
    ("XX-AG1-P1", "XX-NGO1-N1"): {D1: D("13333.33"), D2: D("86666.67")},
    ("XX-AG2-P2", "XX-NGO2-N2"): {D1: D("200000.00"), D2: D("50000.00")},
}

NAMES = list(trail_scenario.files())
ORDERS = [NAMES, NAMES[::-1], ["ngo2.xml", "fund.xml", "donor2.xml", "agency1.xml",
                                "ngo1.xml", "donor1.xml", "agency2.xml"],
          list(itertools.permutations(NAMES))[2000]]


def snapshot(engine) -> tuple[dict, dict, int, int]:
    """Attribution keyed by content (never ids): (expenditure, transfers, movements, pairs)."""
    t, a = Movement.__table__, Attribution.__table__
    exp: dict = {}
    tr: dict = {}
    with engine.connect() as c:
        rows = c.execute(select(t.c.kind, t.c.src_org, t.c.src_activity, t.c.dst_activity,
                                a.c.originator_ref, a.c.untraced_reason, a.c.amount)
                         .select_from(a.join(t, t.c.id == a.c.movement_id))).all()
        n = c.execute(select(t.c.id, t.c.mirror_flow_id)).all()
    for kind, so, sa_, da, orig, reason, amount in rows:
        who = orig or f"untraced:{reason}"
        d = exp.setdefault((so, sa_), {}) if kind == "expenditure" else tr.setdefault((sa_, da), {})
        d[who] = d.get(who, D(0)) + amount
    return exp, tr, len(n), sum(1 for _, mirror in n if mirror)


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-".join(x[:3] for x in o))
def test_scenario_by_hand_in_any_order(engine, tmp_path, order):
    paths = trail_scenario.write(tmp_path)
    for name in order:
        assert import_file(engine, paths[name]).status == "applied"
    exp, tr, n_moves, n_pairs = snapshot(engine)
    assert exp == EXPECTED_EXPENDITURE
    for key, parts in EXPECTED_TRANSFERS.items():
        assert tr[key] == parts, key
    # double counting: 10 reported transfers + 7 mirrors + 5 expenditures = 13 movements
    assert (n_moves, n_pairs) == (13, 7)
    # a full rebuild gives exactly what the incremental updates gave
    with engine.begin() as c:
        recompute(c)
    assert snapshot(engine) == (exp, tr, n_moves, n_pairs)


def test_scenario_traces(engine, tmp_path):
    paths = trail_scenario.write(tmp_path)
    for p in paths.values():
        import_file(engine, p)
    with engine.connect() as c:
        up = trace(c, activity="XX-NGO2-N2", direction="UPSTREAM")
        assert {(o["organization"], o["amount"]) for o in up.originators} == {
            (D1, D("200000.00")), (D2, D("50000.00"))}
        assert up.untraced == []
        down = trace(c, organization=D1, direction="DOWNSTREAM")
        assert {(t["organization"], t["activity"], t["amount"]) for t in down.terminals} == {
            (k[0], k[1], v[D1]) for k, v in EXPECTED_EXPENDITURE.items()}
        held = {(u["organization"], u["amount"]) for u in down.untraced}
        assert held == {("XX-FUND", D("0.01")), ("XX-NGO-2", D("8000.00"))}
        # from the fund: all of its outflows, whoever paid
        fund = trace(c, activity="XX-FUND-1", direction="DOWNSTREAM")
        total = sum((t["amount"] for t in fund.terminals), D(0))
        assert total == D("999999.99") - D("10000.00")
        # depth limit: the donor's own outflow is depth 1, fund -> agency 2, ...
        shallow = trace(c, organization=D1, direction="DOWNSTREAM", max_depth=3)
        assert {t["activity"] for t in shallow.terminals} == {"XX-AG1-P1", "XX-AG1-P3",
                                                               "XX-AG2-P2"}
        summary = donor_summary(c, D2)
        assert sum(x["amount_usd"] for x in summary["recipient"]) == D("398000.00")


def test_revert_restores_attribution(engine, tmp_path):
    paths = trail_scenario.write(tmp_path)
    for p in paths.values():
        import_file(engine, p)
    before = snapshot(engine)
    extra = tmp_path / "ngo2b.xml"
    extra.write_text(paths["ngo2.xml"].read_text().replace("240000.00", "250000.00"))
    res = import_file(engine, extra)
    from fundtrack.ingest.pipeline import revert_batch
    exp, *_ = snapshot(engine)
    assert exp[("XX-NGO-2", "XX-NGO2-N2")] == {D1: D("200000.00"), D2: D("50000.00")}
    revert_batch(engine, res.batch_id)
    assert snapshot(engine) == before
