"""The navigable graph and the organisation page, on real files (issue 15 item 6), and
activity search by organisation name (issue 16 item 8).

Expected values are computed here from the XML with lxml, independently of the importer:
activities keyed by (reporting org, identifier), refs stripped, a transaction's currency
its value's ``@currency`` else the activity's ``@default-currency``; text folded by
Unicode decomposition (NFKD, combining marks dropped) and ``lower``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from fundtrack.api.testing import Api
from tests.conftest import SHARED, DatabaseFactory

FILES = ["dportal-covid19-2021/dportal_125.xml", "dportal-covid19-2021/dportal_30.xml",
         "iom-oipa-export/example_203_references.xml", "MAEC_IATI_INDONESIA.xml"]
NL = "XM-DAC-7"  # the Netherlands Ministry of Foreign Affairs
PBF = "XM-DAC-41141"  # the UN Peacebuilding Fund, named as funder by IOM
#: Names IOM's file gives these organisations without a ref, labelled by hand: the
#: identity rules match them (issue 15), so the connections and the page count them.
NAMES = {NL: {"Netherlands - Ministry of Foreign Affairs"},
         PBF: {"UNITED NATIONS PEACEBUILDING FUND"}}


@pytest.fixture(scope="module")
def api(db_factory: DatabaseFactory) -> Iterator[Api]:
    from fundtrack.db import make_engine
    from fundtrack.ingest.pipeline import import_file

    url = db_factory.new_url()
    eng = make_engine(url)
    for rel in FILES:
        assert import_file(eng, SHARED / "iati-activity" / rel).status == "applied"
    eng.dispose()
    yield Api(url)
    db_factory.drop(url)


def _ref(el: Any) -> str | None:
    return ((el.get("ref") or "").strip() or None) if el is not None else None


def _name(el: Any) -> str | None:
    if el is None:
        return None
    return " ".join(n.text or "" for n in el.findall("narrative")).strip() or None


def _is(el: Any, org: str) -> bool:
    """The party ``el`` (provider-org, receiver-org) is ``org``: by ref, or named only."""
    return _ref(el) == org or (_ref(el) is None and _name(el) in NAMES[org])


@pytest.fixture(scope="module")
def xml() -> dict[tuple[str, str], Any]:
    """Every activity of the files, the last of a (reporting org, identifier) winning."""
    acts: dict[tuple[str, str], Any] = {}
    for rel in FILES:
        for a in etree.parse(str(SHARED / "iati-activity" / rel)).getroot().iter("iati-activity"):
            ident = (a.findtext("iati-identifier") or "").strip()
            acts[(_ref(a.find("reporting-org")) or "", ident)] = a
    return acts


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c)).lower()


def _texts(a: Any) -> Iterator[str]:
    """What the search rule reads of an activity, as the XML spells it."""
    yield a.findtext("iati-identifier") or ""
    for n in a.findall("title/narrative"):
        yield n.text or ""
    for path in ("reporting-org", "participating-org", "transaction/provider-org",
                 "transaction/receiver-org"):
        for o in a.findall(path):
            yield o.get("ref") or ""
            for n in o.findall("narrative"):
                yield n.text or ""


ORG_Q = """query($ref: String!, $after: String) { organization(ref: $ref) {
  ref name
  activities(first: 40, after: $after) { totalCount nodes { iatiIdentifier }
                                         pageInfo { hasNextPage endCursor } }
  asProvider: flows(role: PROVIDER, first: 1) { totalCount }
  asReceiver: flows(role: RECEIVER, first: 1) { totalCount }
  asReporter: flows(role: REPORTER, first: 1) { totalCount } } }"""


def test_organization_connections_match_the_files(api: Api, xml: dict[Any, Any]) -> None:
    for ref in (NL, PBF):
        mine = {ident for (rep, ident), a in xml.items()
                if rep == ref or any(_ref(p) == ref for p in a.iter("participating-org"))}
        transactions = [(rep, t) for (rep, _), a in xml.items() for t in a.iter("transaction")]
        seen: list[str] = []
        after = None
        while True:
            org = api.query(ORG_Q, {"ref": ref, "after": after})["organization"]
            acts = org["activities"]
            seen += [n["iatiIdentifier"] for n in acts["nodes"]]
            if not acts["pageInfo"]["hasNextPage"]:
                break
            after = acts["pageInfo"]["endCursor"]
        assert org["ref"] == ref
        assert acts["totalCount"] == len(mine) == len(seen)
        assert sorted(seen) == seen and set(seen) == mine  # every one once, by identifier
        assert org["asProvider"]["totalCount"] == sum(
            _is(t.find("provider-org"), ref) for _, t in transactions)
        assert org["asReceiver"]["totalCount"] == sum(
            _is(t.find("receiver-org"), ref) for _, t in transactions)
        assert org["asReporter"]["totalCount"] == sum(rep == ref for rep, _ in transactions)
    # the numbers the files give (so a rule that matched nothing could not pass)
    assert len([1 for (rep, _), a in xml.items() if rep == NL
                or any(_ref(p) == NL for p in a.iter("participating-org"))]) == 94


def test_unknown_organization_is_not_found(api: Api) -> None:
    out = api.raw('{ organization(ref: "XM-NOBODY-1") { ref } }')
    assert out["data"] is None
    (err,) = out["errors"]
    assert err["extensions"]["type"] == "NOT_FOUND" and err["path"] == ["organization"]
    assert "XM-NOBODY-1" in err["message"]


def test_activity_flows_and_budgets_match_the_files(api: Api, xml: dict[Any, Any]) -> None:
    q = """query($id: String!) { activities(first: 1, where: {iatiIdentifier: {_eq: $id}}) {
      nodes { flows(first: 200) { totalCount nodes { amount currency kind } }
              budgets(first: 200) { totalCount nodes { amount } } } } }"""
    checked = 0
    for (_, ident), a in sorted(xml.items(), key=lambda kv: kv[0])[::40]:
        (node,) = api.query(q, {"id": ident})["activities"]["nodes"]
        values = sorted(Decimal(t.findtext("value").strip()) for t in a.iter("transaction"))
        assert node["flows"]["totalCount"] == len(values)
        assert sorted(Decimal(f["amount"]) for f in node["flows"]["nodes"]) == values
        budgets = sorted(Decimal(b.findtext("value").strip())
                         for b in [*a.findall("budget"), *a.findall("planned-disbursement")])
        assert node["budgets"]["totalCount"] == len(budgets)
        assert sorted(Decimal(b["amount"]) for b in node["budgets"]["nodes"]) == budgets
        checked += len(values) + len(budgets)
    assert checked > 50


def test_activity_flows_page_through_with_cursors(api: Api, xml: Any) -> None:
    ident = max(xml.items(), key=lambda kv: len(kv[1].findall("transaction")))[0][1]
    q = """query($id: String!, $after: String) { activities(first: 1, where: {iatiIdentifier:
      {_eq: $id}}) { nodes { flows(first: 2, after: $after) { totalCount
      nodes { id } pageInfo { hasNextPage endCursor } } } } }"""
    ids: list[str] = []
    after = None
    while True:
        (node,) = api.query(q, {"id": ident, "after": after})["activities"]["nodes"]
        page = node["flows"]
        ids += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(ids) == len(set(ids)) == page["totalCount"] > 2


def _money_out(xml: dict[Any, Any], ref: str) -> dict[tuple[str, str], Decimal]:
    """Money out of ``ref`` by (IATI transaction type, currency): it is the provider (by
    ref or by one of its :data:`NAMES`), or it reports a commitment, disbursement,
    expenditure or pledge naming no provider at all."""
    out: dict[tuple[str, str], Decimal] = {}
    for (rep, _), a in xml.items():
        default = (a.get("default-currency") or "").upper()
        for t in a.iter("transaction"):
            code = t.find("transaction-type").get("code")
            p = t.find("provider-org")
            if _is(p, ref) or (rep == ref and _ref(p) is None and _name(p) is None
                               and code in ("2", "3", "4", "12")):
                v = t.find("value")
                key = (code, (v.get("currency") or default).upper())
                out[key] = out.get(key, Decimal(0)) + Decimal(v.text.strip())
    return out


KINDS = {"1": "INCOMING_FUNDS", "2": "OUTGOING_COMMITMENT", "3": "DISBURSEMENT",
         "11": "INCOMING_COMMITMENT"}


def _page_rows(html: str, direction: str) -> list[dict[str, str]]:
    table = re.search(rf'<table id="money-{direction}">(.*?)</table>', html, re.S)
    assert table is not None
    return [dict(zip(("year", "kind", "currency", "count", "amount", "usd"), m, strict=True))
            for m in re.findall(
                r'<tr data-year="([^"]*)" data-kind="([^"]*)" data-currency="([^"]*)">.*?'
                r'data-count="([^"]*)".*?data-amount="([^"]*)".*?data-usd="([^"]*)"',
                table.group(1), re.S)]


def test_organization_page_money_equals_the_files_and_the_api(api: Api, xml: Any) -> None:
    r = api.get(f"/organization?ref={NL}")
    assert r.status_code == 200, r.text[:300]
    html = r.text
    assert "Ministry of Foreign Affairs of the Netherlands" in html
    assert "Ministerie van Buitenlandse Zaken" in html  # a name seen only in reports
    out = _page_rows(html, "out")
    # the files, by kind and currency over all years
    got: dict[tuple[str, str], Decimal] = {}
    for row in out:
        key = (row["kind"], row["currency"])
        got[key] = got.get(key, Decimal(0)) + Decimal(row["amount"])
    want = {(KINDS[k], c): v for (k, c), v in _money_out(xml, NL).items()}
    assert got == want
    assert want[("DISBURSEMENT", "EUR")] == Decimal("300650467")
    # the API, cell by cell, with the filter the page prints
    from fundtrack.query.organizations import Direction, money_api_where

    for d in ("in", "out"):
        groups = api.query(
            "query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [YEAR, KIND, CURRENCY])"
            " { groups { year kind currency count sum sumUsd } } }",
            {"w": money_api_where(NL, Direction(d))})["flowsAggregate"]["groups"]
        api_cells = {(str(g["year"] or ""), g["kind"], g["currency"] or ""):
                     (g["count"], Decimal(g["sum"]), g["sumUsd"] and Decimal(g["sumUsd"]))
                     for g in groups}
        page_cells = {(r["year"], r["kind"], r["currency"]):
                      (int(r["count"]), Decimal(r["amount"]), r["usd"] and Decimal(r["usd"]))
                      for r in _page_rows(html, d)}
        assert page_cells == api_cells
    assert len(out) == 11  # 7 from its own and the Dutch NGOs' reports, 4 from IOM's


def test_organization_page_unknown_ref_is_404(api: Api) -> None:
    r = api.get("/organization?ref=XM-NOBODY-1")
    assert r.status_code == 404
    assert "No such organisation" in r.text and "XM-NOBODY-1" in r.text
    assert api.get("/organization").status_code == 400


def test_pages_link_to_the_organisation(api: Api) -> None:
    act = api.get("/activity?id=XM-DAC-47066-PB.0001").text
    assert f'href="/organization?ref={PBF}"' in act and 'href="/organization?ref=XM-DAC-47066"' in act
    card = api.get(f"/donor?ref={NL}").text
    assert f'href="/organization?ref={NL}"' in card


SEARCHES = ["ministerio de economia y competitividad",  # "Economía" in a participating org
            "PAÍS VASCO",  # accents and case in the query, not in the text
            "ministerie van buitenlandse zaken",  # a name only a participating org gives
            "united nations peacebuilding fund"]  # a funder named only as participant


@pytest.mark.parametrize("text", SEARCHES)
def test_activity_search_finds_organisation_names(api: Api, xml: Any, text: str) -> None:
    want = sorted(ident for (_, ident), a in xml.items()
                  if any(fold(text) in fold(s) for s in _texts(a)))
    assert want, "the search must find something in the files"
    got = api.query("query($q: String!) { activities(where: {search: $q}, first: 500) "
                    "{ totalCount nodes { iatiIdentifier } } }", {"q": text})["activities"]
    assert sorted(n["iatiIdentifier"] for n in got["nodes"]) == want
    assert got["totalCount"] == len(want)
    page = api.get("/activity", params={"q": text}).text
    found = re.findall(r'<li><a href="/activity\?id=([^"]+)">', page)
    assert len(found) == min(len(want), 50)


def test_activity_search_treats_like_characters_as_text(api: Api, xml: Any) -> None:
    """``%`` and ``_`` are searched for, not wildcards (unescaped, each matches all 860)."""
    for char in ("%", "_"):
        want = sum(1 for a in xml.values() if any(char in s for s in _texts(a)))
        got = api.query("query($q: String!) { activities(where: {search: $q}) { totalCount } }",
                        {"q": char})["activities"]["totalCount"]
        assert got == want < len(xml)


def test_search_counts_are_the_files(xml: Any) -> None:
    """The expectations above are not empty or trivial."""
    counts = [sum(1 for a in xml.values() if any(fold(t) in fold(s) for s in _texts(a)))
              for t in SEARCHES]
    assert counts == [40, 20, 1, 11]
    assert Path(SHARED).exists()


def test_a_code_put_on_another_fund_does_not_make_its_activities_the_pbfs(
        engine: Any) -> None:
    """dportal_118 (UNDP) names XM-DAC-41141 with "UN COVID-19 Response and Recovery Fund
    - MPTF" on some activities: those are that fund's, not the Peacebuilding Fund's."""
    from fundtrack.ingest.pipeline import import_file

    path = SHARED / "iati-activity/dportal-covid19-2021/dportal_118.xml"
    assert import_file(engine, path).status == "applied"
    api = Api(engine.url.render_as_string(hide_password=False))
    pbf, covid = set(), set()
    for a in etree.parse(str(path)).getroot().iter("iati-activity"):
        for p in a.iter("participating-org"):
            if _ref(p) == PBF:
                (pbf if _name(p) == "UNITED NATIONS PEACEBUILDING FUND" else covid).add(
                    a.findtext("iati-identifier").strip())
    assert (len(pbf), len(covid - pbf)) == (1, 6)  # activities (counted above: names)
    org = api.query("""{ organization(ref: "XM-DAC-41141") { activities(first: 50) {
        nodes { iatiIdentifier } } } }""")["organization"]
    assert {n["iatiIdentifier"] for n in org["activities"]["nodes"]} == pbf
    page = api.get(f"/organization?ref={PBF}").text
    names = re.search(r'<table id="names">(.*?)</table>', page, re.S).group(1)
    assert "UNITED NATIONS PEACEBUILDING FUND" in names
    assert "UN COVID-19 Response and Recovery Fund" not in names
