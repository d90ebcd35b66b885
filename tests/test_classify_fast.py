"""The classification's fast path (rules compiled once per run, verdicts kept per distinct
codes and text pieces, rule inputs loaded without whole items) writes exactly the rows the
per-flow dict matcher wrote before it.

The reference below is that matcher and ``stored.rows_for`` as they were (commit 7da04f9),
kept verbatim so the comparison does not share code with what it checks; the row counts and
the digest on the shared IATI files were taken with that commit's own ``stored.rebuild``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fundtrack.accounting import stored
from fundtrack.accounting.classify import (
    SCOPE,
    Classifier,
    apply_gender_overrides,
    checked_rules,
    fts_clusters,
    load_overrides,
    plugin_classifiers,
    subject_of,
)
from fundtrack.accounting.config import load_file
from fundtrack.accounting.evaluate import item_from_row, read_sample
from fundtrack.accounting.items import Item, RuleInput, load_items, load_rule_inputs
from fundtrack.accounting.markers import GENDER_DIMENSIONS, UNMARKED, marker_rule
from fundtrack.accounting.tables import FlowClassification

# ---- the reference: the matcher and rows_for of commit 7da04f9 -----------------------------

GATE_KEYS = ("sectors", "sector_ranges", "tags", "clusters")


@cache
def _keyword_re(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    alts = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w]){'(?:' + alts + ')'}(?![\w])", re.IGNORECASE)


def _in_rule_sectors(rule: dict[str, Any], code: str) -> bool:
    if code in rule.get("sectors", []):
        return True
    return len(code) == 5 and code.isdigit() and any(
        lo <= code <= hi for lo, hi in rule.get("sector_ranges", []))


def _sector_share(rule: dict[str, Any], it: Any) -> float:
    codes = set(it.sectors)
    return sum(1 for c in codes if _in_rule_sectors(rule, c)) / len(codes) if codes else 0.0


def _gate_matches(rule: dict[str, Any], it: Any) -> bool:
    if any(_in_rule_sectors(rule, c) for c in set(it.sectors)):
        return True
    tags = {t.lower() for t in it.tags}
    if tags & {t.lower() for t in rule.get("tags", [])}:
        return True
    return bool(fts_clusters(it.extra) & set(rule.get("clusters", [])))


def _narrow_matches(rule: dict[str, Any], it: Any) -> bool:
    ex = _keyword_re(tuple(rule.get("exclude", [])))
    if ex and it.text and ex.search(it.text):
        return False
    if "min_share" in rule and _sector_share(rule, it) < float(rule["min_share"]):
        return False
    markers, rx = rule.get("markers"), _keyword_re(tuple(rule.get("keywords", [])))
    if markers is None and rx is None:
        return True
    if markers is not None and it.marker is not None and it.marker.common in markers:
        return True
    return bool(rx and it.text and rx.search(it.text))


def _rule_matches(rule: dict[str, Any], it: Any) -> bool:
    if rule.get("match") == "any":
        rx = _keyword_re(tuple(rule.get("keywords", [])))
        return _gate_matches(rule, it) or bool(rx and it.text and rx.search(it.text))
    if any(rule.get(k) for k in GATE_KEYS):
        return _gate_matches(rule, it) and _narrow_matches(rule, it)
    return bool(rule.get("keywords")) and _narrow_matches(rule, it)


def old_hits(rules: dict[str, Any], it: Any) -> tuple[tuple[str, str], ...]:
    return tuple((dim, r["id"]) for r in rules["rules"] if _rule_matches(r, it)
                 for dim in r["sets"])


def old_rows(conn) -> set[tuple[int, str, bool, str | None]]:
    """Every current flow's rows as the old rows_for wrote them (whole items, per flow)."""
    overrides, extra, rules = load_overrides(conn), plugin_classifiers(), checked_rules()
    items = load_items(conn)
    apply_gender_overrides(items, overrides)
    out: set[tuple[int, str, bool, str | None]] = set()
    for it in items:
        mk = it.marker
        if mk.common in GENDER_DIMENSIONS:
            out.add((it.flow_id, GENDER_DIMENSIONS[mk.common], True, marker_rule(mk)))
        why: dict[str, list[str]] = {}
        for dim, rid in old_hits(rules, it):
            why.setdefault(dim, []).append(rid)
        for fn in extra:
            for dim, rid in fn(it) or []:
                why.setdefault(dim, []).append(rid)
        mine = overrides.get(subject_of(it), {})
        for dim, (value, oid) in mine.items():
            if dim != "gender":
                if value == "in":
                    why[dim] = [f"override:{oid}"]
                else:
                    why.pop(dim, None)
        out_by_hand = {dim: f"override:{oid}" for dim, (value, oid) in mine.items()
                       if value == "out" and dim != "gender"}
        out.add((it.flow_id, SCOPE, SCOPE in why,
                 " ".join(why.get(SCOPE, [])) or out_by_hand.get(SCOPE)))
        out |= {(it.flow_id, d[:40], True, " ".join(w)) for d, w in why.items() if d != SCOPE}
        out |= {(it.flow_id, d[:40], False, w) for d, w in out_by_hand.items()
                if d != SCOPE and d not in why}
    return out


# ---- real data -----------------------------------------------------------------------------

def table_rows(conn) -> set[tuple[int, str, bool, str | None]]:
    t = FlowClassification.__table__
    return {(r.flow_id, r.dimension, bool(r.is_in), r.rules)
            for r in conn.execute(select(t.c.flow_id, t.c.dimension, t.c.is_in, t.c.rules))}


def digest(rows: set[tuple[int, str, bool, str | None]]) -> str:
    """SHA-256 of the rows without their flow ids (ids differ between databases)."""
    lines = sorted(f"{d}|{i}|{r}" for _, d, i, r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


#: Taken with commit 7da04f9's stored.rebuild on every shared IATI activity file.
OLD_COUNTS = {("gender:not-targeted", True): 4244, ("gender:principal", True): 664,
              ("gender:significant", True): 4914, ("pillar:participation", True): 176,
              ("pillar:prevention", True): 248, ("pillar:protection", True): 1572,
              ("pillar:relief-and-recovery", True): 2393, ("scope", False): 14962,
              ("scope", True): 3088}
OLD_DIGEST = "e2af512f5e44891bfef80e4e4e4b137ecff8a902fa908f1a6b450ef40b68378f"


def test_real_files_rows_equal_the_old_code(loaded_engine):
    """The rows the import wrote (after_import per file), a rebuild's and the old per-flow
    code's are the same set, and the same as commit 7da04f9 wrote."""
    with loaded_engine.connect() as c:
        reference = old_rows(c)
        assert Counter((d, i) for _, d, i, _ in reference) == OLD_COUNTS
        assert digest(reference) == OLD_DIGEST
        assert table_rows(c) == reference
        c.rollback()
        tx = c.begin()  # the database is shared by read-only tests: leave it as it was
        assert stored.rebuild(c) == {"classified_flows": 18050}
        assert table_rows(c) == reference
        tx.rollback()


def test_rule_inputs_are_the_items_fields(loaded_engine):
    """load_rule_inputs: load_items's flows, in its order, with the same rule fields."""
    with loaded_engine.connect() as c:
        items, inputs = load_items(c), load_rule_inputs(c)
    assert len(items) == len(inputs) == 18050
    for it, ri in zip(items, inputs, strict=True):
        assert (it.flow_id, it.activity_identifier, it.sectors, it.tags, it.text, it.extra,
                it.marker) == (ri.flow_id, ri.activity_identifier, ri.sectors, ri.tags,
                               ri.text, ri.extra, ri.marker)


def test_plugin_classifiers_get_whole_items():
    """A plugin classifier is never handed the few fields the rules read."""
    clf = Classifier(None, None, [lambda item: [("pillar:x", "p")]])
    with pytest.raises(TypeError, match="whole items"):
        clf.classify(RuleInput(1, None, [], [], "", {}, UNMARKED))


# ---- generated items: the compiled rules decide as the dict matcher -----------------------

FIXTURES = Path(__file__).parent / "fixtures"
KEYWORD_RULES = FIXTURES / "pillar_rules_keyword.toml"
SAMPLE = FIXTURES / "pillar_sample.csv"

EDGE_RULES = {"pillars": ["x"], "rules": [
    # words a piece-by-piece search would get wrong: they reach into the joint " \n "
    {"id": "edge-space", "sets": ["scope"], "keywords": ["peace ", " paix"]},
    {"id": "edge-newline", "sets": ["pillar:x"], "keywords": ["a \n b"]},
    {"id": "edge-empty", "sets": ["scope"], "sectors": ["15170"], "keywords": [""]},
    {"id": "edge-exclude", "sets": ["pillar:x"], "tags": ["GBV"], "exclude": ["war "]},
    {"id": "any", "sets": ["scope"], "match": "any", "clusters": ["10"], "keywords": ["1325"]},
    {"id": "markers", "sets": ["pillar:x"], "sector_ranges": [["15210", "15261"]],
     "markers": ["principal"], "min_share": 0.5},
    {"id": "bare", "sets": ["scope"], "sectors": ["72010"]},
]}

WORDS = ["peace", "Peace", "PAIX", "security", "women", "women's", "gender", "GBV", "war",
         "violence", "1325", "a", "b", "\n", " ", "-", "ſecurity", "İ", "K", "", "conflict",
         "peacebuilding", "women, peace and security", "survivors", "mujeres"]
SECTORS = ["15170", "15180", "15220", "15210", "15261", "15262", "72010", "12220", "151",
           "998", "abcde"]


@st.composite
def sample_rows(draw) -> dict[str, str]:
    parts = draw(st.lists(st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join),
                          max_size=3))
    return {"marker": draw(st.sampled_from(["", "principal", "significant", "not-targeted"])),
            "clusters": draw(st.sampled_from(["", "10:Protection", "10:P; 7:Health", "7:H"])),
            "activity": draw(st.sampled_from(["", "XM-1"])),
            "flow_kind": "DISBURSEMENT",
            "sectors": " ".join(draw(st.lists(st.sampled_from(SECTORS), max_size=4))),
            "tags": "|".join(draw(st.lists(st.sampled_from(["GBV", "gbv", "x", "WPS"]),
                                           max_size=2))),
            "text": " \n ".join(p for p in parts if p)}


@settings(max_examples=400, deadline=None)
@given(st.lists(sample_rows(), min_size=1, max_size=8))
def test_compiled_rules_decide_as_the_dict_matcher(rows):
    """Shipped rules, the keyword-only rule set kept to compare with, and rules whose words
    reach into the text joint: one Classifier over many items (its memos shared) finds the
    same (dimension, rule) hits, in the same order, as the old matcher per item."""
    items: list[Item] = [item_from_row(r) for r in rows]
    for rules in (checked_rules(), load_file(KEYWORD_RULES), EDGE_RULES):
        clf = Classifier(rules)
        for it in items + items:
            assert clf.rule_hits(it) == old_hits(rules, it), it.text


def test_hand_labelled_sample_hits_equal():
    """The 1325 sample's real texts and codes (tests/fixtures/pillar_sample.csv)."""
    items = [item_from_row(r) for r in read_sample(SAMPLE)]
    assert len(items) > 100
    for rules in (checked_rules(), load_file(KEYWORD_RULES), EDGE_RULES):
        clf = Classifier(rules)
        assert [clf.rule_hits(it) for it in items] == [old_hits(rules, it) for it in items]
