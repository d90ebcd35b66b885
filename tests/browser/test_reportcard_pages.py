"""The report card and league table pages in chromium: what is on screen equals the API.

Runs on the live server over the shared IATI files (tests/browser/conftest.py). Every
line's value, status, grade, base and coverage, as the page shows them (the visible text
and the exact figures in data attributes), against ``reportCard`` / ``leagueTable``.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from fundtrack.web.routes import pct
from tests.browser.conftest import graphql

CARD = """query($d: String!, $y: Int) { reportCard(donor: $d, year: $y) { year items {
  key value status grade baseCount baseUsd coverage } } }"""
LEAGUE = """query($m: String!, $y: Int) { leagueTable(measure: $m, year: $y) { year rows {
  rank subject item { value status grade baseCount baseUsd coverage }
  trend { year value rank } } } }"""


def _pct(v: str | None) -> str:
    """The page's percentage rule (tests/test_pct_boundary.py pins it down)."""
    return pct(None if v is None else Decimal(v))


def _exact(v: str | None) -> str:
    return "" if v is None else format(Decimal(v), "f")


def _same(page_value: str, api_value: str | None) -> bool:
    """The page's exact figure (data attribute) and the API's are the same number."""
    if api_value is None:
        return page_value == ""
    return page_value != "" and Decimal(page_value) == Decimal(api_value)


def _rows(page: Any, selector: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(selector, """rs => rs.map(r => ({...r.dataset,
        valueText: (r.querySelector('td.value') || {}).innerText || '',
        rankText: (r.querySelector('td.rank') || {}).innerText || '',
        gradeText: r.querySelector('td.grade-cell').innerText,
        trend: [...r.querySelectorAll('.trend .point')].map(p => ({...p.dataset}))}))""")


def test_report_card_page_equals_the_api(live: dict[str, Any], page: Any, artifacts: Path) -> None:
    page.goto(live["url"] + "/donor?ref=SE-0&year=2020")
    rows = _rows(page, "#card tbody tr")
    api = graphql(live, CARD, {"d": "SE-0", "y": 2020})["reportCard"]["items"]
    assert [r["key"] for r in rows] == [i["key"] for i in api]
    for r, i in zip(rows, api, strict=True):
        assert (r["status"], r["grade"]) == (i["status"], i["grade"] or ""), i["key"]
        assert _same(r["value"], i["value"]) and _same(r["coverage"], i["coverage"]), i["key"]
        assert _same(r["baseUsd"], i["baseUsd"]), i["key"]
        assert r["baseCount"] == ("" if i["baseCount"] is None else str(i["baseCount"]))
        if i["status"] in ("graded", "insufficient-data", "not-graded") and \
                i["key"] != "reported_by_others":
            assert r["valueText"].strip() == _pct(i["value"]), i["key"]
        if i["status"] == "graded":
            assert r["gradeText"].startswith(i["grade"])
        if i["status"] == "insufficient-data":
            assert r["gradeText"].startswith("insufficient data")
    page.screenshot(path=str(artifacts / "card-se-2020.png"), full_page=True)
    assert page.js_errors == []


def test_card_opens_on_the_latest_year_with_data(live: dict[str, Any], page: Any) -> None:
    page.goto(live["url"] + "/donor?ref=SE-0")
    want = graphql(live, CARD, {"d": "SE-0", "y": None})["reportCard"]["year"]
    assert want == 2021
    assert page.eval_on_selector("#c-year", "s => s.value") == str(want)
    assert f", {want}" in page.inner_text("#card-h")


def test_unknown_organisation_page(live: dict[str, Any], page: Any) -> None:
    resp = page.goto(live["url"] + "/donor?ref=XM-NOBODY-1")
    assert resp.status == 404
    assert "No such organisation: 'XM-NOBODY-1'" in page.inner_text("p.error")
    assert page.locator("#card").count() == 0


def test_league_page_equals_the_api(live: dict[str, Any], page: Any, artifacts: Path) -> None:
    page.goto(live["url"] + "/league?kind=donor&measure=gender_principal_share&year=2020")
    rows = _rows(page, "#league tbody tr")
    api = graphql(live, LEAGUE, {"m": "gender_principal_share", "y": 2020})["leagueTable"]
    shown = [r for r in api["rows"] if r["item"]["baseCount"]]  # empty bases are listed apart
    assert [r["subject"] for r in rows] == [r["subject"] for r in shown]
    assert any(r["rank"] for r in shown) and any(not r["rank"] for r in shown)
    for r, a in zip(rows, shown, strict=True):
        it = a["item"]
        assert r["rank"] == ("" if a["rank"] is None else str(a["rank"]))
        assert r["rankText"].strip() == ("–" if a["rank"] is None else str(a["rank"]))
        assert (r["status"], r["grade"]) == (it["status"], it["grade"] or "")
        assert _same(r["value"], it["value"]) and _same(r["coverage"], it["coverage"])
        assert _same(r["baseUsd"], it["baseUsd"]) and r["baseCount"] == str(it["baseCount"])
        assert r["valueText"].split("\n")[0].strip() == _pct(it["value"])
        # the trend: the last six years up to the table's, value and that year's rank
        want = [p for p in a["trend"] if p["year"] <= api["year"]][-6:]
        assert [(int(p["year"]), p["rank"]) for p in r["trend"]] == [
            (p["year"], "" if p["rank"] is None else str(p["rank"])) for p in want]
        assert all(_same(p["value"], q["value"]) for p, q in zip(r["trend"], want, strict=True))
    empty = [r["subject"] for r in api["rows"] if not r["item"]["baseCount"]]
    if empty:
        assert all(s in page.inner_text("#league-empty") for s in empty)
    page.screenshot(path=str(artifacts / "league-gender-2020.png"), full_page=True)
    with page.expect_navigation():
        page.select_option("#l-measure", "traceability")
        page.click("form.filters button")
    assert "measure=traceability" in page.url
    page.screenshot(path=str(artifacts / "league-traceability.png"), full_page=True)
    assert page.js_errors == []
