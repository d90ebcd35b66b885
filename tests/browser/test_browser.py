"""Playwright + Debian chromium against a live server on the shared IATI data.

Opens every page (screenshots in test-artifacts/), changes a Sankey filter, uploads a file
with a dry run then for real, reverts it, and checks figures on screen against the API.
Also measures page weight and load time (cold cache, and on an emulated slow link).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import graphql

PAGES = {"overview": "/", "sankey": "/sankey", "activity": "/activity?q=XM-DAC-41114",
         "donor": "/donor?ref=GB-GOV-1&year=2020", "fund": "/fund?ref=XM-DAC-41114&year=2021",
         "upload": "/upload", "imports": "/imports"}

AGG = ("query($w: FlowWhere, $g: [FlowDimension!]) { flowsAggregate(where: $w, groupBy: $g) "
       "{ groups { provider reportingOrg recipientCountry year kind sumUsd } } }")

UPLOAD = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03">
 <iati-activity default-currency="USD">
  <iati-identifier>XX-BROWSER-1</iati-identifier>
  <reporting-org ref="XX-BROWSER" type="21"><narrative>Browser Test Org</narrative></reporting-org>
  <title><narrative>Women's mediation network</narrative></title>
  <transaction><transaction-type code="1"/><transaction-date iso-date="2021-02-01"/>
   <value value-date="2021-02-01">250000.25</value>
   <provider-org ref="XX-DONOR"><narrative>Test donor</narrative></provider-org></transaction>
  <transaction><transaction-type code="3"/><transaction-date iso-date="2021-05-01"/>
   <value value-date="2021-05-01">12,5x</value></transaction>
  <transaction><transaction-type code="4"/><transaction-date iso-date="2021-06-01"/>
   <value value-date="2021-06-01">100000</value><recipient-country code="CO"/></transaction>
 </iati-activity>
</iati-activities>
"""


def _bands(page: Any) -> dict[tuple[str, str, str], Decimal]:
    rows = page.eval_on_selector_all(
        "#bands tbody tr", "rs => rs.map(r => [r.dataset.side, r.dataset.from, r.dataset.to,"
        " r.querySelector('[data-usd]').dataset.usd, r.cells[2].innerText])")
    out = {}
    for side, src, dst, usd, text in rows:
        # the visible figure is the exact one rounded to whole dollars
        assert text.replace(",", "") == str(Decimal(usd).quantize(Decimal(1)))
        out[(side, src, dst)] = Decimal(usd)
    return out


def _api_bands(live: dict[str, Any], year: int | None) -> dict[tuple[str, str, str], Decimal]:
    date = {"valueDate": {"_gte": f"{year}-01-01", "_lte": f"{year}-12-31"}} if year else {}
    left = graphql(live, AGG, {"w": {"kind": {"_in": ["INCOMING_FUNDS"]}, **date},
                               "g": ["PROVIDER", "REPORTING_ORG"]})
    right = graphql(live, AGG, {"w": {"kind": {"_in": ["DISBURSEMENT", "EXPENDITURE"]}, **date},
                                "g": ["REPORTING_ORG", "RECIPIENT_COUNTRY"]})
    out = {("left", g["provider"] or "", g["reportingOrg"] or ""): Decimal(g["sumUsd"])
           for g in left["flowsAggregate"]["groups"] if g["sumUsd"]}
    out |= {("right", g["reportingOrg"] or "", g["recipientCountry"] or ""): Decimal(g["sumUsd"])
            for g in right["flowsAggregate"]["groups"] if g["sumUsd"]}
    return out


@pytest.mark.parametrize("name", list(PAGES))
def test_open_every_page(live: dict[str, Any], page: Any, artifacts: Path, name: str) -> None:
    page.goto(live["url"] + PAGES[name])
    assert page.locator("h1").count() == 1
    if name == "sankey":
        page.wait_for_selector("#sankey[data-ready='1']")
        assert page.locator("#sankey .sankey-link").count() == page.locator("#bands tbody tr").count()
    # keyboard: the first Tab reaches the skip link, which moves focus to the content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=name != "imports")
    assert page.js_errors == []


def test_overview_numbers_equal_the_api(live: dict[str, Any], page: Any) -> None:
    page.goto(live["url"] + "/")
    cells = page.eval_on_selector_all(
        "#by-year-table td[data-usd]", "cs => cs.map(c => [c.dataset.kind, c.dataset.year, "
        "c.dataset.usd, c.innerText.trim()])")
    groups = graphql(live, AGG, {"w": {"kind": {"_in": ["INCOMING_FUNDS", "DISBURSEMENT",
                                                         "EXPENDITURE"]}},
                                 "g": ["YEAR", "KIND"]})["flowsAggregate"]["groups"]
    want = {(g["kind"], str(g["year"])): Decimal(g["sumUsd"]) for g in groups
            if g["year"] is not None and g["sumUsd"]}
    assert len(cells) == len(want) > 20
    for kind, year, usd, text in cells:
        assert Decimal(usd) == want[(kind, year)]
        assert text.replace(",", "") == str(want[(kind, year)].quantize(Decimal(1)))


def test_sankey_filter_change(live: dict[str, Any], page: Any, artifacts: Path) -> None:
    page.goto(live["url"] + "/sankey")
    page.wait_for_selector("#sankey[data-ready='1']")
    before = _bands(page)
    want = _api_bands(live, None)
    assert before and all(want[k] == v for k, v in before.items())
    with page.expect_navigation():
        page.select_option("#f-year", "2021")  # a change submits the form
    assert "year=2021" in page.url
    page.wait_for_selector("#sankey[data-ready='1']")
    after = _bands(page)
    want = _api_bands(live, 2021)
    assert after and after != before
    assert all(want[k] == v for k, v in after.items())
    # the chart holds exactly the table's bands
    assert page.locator("#sankey .sankey-link").count() == len(after)
    page.screenshot(path=str(artifacts / "sankey-2021.png"), full_page=True)
    assert page.js_errors == []


def test_upload_dry_run_then_import_then_revert(live: dict[str, Any], page: Any,
                                                 artifacts: Path, tmp_path: Path) -> None:
    report = tmp_path / "browser-report.xml"
    report.write_text(UPLOAD, encoding="utf-8")
    page.goto(live["url"] + "/upload")
    page.fill("#token", live["token"])
    page.click("#token-form button[type=submit]")
    assert "Token set" in page.inner_text("#token-status")
    page.set_input_files("#file", str(report))
    page.click("#dry-run")
    page.wait_for_selector("#upload-status")
    assert page.get_attribute("#upload-status", "data-status") == "dry-run"
    issues = page.eval_on_selector_all("#issues tbody tr", "rs => rs.map(r => r.innerText)")
    assert len(issues) == 1 and "bad-amount" in issues[0]
    assert "transaction[2]" in issues[0] and "(line 10)" in issues[0]
    assert "record skipped" in issues[0]
    # plain language: what would be imported, replaced and skipped; no internal counters
    assert page.inner_text("#upload-status").startswith(
        "Checked browser-report.xml: it can be imported. Nothing has been written yet")
    summary = page.inner_text("#upload-summary")
    assert "Would import: 1 activity and 2 flows of money" in summary
    assert "Would replace: nothing" in summary
    assert "Skipped: 1 record that could not be read" in summary
    assert not any(w in page.inner_text("#result") for w in
                   ("attribution", "reach rows", "reattributed", "dry-run", "--"))
    page.screenshot(path=str(artifacts / "upload-dry-run.png"), full_page=True)
    # nothing written by the dry run
    probe = '{ flowsAggregate(where: {reportingOrgRef: {_eq: "XX-BROWSER"}}) { count } }'
    assert graphql(live, probe)["flowsAggregate"]["count"] == 0

    page.click("#confirm")
    page.wait_for_selector("#upload-status[data-status='applied']")
    assert page.inner_text("[data-count='flows']") == "2"
    assert page.inner_text("[data-count='activities']") == "1"
    assert "is applied" in page.inner_text("#batch-summary")
    status = page.inner_text("#upload-status")
    number = re.fullmatch(r"Imported browser-report\.xml as batch (\d+)\.", status).group(1)
    # one id for one batch: the number the history lists, nothing else
    assert re.findall(r"batch (\d+)", page.inner_text("#result"), flags=re.I) == [number, number]
    page.screenshot(path=str(artifacts / "upload-applied.png"), full_page=True)
    agg = graphql(live, '{ flowsAggregate(where: {reportingOrgRef: {_eq: "XX-BROWSER"}}) '
                  '{ count groups { sum } } }')["flowsAggregate"]
    assert agg["count"] == 2 and Decimal(agg["groups"][0]["sum"]) == Decimal("350000.25")

    page.goto(live["url"] + "/imports")
    page.fill("#token", live["token"])
    page.click("#token-form button[type=submit]")
    row = page.locator("#batches tbody tr").first
    assert "browser-report.xml" in row.inner_text()
    assert row.get_attribute("data-batch") == number
    page.once("dialog", lambda d: d.accept())
    row.locator("button.revert").click()
    page.wait_for_selector("#revert-status:has-text('reverted')")
    assert page.inner_text("#revert-status") == f"Batch {row.get_attribute('data-batch')} reverted."
    assert row.locator("td.status").inner_text() == "reverted"
    assert graphql(live, probe)["flowsAggregate"]["count"] == 0
    page.screenshot(path=str(artifacts / "imports-reverted.png"))
    assert page.js_errors == []


def test_page_weight_and_load_time(live: dict[str, Any], browser: Any, artifacts: Path) -> None:
    """Cold cache: bytes over the wire and load time, locally and on an emulated slow link."""
    metrics: dict[str, Any] = {}
    for link, conditions in (("local", None),
                             ("slow-3g-like: 400 kbit/s down, 400 ms RTT",
                              {"offline": False, "latency": 400, "downloadThroughput": 50_000,
                               "uploadThroughput": 50_000})):
        for name in ("overview", "sankey", "upload", "imports"):
            context = browser.new_context()
            pg = context.new_page()
            if conditions:
                cdp = context.new_cdp_session(pg)
                cdp.send("Network.enable")
                cdp.send("Network.emulateNetworkConditions", conditions)
            pg.goto(live["url"] + PAGES[name], wait_until="load", timeout=180000)
            if name == "sankey":
                pg.wait_for_selector("#sankey[data-ready='1']", timeout=180000)
            m = pg.evaluate("""() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const res = performance.getEntriesByType('resource');
                const bytes = nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0);
                return {bytes, requests: 1 + res.length, load_ms: Math.round(performance.now()),
                        dom_ms: Math.round(nav.domContentLoadedEventEnd)};
            }""")
            metrics.setdefault(link, {})[name] = m
            context.close()
    (artifacts / "page-metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    local = metrics["local"]
    for name in ("overview", "upload", "imports"):
        assert local[name]["bytes"] < 150_000, (name, local[name])
    assert local["sankey"]["bytes"] < 1_700_000  # plotly, gzip-compressed, then cached
