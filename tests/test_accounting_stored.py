"""The stored scope/pillar classification (``flow_classification``) equals classify_all.

On the hand-built fixture of test_accounting (values by hand), through re-import, revert,
hand overrides and rebuild; on the shared IATI files, the API's ``pillar`` / ``inScope``
filters give the counts and USD sums an independent Python classification gives.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import select
from test_accounting import DONOR, act, load_fixture, tx
from test_accounting import DONOR_XML as XML

from fundtrack.accounting import stored
from fundtrack.accounting.classify import classify_all, pillars
from fundtrack.accounting.items import load_items
from fundtrack.accounting.tables import FlowClassification
from fundtrack.api.testing import Api
from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m


def table_rows(conn) -> set[tuple[int, str, bool, str | None]]:
    """The scope and pillar rows (the gender rows are test_gender_crosswalk's)."""
    t = FlowClassification.__table__
    return {(r.flow_id, r.dimension, bool(r.is_in), r.rules) for r in conn.execute(
        select(t).where(t.c.dimension.not_like("gender:%")))}


def expected_rows(conn) -> set[tuple[int, str, bool, str | None]]:
    """Independent: classify_all over every current flow, written as the table would be
    (the "out" rows that only hand overrides make are checked separately)."""
    cls = classify_all(conn, load_items(conn))
    out: set[tuple[int, str, bool, str | None]] = set()
    for fid, c in cls.items():
        out.add((fid, "scope", c.in_scope, " ".join(c.why.get("scope", [])) or None))
        out |= {(fid, d, True, " ".join(w)) for d, w in c.why.items() if d != "scope"}
    return out


def current_flow_ids(conn) -> set[int]:
    f = m.Flow.__table__
    return set(conn.execute(select(f.c.id).where(f.c.superseded_by.is_(None))).scalars())


@pytest.fixture
def fx(engine, tmp_path):
    load_fixture(engine, tmp_path)
    return engine


def by_activity(conn) -> dict[tuple[str, D], dict[str, tuple[bool, str | None]]]:
    f, a = m.Flow.__table__, m.Activity.__table__
    t = FlowClassification.__table__
    out: dict[tuple[str, D], dict[str, tuple[bool, str | None]]] = {}
    for r in conn.execute(select(a.c.iati_identifier, f.c.amount, f.c.kind, t.c.dimension,
                                 t.c.is_in, t.c.rules)
                          .join(f, f.c.id == t.c.flow_id).join(a, a.c.id == f.c.activity_id)
                          .where(f.c.kind == m.FlowKind.DISBURSEMENT,
                                 t.c.dimension.not_like("gender:%"))):
        out.setdefault((r.iati_identifier, r.amount), {})[r.dimension] = (bool(r.is_in), r.rules)
    return out


def test_import_classifies_by_hand_values(fx):
    with fx.connect() as c:
        rows = table_rows(c)
        assert rows == expected_rows(c)
        assert {r[0] for r in rows if r[1] == "scope"} == current_flow_ids(c)
        got = by_activity(c)
    assert got[("XM-DONOR-A1", D(100000))] == {
        "scope": (True, "dac-152-peace-security dac-152-peace-security-stated "
                  "participation-dac-democratic-women prevention-dac-peacebuilding"),
        "pillar:participation": (True, "participation-dac-democratic-women"),
        "pillar:prevention": (True, "prevention-dac-peacebuilding")}
    assert got[("XM-DONOR-A4", D(100000))] == {"scope": (True, "keyword-1325-wps")}
    assert got[("XM-DONOR-A3", D(50000))] == {"scope": (False, None)}
    # 9 current flows: A1 3 (pledge, 100,000, 40,000), A2-A4 1 each, P1 3. Scope: all but
    # A3 (8). Participation: sector 15220 with "women mediators" on A1 3 + with "women's
    # political" on P1 3 = 6. Prevention: sector 15220 alone on A1 3, A2 1, P1 3 = 7.
    # Gender (DAC marker): principal A1 3 + A3 1 = 4, significant A2 1 + P1 3 = 4; A4 has
    # none (not screened: no row).
    with fx.connect() as c:
        assert len(current_flow_ids(c)) == 9
        assert stored.counts(c) == {"pillar:participation": 6, "pillar:prevention": 7,
                                    "scope": 8, "gender:principal": 4,
                                    "gender:significant": 4}


def test_overrides_reclassify_and_are_cited(fx):
    with fx.begin() as c:
        out_id = stored.set_override(c, "activity:XM-DONOR-A4", "scope", "out", note="not WPS")
        in_id = stored.set_override(c, "activity:XM-DONOR-A3", "pillar:protection", "in")
        off_id = stored.set_override(c, "activity:XM-DONOR-A1", "pillar:prevention", "out")
    with fx.connect() as c:
        got = by_activity(c)
        expected = expected_rows(c)
        rows = table_rows(c)
    assert got[("XM-DONOR-A4", D(100000))] == {"scope": (False, f"override:{out_id}")}
    assert got[("XM-DONOR-A3", D(50000))] == {
        "scope": (False, None), "pillar:protection": (True, f"override:{in_id}")}
    assert got[("XM-DONOR-A1", D(100000))]["pillar:prevention"] == (False, f"override:{off_id}")
    # the table says what classify_all says, plus the "out by hand" rows
    by_hand_out = {r for r in rows if not r[2] and r[1] != "scope"}
    assert {r[1:] for r in by_hand_out} == {("pillar:prevention", False, f"override:{off_id}")}
    # ... and an "out by hand" scope cites the override where classify_all has no rule
    norm = {(f, d, i, None if not i and r == f"override:{out_id}" else r)
            for f, d, i, r in rows - by_hand_out}
    assert norm == expected
    with fx.begin() as c:
        assert stored.set_override(c, "activity:XM-DONOR-A4", "scope", None) is None
        assert stored.set_override(c, "activity:XM-DONOR-A3", "pillar:protection", None) is None
        assert stored.set_override(c, "activity:XM-DONOR-A1", "pillar:prevention", None) is None
    with fx.connect() as c:
        assert table_rows(c) == expected_rows(c)
    with pytest.raises(ValueError, match="override subject"), fx.begin() as c:
        stored.set_override(c, "XM-DONOR-A4", "scope", "out")


def test_reimport_revert_and_rebuild_keep_it_exact(fx, tmp_path: Path):
    with fx.connect() as c:
        before = table_rows(c)
    # A4 re-published without the 1325 keyword, A2 with women's participation
    changed = XML.format(acts="\n".join([
        act("XM-DONOR-A2", "Community early warning and women's participation", "15220", "1",
            tx(3, "300000", "2020-06-01", "XM-UNAGENCY", "3", "XM-UNAGENCY-P1",
               provider="XM-DONOR")),
        act("XM-DONOR-A4", "Support to the national action plan", None, None,
            tx(3, "100000", "2020-09-01", "XM-NGO", provider="XM-DONOR"), country="LR"),
    ]))
    p = tmp_path / "donor-update.xml"
    p.write_text(changed, encoding="utf-8")
    res = import_file(fx, p)
    assert res.status == "applied", res.summary()
    assert res.counts["classified_flows"] == 2
    # rows of the 2 superseded flows: A2's scope + prevention + gender:significant,
    # A4's scope (A4 has no marker)
    assert res.counts["classification_dropped"] == 4
    with fx.connect() as c:
        rows = table_rows(c)
        assert rows == expected_rows(c)
        assert {r[0] for r in rows} == current_flow_ids(c)
        got = by_activity(c)
    assert got[("XM-DONOR-A4", D(100000))] == {"scope": (False, None)}
    assert got[("XM-DONOR-A2", D(300000))]["pillar:participation"] == (
        True, "participation-dac-democratic-women")
    counts = revert_batch(fx, res.batch_id)
    assert counts["classified_flows"] == 2
    with fx.connect() as c:
        after = table_rows(c)
    assert after == before  # restored flows are the same rows, same ids
    with fx.begin() as c:
        assert stored.rebuild(c) == {"classified_flows": 9}
    with fx.connect() as c:
        assert table_rows(c) == before
    # the donor file again (the same content): a new batch supersedes, rows follow
    p2 = tmp_path / "donor-again.xml"
    # A3 now says "GBV": the word alone classifies nothing (12220 is basic health care) ...
    p2.write_text(DONOR.replace("Maternal health clinics", "Maternal health clinics (GBV)"),
                  encoding="utf-8")
    res2 = import_file(fx, p2)
    assert res2.status == "applied", res2.summary()
    with fx.connect() as c:
        assert table_rows(c) == expected_rows(c)
        assert by_activity(c)[("XM-DONOR-A3", D(50000))] == {"scope": (False, None)}
    # ... under DAC 15180 (ending violence against women and girls) it is protection
    p3 = tmp_path / "donor-15180.xml"
    p3.write_text(DONOR.replace("Maternal health clinics", "Maternal health clinics (GBV)")
                  .replace('code="12220"', 'code="15180"'), encoding="utf-8")
    assert import_file(fx, p3).status == "applied"
    with fx.connect() as c:
        assert table_rows(c) == expected_rows(c)
        assert by_activity(c)[("XM-DONOR-A3", D(50000))] == {
            "scope": (True, "protection-dac-15180-vawg"),
            "pillar:protection": (True, "protection-dac-15180-vawg")}


def test_api_flow_classification_cites_rules(fx, db_url):
    """Flow.classification: the stored rows, each rule with its rationale from rules.toml
    (A1 by hand: DAC 15220 alone, "peace" and "women mediators" in its title)."""
    with fx.begin() as c:
        oid = stored.set_override(c, "activity:XM-DONOR-A3", "pillar:protection", "in")
    q = """{ flows(first: 50, where: {kind: {_eq: DISBURSEMENT}}) { nodes {
        amount activity { iatiIdentifier }
        classification { dimension isIn rules { id note lowConfidence } } } } }"""
    nodes = Api(db_url).query(q)["flows"]["nodes"]
    got = {(n["activity"]["iatiIdentifier"], D(n["amount"])): n["classification"]
           for n in nodes}
    a1 = {c["dimension"]: c for c in got[("XM-DONOR-A1", D(100000))]}
    assert sorted(a1) == ["pillar:participation", "pillar:prevention", "scope"]
    assert a1["pillar:participation"]["isIn"] is True
    assert a1["pillar:participation"]["rules"] == [{
        "id": "participation-dac-democratic-women", "lowConfidence": False,
        "note": "DAC 15150-15153 (democratic participation, elections, legislatures, media) "
                "or 15220 (peacebuilding) and the text names women's participation or "
                "leadership"}]
    assert [r["id"] for r in a1["scope"]["rules"]] == [
        "dac-152-peace-security", "dac-152-peace-security-stated",
        "participation-dac-democratic-women", "prevention-dac-peacebuilding"]
    a4 = got[("XM-DONOR-A4", D(100000))]
    assert a4 == [{"dimension": "scope", "isIn": True, "rules": [{
        "id": "keyword-1325-wps", "lowConfidence": True,
        "note": "LOW CONFIDENCE: names the resolution or the agenda in free text without a "
                "peace-and-security code; check by hand"}]}]
    assert got[("XM-DONOR-A3", D(50000))] == [
        {"dimension": "pillar:protection", "isIn": True, "rules": [
            {"id": f"override:{oid}", "note": "hand decision (accounting_override)",
             "lowConfidence": False}]},
        {"dimension": "scope", "isIn": False, "rules": []}]
    # the activity page shows the same rules beside each flow, notes as titles
    import re

    html = Api(db_url).get("/activity", params={"id": "XM-DONOR-A4"}).text
    cell = re.search(r'<td class="classes">(.*?)</td>', html, re.S).group(1)
    assert re.findall(r'data-dimension="([^"]+)"', cell) == ["scope"]
    assert re.findall(r'data-rule="([^"]+)"', cell) == ["keyword-1325-wps"]
    assert "(low confidence)" in cell and "LOW CONFIDENCE: names the resolution" in cell
    html = Api(db_url).get("/activity", params={"id": "XM-DONOR-A1"}).text
    cells = re.findall(r'<td class="classes">(.*?)</td>', html, re.S)
    assert len(cells) == 3  # the pledge and two disbursements
    assert all(re.findall(r'data-dimension="([^"]+)"', c) == [
        "scope", "participation", "prevention"] for c in cells)


# ---- the API filters on the shared IATI files --------------------------------------------

@pytest.fixture(scope="module")
def independent(loaded_engine):
    """Per flow: (in scope, pillars, amount_usd, kind), classified in Python by classify_all."""
    with loaded_engine.connect() as c:
        items = load_items(c)
        cls = classify_all(c, items)
    return {it.flow_id: (cls[it.flow_id].in_scope, set(cls[it.flow_id].pillars),
                         it.amount_usd, it.kind) for it in items}


def _expect(independent, pick) -> tuple[int, D, int]:
    chosen = [v for v in independent.values() if pick(v)]
    return (len(chosen), sum((v[2] for v in chosen if v[2] is not None), D(0)),
            sum(1 for v in chosen if v[2] is None))


def test_api_pillar_and_scope_filters_equal_python(loaded_url, loaded_engine, independent):
    with loaded_engine.connect() as c:
        assert table_rows(c) == expected_rows(c)
    api = Api(loaded_url)
    q = """query($w: FlowWhere) { flows(where: $w) { totalCount }
        flowsAggregate(where: $w) { count groups { count sumUsd countWithoutUsd } } }"""
    cases = [({"inScope": True}, lambda v: v[0]), ({"inScope": False}, lambda v: not v[0])]
    cases += [({"pillar": {"_eq": p}}, lambda v, p=p: p in v[1]) for p in pillars()]
    cases += [({"pillar": {"_in": ["protection", "participation"]}, "inScope": True},
               lambda v: v[0] and v[1] & {"protection", "participation"}),
              ({"pillar": {"_in": []}}, lambda v: False),
              ({"pillar": {"_eq": "no-such-pillar"}}, lambda v: False)]
    seen = Counter()
    for where, pick in cases:
        data = api.query(q, {"w": where})
        n, usd, no_usd = _expect(independent, pick)
        agg = data["flowsAggregate"]
        assert data["flows"]["totalCount"] == agg["count"] == n, where
        g = agg["groups"]
        assert (D(g[0]["sumUsd"] or 0) if g else D(0)) == usd, where
        assert (g[0]["countWithoutUsd"] if g else 0) == no_usd, where
        seen[str(where)] = n
    # the shared pages hold WPS money: every pillar and the scope are non-empty
    assert seen[str({"inScope": True})] > 100
    for p in pillars():
        assert seen[str({"pillar": {"_eq": p}})] > 0, p
    assert seen[str({"inScope": True})] + seen[str({"inScope": False})] == len(independent)


def test_docs_pillar_query_equals_python(loaded_url, independent):
    """The docs/api.md example: protection disbursements/expenditure in scope, by year."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    q = next(x for x in re.findall(r"```graphql\n(.*?)```", doc, re.S)
             if 'pillar: {_eq: "protection"}' in x and "inScope: true" in x)
    got = Api(loaded_url).query(q)["flowsAggregate"]
    chosen = [v for v in independent.values() if v[0] and "protection" in v[1]
              and v[3].name in ("DISBURSEMENT", "EXPENDITURE")]
    assert got["count"] == len(chosen) > 0
    assert sum(D(g["sumUsd"] or 0) for g in got["groups"]) == sum(
        (v[2] for v in chosen if v[2] is not None), D(0))
