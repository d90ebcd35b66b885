"""The organisation page in chromium: what is on screen equals the API.

Runs on the live server over the shared IATI files (tests/browser/conftest.py). Every
money cell (count, exact amount as shown, USD) against ``flowsAggregate`` with the filter
the page prints; the activities' count against ``organization { activities { totalCount } }``;
reached by clicking from an activity page. Screenshot: test-artifacts/organization-*.png.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.browser.conftest import graphql

AGG = """query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [YEAR, KIND, CURRENCY]) {
  groups { year kind currency count sum sumUsd } } }"""
ORG = """query($r: String!) { organization(ref: $r) { name canonical { ref name }
  activities { totalCount } } }"""


def _title(org: dict[str, Any]) -> str:
    """The page's title: the canonical organisation's name unless it is only its ref,
    else the registry's name."""
    c = org["canonical"]
    return c["name"] if c and c["name"] and c["name"] != c["ref"] else org["name"]


def _cells(page: Any, direction: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(f"#money-{direction} tbody tr[data-kind]", """rs =>
        rs.map(r => ({...r.dataset, cells: [...r.querySelectorAll('td')].map(c => c.innerText),
                      usd: r.querySelector('[data-usd]').dataset.usd}))""")


def test_organization_page_equals_the_api(live: dict[str, Any], page: Any,
                                          artifacts: Path) -> None:
    ref = "XM-DAC-7"
    page.goto(live["url"] + f"/organization?ref={quote(ref)}")
    api = graphql(live, ORG, {"r": ref})["organization"]
    assert page.inner_text("h1") == _title(api)
    shown = 0
    for d in ("in", "out"):
        note = page.inner_text(f"#money-{d}-h + p")
        where = json.loads(re.search(r"flowsAggregate\(where: (\{.*\}), groupBy", note).group(1))
        groups = graphql(live, AGG, {"w": where})["flowsAggregate"]["groups"]
        want = {(str(g["year"] or ""), g["kind"], g["currency"] or ""): g for g in groups}
        rows = _cells(page, d)
        assert len(rows) == len(want)
        for r in rows:
            g = want[(r["year"], r["kind"], r["currency"])]
            year, kind, currency, count, amount, _usd = r["cells"]
            assert year == (r["year"] or "(no date)")
            assert kind == g["kind"].replace("_", " ").lower() and currency == g["currency"]
            assert int(count) == g["count"]
            assert Decimal(amount.replace(",", "")) == Decimal(g["sum"])  # exact on screen
            assert Decimal(r["usd"]) == Decimal(g["sumUsd"])
            shown += 1
    assert shown >= 7
    assert page.inner_text("#acts-h") == f"Activities ({api['activities']['totalCount']})"
    page.screenshot(path=str(artifacts / "organization-xm-dac-7.png"), full_page=True)
    assert page.js_errors == []


def test_activity_page_links_to_the_organisation(live: dict[str, Any], page: Any,
                                                 artifacts: Path) -> None:
    page.goto(live["url"] + "/activity?id=XM-DAC-47066-PB.0001")
    page.click("#participants a.org")
    page.wait_for_url("**/organization?ref=XM-DAC-41141")
    # The registry keeps the first name a file gave (publishers also put XM-DAC-41141 on
    # other trust funds: issue 15); the page names the canonical organisation.
    assert page.inner_text("h1") == "UN Peacebuilding Fund"
    assert _title(graphql(live, ORG, {"r": "XM-DAC-41141"})["organization"]) == \
        "UN Peacebuilding Fund"
    assert "XM-DAC-41141" in page.inner_text("#org-refs")
    assert "UNITED NATIONS PEACEBUILDING FUND" in page.inner_text("#names")
    # identity on the page: the misused code is marked, name-only parties matched by name
    assert "only with a name that agrees" in page.inner_text("#identifiers")
    assert page.locator('#matches tr[data-rule="name"]').count() >= 1
    page.screenshot(path=str(artifacts / "organization-pbf.png"), full_page=True)


def test_unknown_organisation_page(live: dict[str, Any], page: Any) -> None:
    resp = page.goto(live["url"] + "/organization?ref=XM-NOBODY-1")
    assert resp.status == 404
    assert "No such organisation: 'XM-NOBODY-1'" in page.inner_text("p.error")
