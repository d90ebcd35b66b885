"""Chromium on the donor Sankey and the trace page: every figure on screen equals the API's
(``donorSankey``, ``trace``, ``traceCheck``), on the shared IATI data (SQLite)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.browser.conftest import graphql

SANKEY = """query($d: String!, $w: FlowWhere) { donorSankey(donor: $d, where: $w) {
  disbursed { currency amount } disbursedUsd passedOnUsd spentUsd untracedUsd coverage
  receiverOnlyUsd bands { stage source { key label } target { key label } amountUsd count } } }"""

CHECK = """query($a: String!) { traceCheck(activity: $a) {
  paid { currency amount } warnings }
  up: trace(from: {activity: $a}, direction: UPSTREAM) {
    originators(first: 500) { amount currency amountUsd } untraced(first: 500) { amount explanation } }
  down: trace(from: {activity: $a}, direction: DOWNSTREAM) {
    terminalsCount untracedCount terminals(first: 500) { amount currency } untraced(first: 500) { amount } } }"""


def test_donor_sankey_on_screen_equals_the_api(live: dict[str, Any], page: Any,
                                               artifacts: Path) -> None:
    page.goto(live["url"] + "/sankey?donor=XM-DAC-7&year=2020")
    page.wait_for_selector("#sankey[data-ready='1']")
    rows = page.eval_on_selector_all(
        "#bands tbody tr", "rs => rs.map(r => [+r.dataset.stage, r.dataset.from, r.dataset.to,"
        " r.cells[1].innerText, r.cells[2].innerText, r.querySelector('[data-usd]').dataset.usd,"
        " r.cells[3].innerText, +r.cells[5].innerText])")
    api = graphql(live, SANKEY, {"d": "XM-DAC-7", "w": {"valueDate": {
        "_gte": "2020-01-01", "_lte": "2020-12-31"}}})["donorSankey"]
    want = [(b["stage"], b["source"]["key"], b["target"]["key"], b["source"]["label"],
             b["target"]["label"], b["amountUsd"], b["count"])
            for b in api["bands"] if Decimal(b["amountUsd"]) > 0]
    assert [(s, f, t, fl, tl, u, n) for s, f, t, fl, tl, u, _shown, n in rows] == want
    for *_, usd, shown, _n in rows:  # the visible figure is the exact one in whole dollars
        assert shown.replace(",", "") == str(Decimal(usd).quantize(Decimal(1)))
    # the chart draws exactly the table's bands
    assert page.locator("#sankey .sankey-link").count() == len(rows)
    # the first band set is the donor's disbursements; the summary says so, to the cent
    assert page.get_attribute("#disbursed-usd", "data-usd") == api["disbursedUsd"]
    assert sum(Decimal(r[5]) for r in rows if r[0] == 1) == Decimal(api["disbursedUsd"])
    [eur] = api["disbursed"]
    assert page.get_attribute("#disbursed [data-currency='EUR']", "data-amount") == eur["amount"]
    for ident, key in (("passed-on", "passedOnUsd"), ("spent", "spentUsd"),
                       ("untraced", "untracedUsd")):
        assert page.get_attribute(f"#{ident}", "data-usd") == api[key]
    # low coverage is said in words, with the percentage
    coverage = page.locator("#coverage")
    assert coverage.is_visible()
    pct = (Decimal(api["coverage"]) * 100).quantize(Decimal("0.1"))
    assert f"{pct}% coverage" in coverage.inner_text()
    assert "cover little of this money" in coverage.inner_text()
    assert page.get_attribute("#receiver-only", "data-usd") == api["receiverOnlyUsd"]
    page.screenshot(path=str(artifacts / "sankey-donor-XM-DAC-7-2020.png"), full_page=True)
    assert page.js_errors == []


def test_trace_page_on_screen_equals_the_api(live: dict[str, Any], page: Any,
                                             artifacts: Path) -> None:
    act = "XM-DAC-7-PPR-4000003915"
    page.goto(live["url"] + f"/activity?id={act}")
    got = graphql(live, CHECK, {"a": act})
    check, up, down = got["traceCheck"], got["up"], got["down"]
    # originated against paid: the cells are the API's figures
    paid = {p["currency"]: Decimal(p["amount"]) for p in check["paid"]}
    origin = {o["currency"]: Decimal(o["amount"]) for o in up["originators"]}
    rows = page.eval_on_selector_all(
        "#originated-vs-paid tbody tr", "rs => rs.map(r => [r.dataset.currency, "
        "...[...r.querySelectorAll('[data-amount]')].map(c => c.dataset.amount)])")
    for cur, p, o, u, diff in rows:
        assert Decimal(p) == paid.get(cur, 0) and Decimal(o) == origin.get(cur, 0)
        assert Decimal(o) + Decimal(u) - Decimal(p) == Decimal(diff)
    # the upstream and downstream tables hold the API's lists
    shown = page.eval_on_selector_all("#upstream tr[data-kind='originator'] [data-amount]",
                                      "cs => cs.map(c => c.dataset.amount)")
    assert [Decimal(x) for x in shown] == [Decimal(o["amount"]) for o in up["originators"]]
    reasons = page.eval_on_selector_all("#upstream tr[data-kind='untraced'] td:first-child",
                                        "cs => cs.map(c => c.innerText)")
    assert reasons == [f"Untraced: {u['explanation']}" for u in up["untraced"]]
    terminals = page.eval_on_selector_all("#downstream tr[data-kind='terminal'] [data-amount]",
                                          "cs => cs.map(c => c.dataset.amount)")
    assert len(terminals) == down["terminalsCount"]
    assert [Decimal(x) for x in terminals] == [Decimal(t["amount"]) for t in down["terminals"]]
    assert page.locator("#downstream tr[data-kind='untraced']").count() == down["untracedCount"]
    # both reports of one payment counted: a visible warning, in the API's words
    warning = page.locator("#trace-check .warning")
    assert warning.count() == len(check["warnings"]) >= 1
    assert warning.first.is_visible()
    assert check["warnings"][0] in " ".join(warning.first.inner_text().split())
    body = page.inner_text("main")
    assert "name:" not in body and "not reported spent" not in body
    page.screenshot(path=str(artifacts / "trace-XM-DAC-7-PPR-4000003915.png"), full_page=True)
    assert page.js_errors == []
