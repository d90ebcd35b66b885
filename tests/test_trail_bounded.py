"""Bounded traces: the donor rollup (``trail_reach``) against the parts it sums.

The rollup must give exactly what summing ``attribution`` gives (the slower path every
depth-limited trace still takes), after incremental imports in any order as after a
full rebuild; and capped lists must be the largest items, with exact totals beside.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from fundtrack.api.testing import Api
from fundtrack.derived.trail import reach
from fundtrack.derived.trail.recompute import recompute
from fundtrack.derived.trail.tables import Reach
from fundtrack.ingest.pipeline import import_file
from fundtrack.query.trace import _donor_downstream, _finish, trace
from tests import trail_scenario

D = Decimal
D1, D2 = "XX-DONOR-1", "XX-DONOR-2"


def reach_rows(engine) -> dict:
    r = Reach.__table__
    with engine.connect() as c:
        return {(x.originator_ref, x.kind, x.org, x.activity, x.currency):
                (x.amount, x.amount_usd, x.rank, x.n, x.depth)
                for x in c.execute(select(r))}


def _key(rows: list[dict]) -> list[tuple]:
    return sorted(tuple(sorted((k, str(v)) for k, v in r.items() if k != "id")) for r in rows)


def test_rollup_equals_summed_parts_in_any_order(engine, tmp_path):
    paths = trail_scenario.write(tmp_path)
    for name in ["ngo2.xml", "fund.xml", "donor2.xml", "agency1.xml", "ngo1.xml",
                 "donor1.xml", "agency2.xml"]:
        assert import_file(engine, paths[name]).status == "applied"
    incremental = reach_rows(engine)
    with engine.begin() as c:
        recompute(c)  # the rollup from the parts in memory
    assert reach_rows(engine) == incremental
    with engine.begin() as c:
        reach.rebuild(c)  # the rollup from the stored parts, in SQL
    assert reach_rows(engine) == incremental
    # by hand (docs/methodology.md): D1 spent 591,999.99 in five places, 8,000.00 + 0.01 held
    assert incremental[(D1, "spent-sum", "", "", "USD")][:2] == (D("591999.99"), D("591999.99"))
    assert incremental[(D1, "held-sum", "", "", "USD")][0] == D("8000.01")
    assert incremental[(D1, "spent-sum", "", "", "USD")][3] == 5
    with engine.connect() as c:
        for donor in (D1, D2):
            fast = trace(c, organization=donor, direction="DOWNSTREAM", max_depth=6)
            slow = _finish(_donor_downstream(c, donor, 6), None)
            assert fast.counts == slow.counts
            assert fast.totals == slow.totals
            assert sorted(fast.accounts) == sorted(slow.accounts)
            for name in ("terminals", "untraced"):
                assert _key(getattr(fast, name)) == _key(getattr(slow, name)), name
            assert sorted((m["id"], m["amount"], m["depth"]) for m in fast.movements) == \
                sorted((m["id"], m["amount"], m["depth"]) for m in slow.movements)
        # D1's deepest part is depth 4 (expenditure at an NGO): depth 3 takes the exact path
        cut = trace(c, organization=D1, direction="DOWNSTREAM", max_depth=3)
        assert cut.counts["terminals"] == 3
        assert cut.totals["terminals"][0]["amount"] == D("386666.66")


def test_capped_lists_are_the_largest_with_exact_totals(engine, db_url, tmp_path):
    for p in trail_scenario.write(tmp_path).values():
        assert import_file(engine, p).status == "applied"
    with engine.connect() as c:
        top = trace(c, organization=D1, direction="DOWNSTREAM", limit=2)
        full = trace(c, organization=D1, direction="DOWNSTREAM")
    assert [(t["activity"], t["amount"]) for t in top.terminals] == [
        ("XX-AG2-P2", D("200000.00")), ("XX-NGO2-N2", D("192000.00"))]
    assert top.counts == full.counts and top.counts["terminals"] == 5
    assert top.totals == full.totals
    assert len(top.movements) == 2 and top.counts["movements"] == len(full.movements) == 11
    assert top.movements[0]["amount"] == D("600000.00")  # D1 -> the fund, the largest
    api = Api(db_url)
    got = api.query("""{ trace(from: {organization: "XX-DONOR-1"}) {
        terminals(first: 2) { activity { iatiIdentifier } amount currency }
        terminalsCount terminalsTotal { amount currency amountUsd }
        untraced { amount currency reason } untracedCount
        movements(first: 1) { amount } movementsCount accountsCount } }""")["trace"]
    assert [t["activity"]["iatiIdentifier"] for t in got["terminals"]] == ["XX-AG2-P2",
                                                                         "XX-NGO2-N2"]
    assert got["terminalsCount"] == 5
    assert [(D(x["amount"]), x["currency"]) for x in got["terminalsTotal"]] == [
        (D("591999.99"), "USD")]
    assert [D(u["amount"]) for u in got["untraced"]] == [D("8000.00"), D("0.01")]
    assert (got["movementsCount"], len(got["movements"])) == (11, 1)
    assert got["accountsCount"] == len(full.accounts)
    up = api.query("""{ trace(from: {activity: "XX-NGO2-N2"}, direction: UPSTREAM) {
        originators(first: 1) { organization { ref } amount currency amountUsd }
        originatorsCount originatorsTotal { amount currency } } }""")["trace"]
    assert [o["organization"]["ref"] for o in up["originators"]] == [D1]
    assert up["originatorsCount"] == 2
    assert D(up["originatorsTotal"][0]["amount"]) == D("250000.00")
    bad = api.raw("""{ trace(from: {organization: "XX-DONOR-1"}) {
        terminals(first: 501) { amount } } }""")
    assert "first must be between 0 and 500" in bad["errors"][0]["message"]


def test_rollup_follows_a_changed_report_and_its_revert(engine, db_url, tmp_path):
    from fundtrack.ingest.pipeline import revert_batch

    paths = trail_scenario.write(tmp_path)
    for p in paths.values():
        import_file(engine, p)
    before = reach_rows(engine)
    extra = tmp_path / "ngo2b.xml"  # NGO 2 now reports spending all it received
    extra.write_text(paths["ngo2.xml"].read_text().replace("240000.00", "250000.00"))
    res = import_file(engine, extra)
    changed = reach_rows(engine)
    assert changed[(D1, "spent", "XX-NGO-2", "XX-NGO2-N2", "USD")][0] == D("200000.00")
    assert changed[(D1, "held-sum", "", "", "USD")][0] == D("0.01")
    with engine.begin() as c:
        recompute(c)
    assert reach_rows(engine) == changed
    revert_batch(engine, res.batch_id)
    assert reach_rows(engine) == before
    api = Api(db_url)
    got = api.query("""query($n: Int!) { trace(from: {organization: "XX-DONOR-2"}) {
        terminals(first: $n) { amount } terminalsCount movements(first: 0) { amount }
        movementsCount } }""", {"n": 1})["trace"]
    assert [D(t["amount"]) for t in got["terminals"]] == [D("173333.33")]
    # D2: two contributions (earmarked, not), 3 fund grants, 2 sub-grants, 5 expenditures
    assert (got["terminalsCount"], got["movements"], got["movementsCount"]) == (5, [], 12)
