"""Scope ("peace and security") and the four WPS pillars, by rules in ``rules.toml``.

Every classification names the rule that made it; hand overrides (table
``accounting_override``) beat rules and are cited as ``override:<id>``. Plugins add
classifiers through the ``fundtrack_classifiers`` hook: each is a callable
``(item) -> list[(dimension, rule_id)]`` adding to what the rules found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Connection, select

from fundtrack.accounting.config import data_dir, load
from fundtrack.accounting.items import Item
from fundtrack.accounting.markers import COMMON_SCALE, Marker

SCOPE = "scope"


@dataclass
class Classification:
    """What an item is, and why: dimension -> rule ids (``override:<id>`` for hand ones)."""

    why: dict[str, list[str]] = field(default_factory=dict)

    @property
    def in_scope(self) -> bool:
        return SCOPE in self.why

    @property
    def pillars(self) -> list[str]:
        return sorted(d.split(":", 1)[1] for d in self.why if d.startswith("pillar:"))


def pillars() -> list[str]:
    return list(load("rules")["pillars"])


@cache
def _keyword_re(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    alts = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w]){'(?:' + alts + ')'}(?![\w])", re.IGNORECASE)


#: What a rule is gated by: codes a publisher chose from a code list, never free text.
GATE_KEYS = ("sectors", "sector_ranges", "tags", "clusters")


def fts_clusters(extra: dict[str, Any]) -> set[str]:
    """FTS global cluster ids of a flow's destination ("10:Protection; 7:Health" -> 10, 7)."""
    raw = str(extra.get("destination_globalcluster") or "")
    return {part.split(":", 1)[0].strip() for part in raw.split(";") if ":" in part}


def _in_rule_sectors(rule: dict[str, Any], code: str) -> bool:
    if code in rule.get("sectors", []):
        return True
    return len(code) == 5 and code.isdigit() and any(
        lo <= code <= hi for lo, hi in rule.get("sector_ranges", []))


def _sector_share(rule: dict[str, Any], it: Item) -> float:
    """Share of the item's distinct DAC codes that are the rule's (0 with none)."""
    codes = set(it.sectors)
    return sum(1 for c in codes if _in_rule_sectors(rule, c)) / len(codes) if codes else 0.0


def _gate_matches(rule: dict[str, Any], it: Item) -> bool:
    """Any of the rule's codes: DAC sector, sector range, donor code or FTS global cluster."""
    if any(_in_rule_sectors(rule, c) for c in set(it.sectors)):
        return True
    tags = {t.lower() for t in it.tags}
    if tags & {t.lower() for t in rule.get("tags", [])}:
        return True
    return bool(fts_clusters(it.extra) & set(rule.get("clusters", [])))


def _narrow_matches(rule: dict[str, Any], it: Item) -> bool:
    """The rule's secondary conditions: a gender marker in ``markers`` or a word of
    ``keywords`` in the text (either will do when both are given); ``exclude`` words veto;
    ``min_share``: the rule's DAC codes are at least that share of the item's."""
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


def _rule_matches(rule: dict[str, Any], it: Item) -> bool:
    """A code-gated rule: a code of the gate AND the secondary conditions. A rule without
    a gate (``confidence = "low"``: keywords alone) needs its keywords. ``match = "any"``
    (only the keyword rule set kept to compare with, before code-gating) matches on any
    one condition."""
    if rule.get("match") == "any":
        rx = _keyword_re(tuple(rule.get("keywords", [])))
        return _gate_matches(rule, it) or bool(rx and it.text and rx.search(it.text))
    if any(rule.get(k) for k in GATE_KEYS):
        return _gate_matches(rule, it) and _narrow_matches(rule, it)
    return bool(rule.get("keywords")) and _narrow_matches(rule, it)


def rule_info(rule_id: str) -> tuple[str | None, bool]:
    """(rationale, low confidence?) of a cited rule id: from rules.toml, a hand override,
    or a plugin classifier (no note)."""
    if rule_id.startswith("override:"):
        return "hand decision (accounting_override)", False
    r = _rules_by_id(str(data_dir())).get(rule_id)
    return (r.get("note"), r.get("confidence") == "low") if r else (None, False)


@cache
def _rules_by_id(directory: str) -> dict[str, dict[str, Any]]:
    """rules.toml of a data directory, by rule id (a page cites thousands of rules)."""
    return {r["id"]: r for r in load("rules")["rules"]}


def check_rules(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a rule set: a rule without a code gate that is not a labelled
    low-confidence keyword rule, a rule without rationale, an unknown dimension."""
    known = {SCOPE, *(f"pillar:{p}" for p in doc.get("pillars", []))}
    errors = []
    for r in doc.get("rules", []):
        rid = r.get("id", "?")
        if not any(r.get(k) for k in GATE_KEYS) and r.get("confidence") != "low":
            errors.append(f"{rid}: no code gate; free keywords must be confidence = 'low'")
        if r.get("match") == "any":
            errors.append(f"{rid}: match = 'any' lets a keyword alone classify")
        if not r.get("note"):
            errors.append(f"{rid}: no note (rationale)")
        errors += [f"{rid}: unknown dimension {d!r}" for d in r.get("sets", []) if d not in known]
    return errors


@cache
def _checked(directory: str) -> dict[str, Any]:
    doc = load("rules")
    errors = check_rules(doc)
    if errors:
        raise ValueError(f"{directory}/rules.toml is refused: " + "; ".join(errors))
    return doc


def checked_rules() -> dict[str, Any]:
    """The data directory's rules.toml, refused (ValueError) if check_rules finds a rule
    a keyword alone could fire without saying so: fundtrack never classifies by it."""
    return _checked(str(data_dir()))


def plugin_classifiers() -> list[Callable[[Item], Iterable[tuple[str, str]]]]:
    """Classifiers from plugins (``fundtrack_classifiers`` hook); none when no plugin has one."""
    from fundtrack.plugins import plugin_manager

    pm = plugin_manager()
    hook = getattr(pm.hook, "fundtrack_classifiers", None)
    if hook is None:
        return []
    return [c for group in hook() for c in (group or [])]


def classify(it: Item, overrides: dict[str, dict[str, tuple[str, int]]] | None = None,
             extra: list[Callable[[Item], Iterable[tuple[str, str]]]] | None = None,
             rules: dict[str, Any] | None = None) -> Classification:
    """Apply rules (``rules.toml`` unless another parsed rule file is given), then plugin
    classifiers, then hand overrides (last word)."""
    c = Classification()
    for rule in (rules if rules is not None else checked_rules())["rules"]:
        if _rule_matches(rule, it):
            for dim in rule["sets"]:
                c.why.setdefault(dim, []).append(rule["id"])
    for fn in extra or []:
        for dim, rule_id in fn(it) or []:
            c.why.setdefault(dim, []).append(rule_id)
    for dim, (value, oid) in (overrides or {}).get(subject_of(it), {}).items():
        if dim == "gender":
            continue
        if value == "in":
            c.why[dim] = [f"override:{oid}"]
        else:
            c.why.pop(dim, None)
    return c


def subject_of(it: Item) -> str:
    """How overrides name an item: its activity, else the flow's external id or row id."""
    if it.activity_identifier:
        return f"activity:{it.activity_identifier}"
    return f"flow:{it.extra.get('external_id') or it.flow_id}"


def load_overrides(conn: Connection) -> dict[str, dict[str, tuple[str, int]]]:
    from fundtrack.accounting.tables import ClassificationOverride as O

    out: dict[str, dict[str, tuple[str, int]]] = {}
    for r in conn.execute(select(O.id, O.subject, O.dimension, O.value)):
        out.setdefault(r.subject, {})[r.dimension] = (r.value, r.id)
    return out


def apply_gender_overrides(items: list[Item], overrides: dict[str, dict[str, tuple[str, int]]]
                           ) -> None:
    """A hand gender value replaces the reported marker's common value (score kept)."""
    for it in items:
        o = overrides.get(subject_of(it), {}).get("gender")
        if o and o[0] in COMMON_SCALE:
            mk = it.marker
            it.marker = Marker(o[0], mk.scale, mk.vocabulary, mk.code, mk.score,
                               f"override:{o[1]}")


def classify_all(conn: Connection, items: list[Item]) -> dict[int, Classification]:
    """Classifications of items by flow id, overrides and plugin classifiers applied."""
    overrides = load_overrides(conn)
    apply_gender_overrides(items, overrides)
    extra = plugin_classifiers()
    # The rules once for the whole set: looking them up per item re-read the settings from
    # the environment each time (5 s of a 53,000-flow load, bench/bench_many_files.py).
    rules = checked_rules()
    return {it.flow_id: classify(it, overrides, extra, rules) for it in items}
