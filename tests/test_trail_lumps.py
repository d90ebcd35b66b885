"""Lump matching (docs/methodology.md, "Lumps"): one report matched to several on the
other side, worked out by hand, in several import orders, incremental = full rebuild.

All USD, 2023, tolerance 2 %, window 90 days (the defaults).

- XX-LD disburses 1,000,000.00 (1 Mar) to XX-LN, which reports three incoming funds
  from it in three activities: 300,000.00 (LN-1, 5 Mar), 300,000.00 (LN-2, 20 Mar),
  395,000.00 (LN-3, 10 Apr): 995,000.00, 0.5 % off. One lump, three movements, the
  disbursement split 300 : 300 : 395. In cents 100,000,000 x 300/995 = 30,150,753.77 (twice)
  and x 395/995 = 39,698,492.46; the floors leave 2 cents, which go to the two largest
  remainders (.77, .77): 301,507.54 + 301,507.54 + 396,984.92 = 1,000,000.00.
- XX-LD disburses 100,000.00 (1 May) to XX-LM, which reports 40,000.00 + 55,000.00 =
  95,000.00 (5 % off): a near miss, all three stay single movements.
- XX-TD pays XX-TN three tranches, 100,000.00 (10 Jan), 100,000.00 (10 Feb), 50,000.00
  (10 Mar); XX-TN reports one receipt of 250,000.00 (15 Mar): three movements of the
  tranches' amounts, each mirrored by the one receipt.
- Ambiguous: XX-AD disburses 1,000.00 (1 Mar) to XX-AN, which reports 500.00 on 2, 3 and
  20 Mar. Any two fit exactly; the closest dates win (2 and 3 Mar); 20 Mar stays single.
Expenditure: LN-1 300,000.00, LN-2 250,000.00, LN-3 395,000.00, TN-1 250,000.00.
"""

from __future__ import annotations

import itertools
import random
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from fundtrack.derived.trail.config import TrailConfig
from fundtrack.derived.trail.movements import CashFlow, build_rows, split_exact
from fundtrack.derived.trail.recompute import recompute
from fundtrack.derived.trail.tables import Attribution, Movement
from fundtrack.ingest.pipeline import import_file
from fundtrack.query.trace import trace
from fundtrack.records import FlowKind
from tests.trail_scenario import HEAD, activity, tx

D = Decimal


def files() -> dict[str, str]:
    out = {
        "ldonor.xml": activity("XX-LD", "XX-LD-A", [
            tx(3, "1000000.00", "2023-03-01", receiver="XX-LN"),
            tx(3, "100000.00", "2023-05-01", receiver="XX-LM")]),
        "lngo.xml": activity("XX-LN", "XX-LN-1", [
            tx(1, "300000.00", "2023-03-05", provider="XX-LD", provider_act="XX-LD-A"),
            tx(4, "300000.00", "2023-06-01")], org_type="22")
        + activity("XX-LN", "XX-LN-2", [
            tx(1, "300000.00", "2023-03-20", provider="XX-LD", provider_act="XX-LD-A"),
            tx(4, "250000.00", "2023-06-01")], org_type="22")
        + activity("XX-LN", "XX-LN-3", [
            tx(1, "395000.00", "2023-04-10", provider="XX-LD", provider_act="XX-LD-A"),
            tx(4, "395000.00", "2023-06-01")], org_type="22"),
        "mngo.xml": activity("XX-LM", "XX-LM-1", [
            tx(1, "40000.00", "2023-05-03", provider="XX-LD"),
            tx(1, "55000.00", "2023-05-10", provider="XX-LD")], org_type="22"),
        "tdonor.xml": activity("XX-TD", "XX-TD-A", [
            tx(3, "100000.00", "2023-01-10", receiver="XX-TN", receiver_act="XX-TN-1"),
            tx(3, "100000.00", "2023-02-10", receiver="XX-TN", receiver_act="XX-TN-1"),
            tx(3, "50000.00", "2023-03-10", receiver="XX-TN", receiver_act="XX-TN-1")]),
        "tngo.xml": activity("XX-TN", "XX-TN-1", [
            tx(1, "250000.00", "2023-03-15", provider="XX-TD", provider_act="XX-TD-A"),
            tx(4, "250000.00", "2023-06-01")], org_type="22"),
        "adonor.xml": activity("XX-AD", "XX-AD-A", [
            tx(3, "1000.00", "2023-03-01", receiver="XX-AN")]),
        "ango.xml": activity("XX-AN", "XX-AN-1", [
            tx(1, "500.00", "2023-03-20", provider="XX-AD"),
            tx(1, "500.00", "2023-03-02", provider="XX-AD"),
            tx(1, "500.00", "2023-03-03", provider="XX-AD")], org_type="22"),
    }
    return {name: HEAD + body + "\n</iati-activities>\n" for name, body in out.items()}


# (method, src account, dst account, amount, canonical (date, amount), mirror (date, amount))
LN, TN = ("XX-LN", ""), ("XX-TN", "XX-TN-1")
EXPECTED_TRANSFERS = sorted([
    ("lump", ("XX-LD", "XX-LD-A"), ("XX-LN", "XX-LN-1"), D("301507.54"),
     ("2023-03-01", D("1000000.00")), ("2023-03-05", D("300000.00"))),
    ("lump", ("XX-LD", "XX-LD-A"), ("XX-LN", "XX-LN-2"), D("301507.54"),
     ("2023-03-01", D("1000000.00")), ("2023-03-20", D("300000.00"))),
    ("lump", ("XX-LD", "XX-LD-A"), ("XX-LN", "XX-LN-3"), D("396984.92"),
     ("2023-03-01", D("1000000.00")), ("2023-04-10", D("395000.00"))),
    ("single", ("XX-LD", "XX-LD-A"), ("XX-LM", ""), D("100000.00"),
     ("2023-05-01", D("100000.00")), None),
    ("single", ("XX-LD", ""), ("XX-LM", "XX-LM-1"), D("40000.00"),
     ("2023-05-03", D("40000.00")), None),
    ("single", ("XX-LD", ""), ("XX-LM", "XX-LM-1"), D("55000.00"),
     ("2023-05-10", D("55000.00")), None),
    ("lump", ("XX-TD", "XX-TD-A"), TN, D("100000.00"),
     ("2023-01-10", D("100000.00")), ("2023-03-15", D("250000.00"))),
    ("lump", ("XX-TD", "XX-TD-A"), TN, D("100000.00"),
     ("2023-02-10", D("100000.00")), ("2023-03-15", D("250000.00"))),
    ("lump", ("XX-TD", "XX-TD-A"), TN, D("50000.00"),
     ("2023-03-10", D("50000.00")), ("2023-03-15", D("250000.00"))),
    ("lump", ("XX-AD", "XX-AD-A"), ("XX-AN", "XX-AN-1"), D("500.00"),
     ("2023-03-01", D("1000.00")), ("2023-03-02", D("500.00"))),
    ("lump", ("XX-AD", "XX-AD-A"), ("XX-AN", "XX-AN-1"), D("500.00"),
     ("2023-03-01", D("1000.00")), ("2023-03-03", D("500.00"))),
    ("single", ("XX-AD", ""), ("XX-AN", "XX-AN-1"), D("500.00"),
     ("2023-03-20", D("500.00")), None),
])
# expenditure by account: {originator: amount}
EXPECTED_SPENT = {
    ("XX-LN", "XX-LN-1"): {"XX-LD": D("300000.00")},
    ("XX-LN", "XX-LN-2"): {"XX-LD": D("250000.00")},
    ("XX-LN", "XX-LN-3"): {"XX-LD": D("395000.00")},
    ("XX-TN", "XX-TN-1"): {"XX-TD": D("250000.00")},
}

NAMES = list(files())
ORDERS = [NAMES, NAMES[::-1], ["ango.xml", "tngo.xml", "lngo.xml", "adonor.xml", "mngo.xml",
                                "ldonor.xml", "tdonor.xml"],
          list(itertools.permutations(NAMES))[3001]]


def snapshot(engine) -> tuple[list, dict, dict]:
    """Movements and attribution keyed by content, never by ids."""
    from fundtrack.ledger import tables as m

    t, a, f = Movement.__table__, Attribution.__table__, m.Flow.__table__
    with engine.connect() as c:
        flows = {r.id: (str(r.value_date), r.amount)
                 for r in c.execute(select(f.c.id, f.c.value_date, f.c.amount))}
        moves = c.execute(select(t)).all()
        parts = c.execute(select(t.c.kind, t.c.src_org, t.c.src_activity, t.c.dst_org,
                                 t.c.dst_activity, t.c.sort_key, t.c.amount.label("total"),
                                 a.c.originator_ref, a.c.untraced_reason, a.c.amount)
                          .select_from(a.join(t, t.c.id == a.c.movement_id))).all()
    transfers = sorted((r.method, (r.src_org, r.src_activity), (r.dst_org, r.dst_activity),
                        r.amount, flows[r.flow_id],
                        flows[r.mirror_flow_id] if r.mirror_flow_id else None)
                       for r in moves if r.kind == "transfer")
    spent: dict = {}
    by_move: dict = {}
    for r in parts:
        key = (r.sort_key, r.total)
        who = r.originator_ref or f"untraced:{r.untraced_reason}"
        by_move.setdefault(key, []).append((who, r.amount))
        if r.kind == "expenditure":
            d = spent.setdefault((r.src_org, r.src_activity), {})
            d[who] = d.get(who, D(0)) + r.amount
    return transfers, spent, {k: sorted(v) for k, v in by_move.items()}


def write(tmp_path) -> dict:
    paths = {}
    for name, text in files().items():
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        paths[name] = p
    return paths


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-".join(x[:3] for x in o))
def test_lumps_by_hand_in_any_order(engine, tmp_path, order):
    paths = write(tmp_path)
    for name in order:
        assert import_file(engine, paths[name]).status == "applied"
    transfers, spent, by_move = snapshot(engine)
    assert transfers == EXPECTED_TRANSFERS
    assert spent == EXPECTED_SPENT
    # every movement's parts sum exactly to it; the lump's three parts to the lump
    for (_, total), ps in by_move.items():
        assert sum((v for _, v in ps), D(0)) == total
    lump = [t for t in transfers if t[4] == ("2023-03-01", D("1000000.00"))]
    assert sum((t[3] for t in lump), D(0)) == D("1000000.00")
    # counted once: the money moved is the canonical reports, never a mirror again
    assert sum((t[3] for t in transfers), D(0)) == D("1446500.00")
    # a full rebuild gives exactly what the incremental updates gave
    with engine.begin() as c:
        recompute(c)
    assert snapshot(engine) == (transfers, spent, by_move)


def test_lump_traces_and_both_reports(engine, tmp_path):
    from fundtrack.ledger import tables as m

    for p in write(tmp_path).values():
        import_file(engine, p)
    f = m.Flow.__table__
    with engine.connect() as c:
        lump = c.execute(select(f.c.id).where(f.c.amount == D("1000000.00"))).scalar_one()
        receipt = c.execute(select(f.c.id).where(f.c.amount == D("250000.00"),
                                                 f.c.kind == FlowKind.INCOMING_FUNDS)).scalar_one()
        # downstream from the lump disbursement: through all three parts to the expenditure
        down = trace(c, flow=lump, direction="DOWNSTREAM")
        assert {(t["activity"], t["amount"]) for t in down.terminals} == {
            ("XX-LN-1", D("300000.00")), ("XX-LN-2", D("250000.00")),
            ("XX-LN-3", D("395000.00"))}
        # upstream from the one receipt: the three tranches, one donor
        up = trace(c, flow=receipt, direction="UPSTREAM")
        assert [(o["organization"], o["amount"]) for o in up.originators] == [
            ("XX-TD", D("250000.00"))]
        # the donor's money: every part of every flow, once
        donor = trace(c, organization="XX-LD", direction="DOWNSTREAM")
        assert sum((t["amount"] for t in donor.terminals), D(0)) == D("945000.00")


# --- the rule itself, without a database ------------------------------------------------

def cash(i: int, kind: FlowKind, amount: str, day: str, *, src=("P", ""), dst=("R", ""),
         currency: str = "USD", usd: str | None = None) -> CashFlow:
    amt = D(amount)
    return CashFlow(i, kind, src, dst, True, amt, currency, D(usd) if usd else
                    (amt if currency == "USD" else None), date.fromisoformat(day), None, None,
                    None, f"{kind.value}|{day}|{amount}|{i:03d}")


def content(rows: list[dict], flows: list[CashFlow]) -> list:
    keys = {fl.id: fl.key for fl in flows}
    return sorted((r["method"], keys[r["flow_id"]], keys.get(r["mirror_flow_id"]), r["amount"],
                   r["amount_usd"], r["src_activity"], r["dst_activity"]) for r in rows)


DIS, INC = FlowKind.DISBURSEMENT, FlowKind.INCOMING_FUNDS


def test_rule_is_independent_of_input_order():
    flows = [cash(1, DIS, "1000.00", "2023-03-01"), cash(2, INC, "500.00", "2023-03-20"),
             cash(3, INC, "500.00", "2023-03-02"), cash(4, INC, "500.00", "2023-03-03"),
             cash(5, DIS, "700.00", "2023-03-04"), cash(6, DIS, "300.00", "2023-03-05"),
             cash(8, INC, "999.00", "2023-09-01"), cash(9, DIS, "200.00", "2023-03-21"),
             cash(10, DIS, "250.00", "2023-04-01"), cash(11, INC, "250.00", "2023-04-02")]
    cfg = TrailConfig()
    base = content(build_rows(flows, cfg), flows)
    rnd = random.Random(7)
    for _ in range(30):
        shuffled = list(flows)
        rnd.shuffle(shuffled)
        assert content(build_rows(shuffled, cfg), flows) == base
    key = {fl.id: fl.key for fl in flows}
    # one-to-one first (250 with 250); then largest first: the 1,000 disbursement takes the
    # two 500s closest in date (2, 3 Mar); 700 finds no set; the 500 of 20 Mar takes the
    # tranches 300 + 200; 700 and 999 (outside every window) stay single
    assert [(r[0], r[1], r[2], r[3]) for r in base] == sorted([
        ("amount-date", key[10], key[11], D("250.00")),
        ("lump", key[1], key[3], D("500.00")), ("lump", key[1], key[4], D("500.00")),
        ("lump", key[6], key[2], D("300.00")), ("lump", key[9], key[2], D("200.00")),
        ("single", key[5], None, D("700.00")), ("single", key[8], None, D("999.00"))])


def test_near_miss_and_window_stay_single():
    cfg = TrailConfig()
    # 980 + 0 % ... the sum 97.9 % of the lump: just outside 2 %
    flows = [cash(1, DIS, "1000.00", "2023-03-01"), cash(2, INC, "489.00", "2023-03-02"),
             cash(3, INC, "490.00", "2023-03-03")]
    assert {r["method"] for r in build_rows(flows, cfg)} == {"single"}
    # 98.0 %: inside
    flows[2] = cash(3, INC, "491.00", "2023-03-03")
    assert [r["amount"] for r in build_rows(flows, cfg)] == [D("498.98"), D("501.02")]
    # a part outside the 90-day window
    flows[2] = cash(3, INC, "511.00", "2023-06-01")
    assert {r["method"] for r in build_rows(flows, cfg)} == {"single"}
    # a named activity the other report contradicts
    flows = [cash(1, DIS, "1000.00", "2023-03-01", dst=("R", "R-1")),
             cash(2, INC, "500.00", "2023-03-02", dst=("R", "R-1")),
             cash(3, INC, "500.00", "2023-03-03", dst=("R", "R-2"))]
    assert {r["method"] for r in build_rows(flows, cfg)} == {"single"}


def test_mixed_currencies_compare_in_usd_and_split_exactly():
    cfg = TrailConfig()
    flows = [cash(1, DIS, "900.00", "2023-03-01", currency="EUR", usd="1000.00"),
             cash(2, INC, "600.00", "2023-03-02", currency="USD"),
             cash(3, INC, "400.00", "2023-03-03", currency="USD")]
    rows = [r for r in build_rows(flows, cfg) if r["method"] == "lump"]
    assert sorted((r["amount"], r["currency"], r["amount_usd"]) for r in rows) == [
        (D("360.00"), "EUR", D("400.00")), (D("540.00"), "EUR", D("600.00"))]


def test_split_exact():
    assert split_exact(D("1000000.00"), [D(300000), D(300000), D(395000)]) == [
        D("301507.54"), D("301507.54"), D("396984.92")]
    assert split_exact(D("0.01"), [D(1), D(1)]) == [D("0.01"), D("0.00")]
    assert split_exact(D("10.005"), [D(1), D(2)]) == [D("3.335"), D("6.670")]


def test_mirrors_counted_once_and_revert(engine, db_url, tmp_path):
    """Flow totals with ``isMirror: false`` count the lump once; a changed receipt that
    breaks the lump, then its revert, give back exactly the movements before."""
    from fundtrack.api.testing import Api
    from fundtrack.ingest.pipeline import revert_batch

    paths = write(tmp_path)
    for p in paths.values():
        assert import_file(engine, p).status == "applied"
    api = Api(db_url)
    query = """query($w: FlowWhere) {
      flowsAggregate(where: $w, groupBy: [KIND]) { groups { kind count sum } } }"""

    def totals(where):
        groups = api.query(query, {"w": where})["flowsAggregate"]["groups"]
        return {g["kind"]: (g["count"], D(g["sum"])) for g in groups}

    # mirrors: LN's three receipts of the lump, TN's one receipt of the tranches, AN's two
    assert totals({"isMirror": True}) == {"INCOMING_FUNDS": (6, D("1246000.00"))}
    once = totals({"isMirror": False})
    assert once["DISBURSEMENT"] == (6, D("1351000.00"))
    assert once["INCOMING_FUNDS"] == (3, D("95500.00"))
    assert once["DISBURSEMENT"][1] + once["INCOMING_FUNDS"][1] == D("1446500.00")
    before = snapshot(engine)
    changed = tmp_path / "lngo2.xml"
    changed.write_text(paths["lngo.xml"].read_text().replace(
        '<value currency="USD" value-date="2023-04-10">395000.00',
        '<value currency="USD" value-date="2023-04-10">300000.00'), encoding="utf-8")
    res = import_file(engine, changed)
    assert res.status == "applied"
    transfers, _, _ = snapshot(engine)
    # 900,000 of 1,000,000 is 10 % off: no lump any more, every report its own movement
    assert not [t for t in transfers if t[0] == "lump" and t[1][0] == "XX-LD"]
    revert_batch(engine, res.batch_id)
    assert snapshot(engine) == before
