"""Fact sheets in real chromium: the plans of docs/wps-example imported through the API
(``importWpsCsv``, multipart, admin token) into the live server's copy of the shared
IATI files; every figure on the NAP and country sheets equals the API's, the printed
sheet (``page.pdf``, A4) is one page, and the plan page lists the import in its history.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import graphql

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "wps-example"
IMPORT = """mutation($f: [Upload!]!) { importWpsCsv(files: $f) {
  status summary errors { field message } } }"""
NAP = """query($c: String!) { nationalActionPlan(code: $c) { code costedUsd fundedUsd
  unlinkedUsd domesticBudgetUsd movements coverage lines { code costedUsd fundedUsd }
  pillars { pillar costedUsd fundedUsd } } }"""
COUNTRY = """query($c: String!) { countryFactSheet(country: $c) { totalUsd inScopeUsd
  genderPrincipalUsd years { year usd inScopeUsd genderPrincipalUsd } funders { ref usd }
  plans { code fundedUsd } } }"""


def _import_example(live: dict[str, Any]) -> None:
    files = sorted(EXAMPLE.glob("*.csv"))
    ops = {"query": IMPORT, "variables": {"f": [None] * len(files)}}
    fmap = {str(i): [f"variables.f.{i}"] for i in range(len(files))}
    r = httpx.post(live["url"] + "/graphql", data={"operations": json.dumps(ops),
                                                   "map": json.dumps(fmap)},
                   files={str(i): (p.name, p.read_bytes(), "text/csv")
                          for i, p in enumerate(files)},
                   headers={"Authorization": f"Bearer {live['token']}",
                            "Apollo-Require-Preflight": "true", "X-Requested-With": "test"},
                   timeout=60)
    body = r.json()
    assert not body.get("errors"), body
    out = body["data"]["importWpsCsv"]
    assert (out["status"], out["errors"]) == ("applied", []), out


def _usd(page: Any, selector: str) -> list[Decimal]:
    return [Decimal(v) for v in page.eval_on_selector_all(
        selector, "els => els.map(e => e.dataset.usd)")]


def _pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def test_nap_and_country_fact_sheets_equal_the_api_and_print_on_one_page(live, page, artifacts):
    _import_example(live)
    api = graphql(live, NAP, {"c": "LR-2019"})["nationalActionPlan"]
    page.goto(live["url"] + "/nap/LR-2019")
    page.screenshot(path=str(artifacts / "nap-LR-2019.png"), full_page=True)
    figures = {k: Decimal(v) for k, v in page.eval_on_selector_all(
        "#figures [data-usd]", "els => els.map(e => [e.dataset.key, e.dataset.usd || '0'])")}
    assert figures == {"costed_usd": Decimal(api["costedUsd"]),
                       "funded_usd": Decimal(api["fundedUsd"]),
                       "unlinked_usd": Decimal(api["unlinkedUsd"]),
                       "domestic_budget_usd": Decimal(api["domesticBudgetUsd"])}
    assert Decimal(api["fundedUsd"]) > 0 and api["coverage"] is None  # Liberia: not costed
    assert page.inner_text("[data-key=coverage]").startswith("insufficient data")
    assert int(page.get_attribute("[data-key=movements]", "data-value")) == api["movements"]
    assert _usd(page, "#lines td:nth-child(4)") == [Decimal(ln["fundedUsd"])
                                                    for ln in api["lines"]]
    assert _usd(page, "#pillars td:nth-child(3)") == [Decimal(p["fundedUsd"])
                                                      for p in api["pillars"]]
    # the visible figures are the exact ones rounded to whole dollars
    shown = page.inner_text("[data-key=funded_usd]").split()[1].replace(",", "")
    assert Decimal(shown) == Decimal(api["fundedUsd"]).quantize(Decimal(1))
    history = page.eval_on_selector_all("#history tbody tr", "rs => rs.map(r => r.innerText)")
    assert len(history) == 6 and all("csv:nap" in h for h in history)  # the plan and 5 lines
    pdf = page.pdf(format="A4", print_background=True)
    (artifacts / "nap-LR-2019.pdf").write_bytes(pdf)
    assert _pdf_pages(pdf) == 1

    # a costed plan: Georgia 2022-2024, costed in GEL, USD as the source converts it
    ge = graphql(live, NAP, {"c": "GE-2022"})["nationalActionPlan"]
    page.goto(live["url"] + "/nap/GE-2022")
    assert Decimal(ge["costedUsd"]) == Decimal("10426877")
    assert page.get_attribute("[data-key=costed_usd]", "data-usd") == "10426877"
    assert "GEL 27,680,907" in page.inner_text("#lines")
    assert _pdf_pages(page.pdf(format="A4")) == 1

    sheet = graphql(live, COUNTRY, {"c": "LR"})["countryFactSheet"]
    page.goto(live["url"] + "/country/LR")
    page.screenshot(path=str(artifacts / "country-LR.png"), full_page=True)
    assert _usd(page, "#figures [data-usd]") == [
        Decimal(sheet[k]) for k in ("totalUsd", "inScopeUsd", "genderPrincipalUsd")]
    rows = page.eval_on_selector_all("#years tbody tr", "rs => rs.map(r => [r.dataset.year, "
                                     "...[...r.querySelectorAll('[data-usd]')].map(c => c.dataset.usd)])")
    assert [[int(y), *map(Decimal, v)] for y, *v in rows] == [
        [y["year"], Decimal(y["usd"]), Decimal(y["inScopeUsd"]), Decimal(y["genderPrincipalUsd"])]
        for y in sheet["years"]]
    assert _usd(page, "#funders td")[:len(sheet["funders"])] == [
        Decimal(f["usd"]) for f in sheet["funders"]]
    assert _usd(page, "#plans td:nth-child(4)") == [Decimal(p["fundedUsd"])
                                                    for p in sheet["plans"]]
    pdf = page.pdf(format="A4", print_background=True)
    (artifacts / "country-LR.pdf").write_bytes(pdf)
    assert _pdf_pages(pdf) == 1
    assert not page.js_errors
