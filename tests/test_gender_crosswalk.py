"""Gender markers as real publishers report them, read into the common scale, and the
``genderSignificance`` filter agreeing with ``genderSummary`` on every shared file.

Expected values are computed here with lxml from the shared files (IOM's own marker,
vocabulary 99 with its vocabulary-uri, in ``dportal_118.xml``; ADB's gender categories in
``iati-activities-am-armenia.xml``), independently of the importer and the crosswalk code.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from decimal import Decimal as D
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from fundtrack.accounting import markers as mk
from fundtrack.accounting.classify import apply_gender_overrides, load_overrides
from fundtrack.accounting.items import load_items
from fundtrack.api.testing import Api
from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
from tests.conftest import FIXTURES, SHARED

IOM_URI = "https://data.iom.int/codelist/genderpolicy.pdf"
ADB_URI = ("https://www.adb.org/sites/default/files/institutional-document/42823/"
           "project-classification-system-final-report_0.pdf")
IOM_FILE = SHARED / "iati-activity/dportal-covid19-2021/dportal_118.xml"
ADB_FILE = SHARED / "iati-activity/iati-activities-am-armenia.xml"
#: The publishers' codes and where they sit on the common scale (docs/accounting.md).
IOM_CODES = {"0": "not-targeted", "1": "not-targeted", "2A": "significant", "2B": "principal",
             "NA": "not-screened"}
ADB_CODES = {"Effective gender mainstreaming (EGM)": "significant",
             "Some gender elements (SGE)": "not-targeted"}
NUMBER = {"principal": 2, "significant": 1, "not-targeted": 0}


def test_publisher_codes_on_the_common_scale():
    rows = [("99", "2A", None, IOM_URI)]
    got = mk.activity_marker(rows)
    assert (got.common, got.scale, got.code, got.score) == ("significant", "iom", "2A", "2A")
    assert mk.activity_marker([("99", "2B", None, "http://data.iom.int/codelist/genderpolicy.pdf/")
                               ]).common == "principal"
    assert mk.activity_marker([("99", "NA", None, IOM_URI)]).common == "not-screened"
    # ADB: the bracketed category is read; themes of the same vocabulary are no marker
    assert mk.activity_marker([("99", "Inclusive economic growth", None, ADB_URI)]) is mk.UNMARKED
    adb = mk.activity_marker([("99", "Inclusive economic growth", None, ADB_URI),
                              ("99", "Gender equity theme (GEN)", None, ADB_URI)])
    assert (adb.common, adb.scale, adb.score) == ("principal", "adb", "Gender equity theme (GEN)")
    # the same code without the publisher's vocabulary-uri is not IOM's marker
    assert mk.activity_marker([("99", "2A", None, None)]) is mk.UNMARKED
    # a DAC score beats the publisher's own marker (priority), screened beats unscreened
    both = mk.activity_marker([("99", "2B", None, IOM_URI), ("1", "1", "1", None)])
    assert (both.scale, both.common) == ("dac", "significant")
    assert mk.activity_marker([("99", "NA", None, IOM_URI), ("1", "1", "", None)]).common == (
        "not-screened")
    # forms fundtrack already read keep their meaning
    assert [mk.normalise_score(s) for s in ("GEM2a", " 3 T ", "2.0", "2b", "na")] == [
        "2a", "3T", "2", "2b", "NA"]


def _publisher_expected(path: Path, uri: str, codes: dict[str, str]
                        ) -> tuple[str, dict[str, tuple[int, int, dict[str, D]]]]:
    """Per common value: activities, transactions, transaction value sums by currency,
    of the activities whose marker of vocabulary 99 with ``uri`` is one of ``codes``."""
    tree = etree.parse(str(path))
    acts: Counter = Counter()
    flows: Counter = Counter()
    sums: dict[str, dict[str, D]] = defaultdict(lambda: defaultdict(D))
    reporter = ""
    for a in tree.iter("iati-activity"):
        reporter = a.find("reporting-org").get("ref")
        found = [pm.get("code") for pm in a.findall("policy-marker")
                 if pm.get("vocabulary") == "99" and pm.get("vocabulary-uri") == uri
                 and pm.get("code") in codes]
        assert len(found) <= 1
        if not found:
            continue
        common = codes[found[0]]
        txs = a.findall("transaction")
        if txs:
            acts[common] += 1
        for t in txs:
            v = t.find("value")
            cur = v.get("currency") or a.get("default-currency")
            flows[common] += 1
            sums[common][cur] += D(v.text.strip())
    return reporter, {c: (acts[c], flows[c], dict(sums[c])) for c in flows}


AGG = """query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [CURRENCY]) {
    count groups { currency count sum sumUsd } } }"""
SUMMARY = """query($w: FlowWhere) { genderSummary(where: $w) {
    groups { common scale score flows activities sumUsd } } }"""


@pytest.mark.parametrize(("path", "uri", "codes", "scale"), [
    (IOM_FILE, IOM_URI, IOM_CODES, "iom"), (ADB_FILE, ADB_URI, ADB_CODES, "adb")])
def test_iom_and_adb_markers_read_from_the_shared_files(loaded_url, path, uri, codes, scale):
    reporter, expected = _publisher_expected(path, uri, codes)
    api = Api(loaded_url)
    mine = {"reportingOrgRef": {"_eq": reporter}}
    groups = api.query(SUMMARY, {"w": mine})["genderSummary"]["groups"]
    got: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g in groups:
        if g["scale"] == scale:
            got[g["common"]][0] += g["activities"]
            got[g["common"]][1] += g["flows"]
    assert {c: tuple(v) for c, v in got.items()} == {c: e[:2] for c, e in expected.items()}
    # the original code is kept beside the common value
    assert {g["score"] for g in groups if g["scale"] == scale} == {
        code for code in codes if codes[code] in expected}
    # the genderSignificance filter finds the same flows and the same money, per currency
    for common, (_acts, n, sums) in expected.items():
        if common not in NUMBER:
            continue
        agg = api.query(AGG, {"w": {**mine, "genderSignificance": {"_eq": NUMBER[common]}}}
                        )["flowsAggregate"]
        assert agg["count"] == n, common
        assert {g["currency"]: D(g["sum"]) for g in agg["groups"]} == sums, common


def test_iom_and_adb_exact_figures():
    """The figures the test above rests on, written down (lxml over the shared files)."""
    _, iom = _publisher_expected(IOM_FILE, IOM_URI, IOM_CODES)
    _, adb = _publisher_expected(ADB_FILE, ADB_URI, ADB_CODES)
    assert {c: v[:2] for c, v in iom.items()} == {
        "not-targeted": (51, 51), "significant": (33, 33), "principal": (8, 8),
        "not-screened": (7, 7)}
    assert {c: v[:2] for c, v in adb.items()} == {
        "not-targeted": (14, 2794), "significant": (10, 949)}


def _agree(url: str) -> dict[str, tuple[int, D]]:
    """Assert that, per reporting organisation and overall, the filter and the summary
    count the same flows and USD for each common value; return the overall figures."""
    api = Api(url)
    q = """query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [REPORTING_ORG]) {
        groups { reportingOrg count sumUsd countWithoutUsd } } }"""
    eng = make_engine(url)
    from fundtrack.identity.tables import CanonicalOrg, FlowParty

    fp, co = FlowParty.__table__, CanonicalOrg.__table__
    with eng.connect() as c:
        items = load_items(c)
        apply_gender_overrides(items, load_overrides(c))
        # REPORTING_ORG groups by canonical organisation (issue 15): its stored ref
        reporter = dict(c.execute(select(fp.c.flow_id, co.c.ref).join(
            co, co.c.id == fp.c.reporter_org_id)).all())
    eng.dispose()
    by_org: dict[tuple[str, str], list] = defaultdict(lambda: [0, D(0)])
    for it in items:
        key = (reporter.get(it.flow_id, it.reporting_org_ref or ""), it.marker.common)
        by_org[key][0] += 1
        by_org[key][1] += it.amount_usd or D(0)
    summary = api.query(SUMMARY, {"w": None})["genderSummary"]["groups"]
    overall: dict[str, tuple[int, D]] = {}
    for common in (*NUMBER, "not-screened"):
        cmp = ({"_is_null": True} if common == "not-screened" else {"_eq": NUMBER[common]})
        groups = api.query(q, {"w": {"genderSignificance": cmp}})["flowsAggregate"]["groups"]
        got = {g["reportingOrg"] or "": (g["count"], D(g["sumUsd"] or 0)) for g in groups}
        want = {org: (v[0], v[1]) for (org, c), v in by_org.items() if c == common and v[0]}
        assert got == want, common
        from_summary = (sum(g["flows"] for g in summary if g["common"] == common),
                        sum((D(g["sumUsd"]) for g in summary if g["common"] == common), D(0)))
        from_filter = (sum(v[0] for v in got.values()), sum((v[1] for v in got.values()), D(0)))
        assert from_filter == from_summary, common
        overall[common] = from_filter
    return overall


def test_filter_and_summary_agree_on_the_shared_iati_files(loaded_url):
    overall = _agree(loaded_url)
    assert overall["principal"][0] > 0 and overall["significant"][0] > 0


def _crs_with_gender(tmp_path: Path) -> Path:
    """The shared CRS rows (fixture derived from crs_subset.sql), gender 2/1/0 on the first
    three: CRS reports the marker on the flow, with no activity behind it."""
    lines = (FIXTURES / "crs" / "crs_1973.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [next(csv.reader([line])) for line in lines[1:]]
    for row, score in zip(rows, ("2", "1", "0"), strict=False):
        row[header.index("gender")] = score
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    p = tmp_path / "crs-gender.csv"
    p.write_text(out.getvalue(), encoding="utf-8")
    return p


def test_filter_and_summary_agree_on_crs_and_fts(engine, db_url, tmp_path):
    paths = [_crs_with_gender(tmp_path), *sorted((SHARED / "fts-json").glob("*.json"))]
    for p in paths:
        res = import_file(engine, p)
        assert res.status in ("applied", "rejected"), res.summary()
    overall = _agree(db_url)
    # the CRS principal flow the issue names: the filter now finds it
    assert overall["principal"][0] >= 1


def test_a_hand_gender_decision_reaches_filter_dimension_and_rollup(engine, db_url, tmp_path):
    """test_accounting's fixture: principal A1 (3 flows) + A3 (1); A4 (1 flow) has no
    marker. Deciding A4 principal by hand moves it in the filter, the grouped dimension
    (answered from flow_rollup) and the summary alike."""
    from test_accounting import load_fixture

    from fundtrack.accounting import stored

    load_fixture(engine, tmp_path)
    api = Api(db_url)
    q = """query($w: FlowWhere) { f: flowsAggregate(where: $w) { count }
        g: flowsAggregate(groupBy: [GENDER_SIGNIFICANCE]) { groups { genderSignificance count } }
        genderSummary { groups { common flows } } }"""

    def principal() -> tuple[int, int, int]:
        d = api.query(q, {"w": {"genderSignificance": {"_eq": 2}}})
        return (d["f"]["count"],
                sum(g["count"] for g in d["g"]["groups"] if g["genderSignificance"] == 2),
                sum(g["flows"] for g in d["genderSummary"]["groups"] if g["common"] == "principal"))

    assert principal() == (4, 4, 4)
    with engine.begin() as c:
        stored.set_override(c, "activity:XM-DONOR-A4", "gender", "principal", "test")
    assert principal() == (5, 5, 5)
    with engine.begin() as c:
        stored.set_override(c, "activity:XM-DONOR-A4", "gender", None)
    assert principal() == (4, 4, 4)


CHAIN = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03" generated-datetime="2021-03-01T00:00:00Z">
 <iati-activity default-currency="USD">
  <iati-identifier>XM-GD-1</iati-identifier>
  <reporting-org ref="XM-GD" type="10"><narrative>Donor</narrative></reporting-org>
  <title><narrative>Grant to the implementer</narrative></title>
  <activity-status code="2"/>
  <transaction><transaction-type code="3"/><transaction-date iso-date="2020-03-01"/>
   <value value-date="2020-03-01">100000</value>
   <provider-org ref="XM-GD"/><receiver-org ref="XM-GI" receiver-activity-id="XM-GI-1"/>
  </transaction>
 </iati-activity>
 <iati-activity default-currency="USD">
  <iati-identifier>XM-GI-1</iati-identifier>
  <reporting-org ref="XM-GI" type="40"><narrative>Implementer</narrative></reporting-org>
  <title><narrative>Targeted action</narrative></title>
  <activity-status code="2"/>
  <policy-marker vocabulary="99" vocabulary-uri="https://data.iom.int/codelist/genderpolicy.pdf"
   code="2B"/>
  <transaction><transaction-type code="1"/><transaction-date iso-date="2020-03-05"/>
   <value value-date="2020-03-05">100000</value>
   <provider-org ref="XM-GD" provider-activity-id="XM-GD-1"/><receiver-org ref="XM-GI"/>
  </transaction>
  <transaction><transaction-type code="4"/><transaction-date iso-date="2020-06-01"/>
   <value value-date="2020-06-01">60000</value>
   <provider-org ref="XM-GI"/><receiver-org ref="XM-SUPPLIER"/>
  </transaction>
 </iati-activity>
</iati-activities>
"""


def test_donor_summary_reads_the_crosswalk(engine, tmp_path):
    """The donor's money spent in an activity marked with IOM's 2B (targeted action) is
    principal (DAC 2) in donorSummary's gender lines, as in genderSummary."""
    from fundtrack.query.trace import donor_summary

    p = tmp_path / "chain.xml"
    p.write_text(CHAIN, encoding="utf-8")
    assert import_file(engine, p).status == "applied"
    with engine.connect() as c:
        got = donor_summary(c, "XM-GD")["gender"]
    assert [(g["key"], D(g["amount_usd"])) for g in got] == [("2", D(60000))]
