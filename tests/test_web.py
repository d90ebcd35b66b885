"""Server-side page tests through the ASGI app (httpx): every page, figures equal the API's."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from html import unescape as html_unescape
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from fundtrack.api.testing import Api
from fundtrack.web import data
from fundtrack.web.filters import FilterError, FlowFilter

PAGES = ["/", "/sankey", "/sankey?year=2020&gender=1%2B", "/sankey?basis=commitments",
         "/activity", "/activity?q=UNDP", "/donor", "/fund", "/upload", "/imports"]

AGG = ("query($w: FlowWhere, $g: [FlowDimension!]) { flowsAggregate(where: $w, groupBy: $g) "
       "{ groups { provider reportingOrg recipientCountry year kind sumUsd count } } }")


@pytest.fixture(scope="module")
def api(loaded_url: str) -> Api:
    return Api(loaded_url)


def _cells(html: str, attr: str = "data-usd") -> list[str]:
    return re.findall(rf'{attr}="([^"]*)"', html)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_offline_with_exports_and_labels(api: Api, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 200, r.text[:500]
    html = r.text
    assert 'lang="en"' in html and 'href="#main"' in html
    for ext in ("csv", "json", "xml"):
        assert f'href="/export.{ext}' in html
    # nothing from a CDN: every script and stylesheet is ours
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)
    # every form control has a label
    for ident in re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html):
        assert f'for="{ident}"' in html or f'id="{ident}" name="strict"' in html, ident


def test_sankey_bands_equal_flows_aggregate(api: Api) -> None:
    r = api.get("/sankey?year=2021")
    assert r.status_code == 200
    rows = re.findall(r'data-side="(left|right)" data-from="([^"]*)" data-to="([^"]*)">.*?'
                      r'data-usd="([^"]*)"', r.text)
    assert len(rows) > 10
    flt = FlowFilter(year=2021)
    left = api.query(AGG, {"w": flt.with_kinds(data.SANKEY_BASES["cash"][1]).graphql(),
                           "g": ["PROVIDER", "REPORTING_ORG"]})["flowsAggregate"]["groups"]
    right = api.query(AGG, {"w": flt.with_kinds(data.SANKEY_BASES["cash"][2]).graphql(),
                            "g": ["REPORTING_ORG", "RECIPIENT_COUNTRY"]})["flowsAggregate"]["groups"]
    want = {("left", g["provider"] or "", g["reportingOrg"] or ""): Decimal(g["sumUsd"])
            for g in left if g["sumUsd"]}
    want |= {("right", g["reportingOrg"] or "", g["recipientCountry"] or ""): Decimal(g["sumUsd"])
             for g in right if g["sumUsd"]}
    for side, src, dst, usd in rows:
        assert Decimal(usd) == want[(side, src, dst)]
    shown = {(s, a, b) for s, a, b, _ in rows}
    # the largest bands of each side are all shown
    for side in ("left", "right"):
        biggest = sorted((v, k) for k, v in want.items() if k[0] == side)[-5:]
        assert all(k in shown for _, k in biggest)


def test_sankey_gender_filter_changes_the_bands(api: Api) -> None:
    everything = api.get("/sankey").text
    principal = api.get("/sankey?gender=2").text
    total_all = sum(Decimal(x) for x in _cells(everything))
    total_p = sum(Decimal(x) for x in _cells(principal))
    assert 0 < total_p < total_all
    assert 'option value="2" selected' in principal


def test_sankey_pillar_filter_bands_equal_flows_aggregate(api: Api) -> None:
    """Every band under a pillar filter is the API's aggregate under ``pillar: {_eq: ...}``."""
    everything = sum(Decimal(x) for x in _cells(api.get("/sankey").text))
    for pillar in ("protection", "participation"):
        r = api.get(f"/sankey?pillar={pillar}")
        assert r.status_code == 200
        assert f'option value="{pillar}" selected' in r.text
        assert "disabled" not in re.search(r'<select id="f-pillar"[^>]*>', r.text).group(0)
        rows = re.findall(r'data-side="(left|right)" data-from="([^"]*)" data-to="([^"]*)">.*?'
                          r'data-usd="([^"]*)"', r.text)
        assert rows, pillar
        flt = FlowFilter(pillar=pillar)
        assert flt.graphql() == {"pillar": {"_eq": pillar}}
        want = {}
        for side, kinds, dims, keys in (
                ("left", data.SANKEY_BASES["cash"][1], ["PROVIDER", "REPORTING_ORG"],
                 ("provider", "reportingOrg")),
                ("right", data.SANKEY_BASES["cash"][2], ["REPORTING_ORG", "RECIPIENT_COUNTRY"],
                 ("reportingOrg", "recipientCountry"))):
            for g in api.query(AGG, {"w": flt.with_kinds(kinds).graphql(), "g": dims}
                               )["flowsAggregate"]["groups"]:
                if g["sumUsd"]:
                    want[(side, g[keys[0]] or "", g[keys[1]] or "")] = Decimal(g["sumUsd"])
        for side, src, dst, usd in rows:
            assert Decimal(usd) == want[(side, src, dst)]
        assert 0 < sum(Decimal(u) for *_, u in rows) < everything


def test_overview_by_year_equals_the_api(api: Api) -> None:
    html = api.get("/").text
    cells = re.findall(r'data-kind="([A-Z_]+)" data-year="(\d+)" data-usd="([^"]+)"', html)
    groups = api.query(AGG, {"w": {"kind": {"_in": ["INCOMING_FUNDS", "DISBURSEMENT",
                                                     "EXPENDITURE"]}},
                             "g": ["YEAR", "KIND"]})["flowsAggregate"]["groups"]
    want = {(g["kind"], str(g["year"])): Decimal(g["sumUsd"]) for g in groups
            if g["year"] is not None and g["sumUsd"] is not None}
    assert len(cells) == len(want) > 20
    for kind, year, usd in cells:
        assert Decimal(usd) == want[(kind, year)]


def test_overview_gender_table_equals_the_api_on_both_databases(api: Api) -> None:
    """Issue 16: on SQLite the marker came back as the text '2' and the page, looking up the
    number 2, showed dashes for every marked row although the API had the sums."""
    html = api.get("/").text
    cells = re.findall(r'data-marker="([^"]+)" data-gkind="([A-Z_]+)"(?: data-usd="([^"]+)")?', html)
    groups = api.query(
        "query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [GENDER_SIGNIFICANCE, KIND]) "
        "{ groups { genderSignificance kind sumUsd } } }",
        {"w": {"kind": {"_in": ["INCOMING_FUNDS", "DISBURSEMENT", "EXPENDITURE"]}}},
    )["flowsAggregate"]["groups"]
    want = {("none" if g["genderSignificance"] is None else str(g["genderSignificance"]), g["kind"]):
            Decimal(g["sumUsd"]) for g in groups if g["sumUsd"] is not None}
    assert {m for m, _ in want} >= {"2", "1", "0"}, want
    shown = {(m, k): Decimal(u) for m, k, u in cells if u}
    assert shown == want

    found = api.get("/activity?q=XM-DAC-41114").text
    ident = re.search(r'href="/activity\?id=([^"]+)"', found)
    assert ident, "no UNDP activity found"
    r = api.get(f"/activity?id={ident.group(1)}")
    assert r.status_code == 200
    assert 'id="upstream"' in r.text and 'id="downstream"' in r.text and 'id="flows"' in r.text
    assert api.get("/activity?id=NO-SUCH-ACTIVITY").status_code == 404


def test_card_pages_show_cards_or_say_why_not(api: Api) -> None:
    r = api.get("/donor?ref=GB-GOV-1&year=2020")
    assert r.status_code == 200
    assert 'id="card"' in r.text or "not available yet" in r.text
    r = api.get("/fund?ref=XM-DAC-41114&year=2021")
    assert r.status_code == 200
    assert 'id="card"' in r.text or "not available yet" in r.text


def test_plotly_is_served_compressed_and_cached(api: Api) -> None:
    html = api.get("/sankey").text
    src = re.search(r'data-plotly="(/static/plotly\.min\.js\?v=[0-9a-f]+)"', html).group(1)
    r = api.get(src, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "immutable" in r.headers["cache-control"]
    assert int(r.headers["content-length"]) < 1_600_000  # ~4.8 MB raw
    assert b"Plotly" in r.content[:2000] or b"plotly" in r.content[:2000]
    assert api.get("/static/../app.py").status_code == 404
    assert api.get("/static/nope.js").status_code == 404


def test_export_links_stream_the_selection(api: Api) -> None:
    r = api.get("/export.csv?year=2020&kind=DISBURSEMENT")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    want = api.query('{ flowsAggregate(where: {kind: {_in: [DISBURSEMENT]}, valueDate: '
                     '{_gte: "2020-01-01", _lte: "2020-12-31"}}) { count } }')
    assert len(rows) == want["flowsAggregate"]["count"]
    assert api.get("/export.xml?year=1800").status_code == 400
    assert api.get("/export.exe").status_code == 404


def test_filter_vocabulary() -> None:
    f = FlowFilter.parse({"year": "2020", "kind": "disbursement,expenditure", "gender": "1+",
                          "country": "af", "pillar": "protection", "other": "ignored"})
    assert f.params() == {"year": "2020", "kind": "DISBURSEMENT,EXPENDITURE", "gender": "1+",
                          "country": "AF", "pillar": "protection"}
    assert f.graphql()["genderSignificance"] == {"_gte": 1}
    assert f.graphql()["pillar"] == {"_eq": "protection"}
    with pytest.raises(FilterError, match="pillar must be one of participation"):
        FlowFilter.parse({"pillar": "peace"})
    with pytest.raises(FilterError):
        FlowFilter.parse({"kind": "gift"})
    with pytest.raises(FilterError):
        FlowFilter.parse_pairs(["year2020"])


def test_overview_names_organisations_known_only_by_name(api: Api, loaded_url: str) -> None:
    """Issue 15: a donor that reports never identified is its canonical organisation's name
    with "no identifier reported" beside it, not its internal key ("name:giz")."""
    from fundtrack.db import make_engine
    from fundtrack.identity.tables import CanonicalOrg

    html = api.get("/").text
    donors = html[html.index("Largest donors"):html.index("Largest senders")]
    rows = re.findall(r'<a href="/donor\?ref=([^"]+)">([^<]*)</a> <small>([^<]*)</small>', donors)
    assert rows
    assert not [name for _, name, _ in rows if name.startswith("name:")]
    eng = make_engine(loaded_url)
    with eng.connect() as c:
        canon = dict(c.execute(select(CanonicalOrg.ref, CanonicalOrg.name)).all())
    eng.dispose()
    only_named = [(unquote(ref), name, small) for ref, name, small in rows
                  if unquote(ref).startswith("name:")]
    assert only_named, "the loaded files have a donor known only by name"
    for ref, name, small in only_named:
        assert html_unescape(name) == canon[ref].strip()
        assert small == "no identifier reported"
