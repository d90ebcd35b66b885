"""Chromium on the activity page: the 1325 scope and pillars shown beside each flow, with
the rules that decided them and their rationale, equal the API's ``Flow.classification``
(shared IATI data, SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fundtrack.query.ids import encode_id
from tests.browser.conftest import graphql

FLOWS = """query($a: String!) { flows(first: 500, where: {activity: {iatiIdentifier:
  {_eq: $a}}}) { nodes { id classification { dimension isIn rules { id note
  lowConfidence } } } } }"""


def test_activity_page_classification_equals_the_api(live: dict[str, Any], page: Any,
                                                     artifacts: Path) -> None:
    # a Sida humanitarian activity (dportal_36-39): DAC 72010, "protection" and women
    # named in its description: scope, protection and relief and recovery
    act = "SE-0-SE-6-10451A0101-YEM-72010"
    page.goto(live["url"] + f"/activity?id={act}")
    shown = page.eval_on_selector_all(
        "#flows tbody tr", "rs => rs.map(r => [r.dataset.flow, [...r.querySelectorAll("
        "'.class')].map(c => [c.dataset.dimension, [...c.querySelectorAll('abbr.rule')]"
        ".map(a => [a.dataset.rule, a.title, a.classList.contains('low')])])])")
    api = {n["id"]: n["classification"] for n in graphql(live, FLOWS, {"a": act})["flows"]["nodes"]}
    assert len(shown) == len(api) == 22
    for pk, classes in shown:
        want = [(c["dimension"].removeprefix("pillar:"),
                 [[r["id"], r["note"], r["lowConfidence"]] for r in c["rules"]])
                for c in api[encode_id("Flow", int(pk))] if c["isIn"]]
        # scope first, then the pillars, as the API lists them (pillars sort before scope)
        want = sorted(want, key=lambda d: (d[0] != "scope", d[0]))
        assert [(d, rules) for d, rules in classes] == want
    assert {d for _, classes in shown for d, _ in classes} == {
        "scope", "protection", "relief-and-recovery"}
    page.screenshot(path=str(artifacts / "activity-classification.png"), full_page=True)
    assert page.js_errors == []
