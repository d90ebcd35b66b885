"""The overview's gender table in chromium: what is on screen equals the API.

Issue 16: on SQLite the marker came back as the text '2' and the page, looking up the
number 2, showed dashes beside USD 37.3M principal. Each cell's visible figure (rounded
to the dollar) and its exact figure (data attribute) against ``flowsAggregate`` grouped
by GENDER_SIGNIFICANCE and KIND over the same kinds. Screenshot to test-artifacts/.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.browser.conftest import graphql

AGG = """query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [GENDER_SIGNIFICANCE, KIND]) {
  groups { genderSignificance kind sumUsd } } }"""


def test_overview_gender_table_equals_the_api(live: dict[str, Any], page: Any,
                                               artifacts: Path) -> None:
    page.goto(live["url"] + "/")
    cells = page.eval_on_selector_all("#gender-table td[data-marker]", """cs => cs.map(c => ({
        marker: c.dataset.marker, kind: c.dataset.gkind, usd: c.dataset.usd || '',
        text: c.innerText.trim()}))""")
    groups = graphql(live, AGG, {"w": {"kind": {"_in": ["INCOMING_FUNDS", "DISBURSEMENT",
                                                         "EXPENDITURE"]}}})
    want = {("none" if g["genderSignificance"] is None else str(g["genderSignificance"]),
             g["kind"]): Decimal(g["sumUsd"])
            for g in groups["flowsAggregate"]["groups"] if g["sumUsd"] is not None}
    assert {m for m, _ in want} >= {"2", "1", "0", "none"}, want
    shown = {(c["marker"], c["kind"]): c for c in cells}
    assert len(shown) == 4 * len({k for _, k in shown})
    for key, c in shown.items():
        if key not in want:
            assert (c["usd"], c["text"]) == ("", "–"), key
            continue
        assert Decimal(c["usd"]) == want[key], key
        assert c["text"] == f"{want[key].quantize(Decimal(1)):,}", key
    principal = sum((v for (m, _), v in want.items() if m == "2"), Decimal(0))
    assert principal > 0
    page.locator("#by-gender").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "overview-gender.png"), full_page=True)
    assert page.js_errors == []
    # the page's gender filter (genderSignificance) keeps exactly the principal row
    page.goto(live["url"] + "/?gender=2")
    cells = page.eval_on_selector_all("#gender-table td[data-marker]", """cs => cs.map(c => ({
        marker: c.dataset.marker, kind: c.dataset.gkind, usd: c.dataset.usd || ''}))""")
    assert {(c["marker"], c["kind"]): Decimal(c["usd"]) for c in cells if c["usd"]} == {
        k: v for k, v in want.items() if k[0] == "2"}
