"""Scope ("peace and security") and the four WPS pillars, by rules in ``rules.toml``.

Every classification names the rule that made it; hand overrides (table
``accounting_override``) beat rules and are cited as ``override:<id>``. Plugins add
classifiers through the ``fundtrack_classifiers`` hook: each is a callable
``(item) -> list[(dimension, rule_id)]`` adding to what the rules found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Connection, select

from fundtrack.accounting.config import data_dir, load
from fundtrack.accounting.items import Item, RuleInput
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


#: What separates the title, the activity's and the flow's description in ``Item.text``.
TEXT_JOIN = " \n "


@cache
def _splits(words: tuple[str, ...]) -> bool:
    """Whether a keyword regex finds a word in a text exactly when it finds one in some
    piece of ``text.split(TEXT_JOIN)``: true unless a word is empty, holds a newline or
    starts or ends with a space (a match of any other word cannot reach into the joint,
    and the joint's characters are not word characters, as a text's ends are not)."""
    return all(w and "\n" not in w and w[0] != " " and w[-1] != " " for w in words)


class CompiledRule:
    """One rule of ``rules.toml`` read once: its code sets, keyword and exclude regexes.

    Matching a flow against the parsed dict looked every key up and rebuilt every set per
    flow and rule (18 rules x 53,000 flows of a many-file load); this does it once per rule.
    A rule's verdict is :meth:`codes` (what the item's codes and marker decide) then
    :meth:`decide` (what the text still has to say).
    """

    __slots__ = ("id", "sets", "any_mode", "gated", "sectors", "ranges", "tags", "clusters",
                 "min_share", "markers", "keywords", "has_keywords", "exclude", "splits")

    def __init__(self, rule: dict[str, Any]) -> None:
        self.id: str = rule.get("id", "?")
        self.sets: tuple[str, ...] = tuple(rule.get("sets", ()))
        self.any_mode = rule.get("match") == "any"
        self.gated = any(rule.get(k) for k in GATE_KEYS)
        self.sectors = frozenset(rule.get("sectors", ()))
        self.ranges = tuple((lo, hi) for lo, hi in rule.get("sector_ranges", ()))
        self.tags = frozenset(t.lower() for t in rule.get("tags", ()))
        self.clusters = frozenset(rule.get("clusters", ()))
        self.min_share = float(rule["min_share"]) if "min_share" in rule else None
        markers = rule.get("markers")
        self.markers = None if markers is None else tuple(markers)
        words, exclude = tuple(rule.get("keywords", [])), tuple(rule.get("exclude", []))
        self.keywords = _keyword_re(words)
        self.has_keywords = bool(rule.get("keywords"))
        self.exclude = _keyword_re(exclude)
        #: Both regexes may be searched piece by piece of the text (see :func:`_splits`).
        self.splits = _splits(words) and _splits(exclude)

    def in_sectors(self, code: str) -> bool:
        if code in self.sectors:
            return True
        return len(code) == 5 and code.isdigit() and any(
            lo <= code <= hi for lo, hi in self.ranges)

    def codes(self, f: Codes) -> tuple[bool, bool, bool]:
        """(gate, share, marker): any of the rule's codes (DAC sector, sector range, donor
        code, FTS global cluster) is the item's; ``min_share`` holds (the rule's DAC codes
        are at least that share of the item's); the gender marker is one of ``markers``."""
        gate = (any(self.in_sectors(c) for c in f.sectors) or bool(f.tags & self.tags)
                or bool(f.clusters & self.clusters))
        share = True
        if self.min_share is not None:
            share = (sum(1 for c in f.sectors if self.in_sectors(c)) / len(f.sectors)
                     if f.sectors else 0.0) >= self.min_share
        marker = (self.markers is not None and f.marker is not None
                  and f.marker in self.markers)
        return gate, share, marker

    def decide(self, codes: tuple[bool, bool, bool],
               found: Callable[[re.Pattern[str]], bool]) -> bool:
        """A code-gated rule: a code of the gate AND the secondary conditions (a marker in
        ``markers`` or a word of ``keywords`` in the text, either will do when both are
        given; ``exclude`` words veto; ``min_share``). A rule without a gate
        (``confidence = "low"``: keywords alone) needs its keywords. ``match = "any"``
        (only the keyword rule set kept to compare with, before code-gating) matches on
        any one condition. ``found(regex)``: whether the regex is in the item's text."""
        gate, share, marker = codes
        if self.any_mode:
            return gate or (self.keywords is not None and found(self.keywords))
        if not (gate if self.gated else self.has_keywords) or not share:
            return False
        if not (marker or (self.markers is None and self.keywords is None)
                or (self.keywords is not None and found(self.keywords))):
            return False
        return self.exclude is None or not found(self.exclude)

    def matches(self, f: Features) -> bool:
        text = f.text
        return self.decide(self.codes(f.codes),
                           lambda rx: bool(text and rx.search(text)))


@dataclass(frozen=True, slots=True)
class Codes:
    """All a rule reads of an item but its text (hashable: a run has few distinct ones)."""

    sectors: frozenset[str]     # distinct DAC codes
    tags: frozenset[str]        # lower-cased
    clusters: frozenset[str]    # FTS global cluster ids
    marker: str | None          # the gender marker's common value

    @classmethod
    def of(cls, it: Item | RuleInput) -> Codes:
        return cls(frozenset(it.sectors), frozenset(t.lower() for t in it.tags),
                   frozenset(fts_clusters(it.extra)),
                   it.marker.common if it.marker is not None else None)


@dataclass(frozen=True, slots=True)
class Features:
    """All a rule reads of an item."""

    codes: Codes
    text: str

    @classmethod
    def of(cls, it: Item | RuleInput) -> Features:
        return cls(Codes.of(it), it.text)


def _rule_matches(rule: dict[str, Any], it: Item) -> bool:
    """Whether one rule (a parsed dict, e.g. a NAP line's codes) matches an item."""
    return CompiledRule(rule).matches(Features.of(it))


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


class Classifier:
    """The rules (``rules.toml`` unless another parsed rule file is given), plugin
    classifiers and hand overrides, read once for a run of many items.

    For the life of this object (one rebuild or import), what the codes decide is kept per
    distinct codes, whether a regex is in a text per distinct piece of text (flows of one
    activity share its title and description), and the rules' verdict per distinct item:
    many flows share their activity's codes and text. Plugins and overrides still see
    every item.
    """

    def __init__(self, rules: dict[str, Any] | None = None,
                 overrides: dict[str, dict[str, tuple[str, int]]] | None = None,
                 extra: list[Callable[[Item], Iterable[tuple[str, str]]]] | None = None
                 ) -> None:
        doc = rules if rules is not None else checked_rules()
        self.rules = [CompiledRule(r) for r in doc["rules"]]
        self.overrides = overrides or {}
        self.extra = extra or []
        self._hits: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}
        self._codes: dict[tuple[Any, ...], list[tuple[bool, bool, bool]]] = {}
        self._found: dict[re.Pattern[str], dict[str, bool]] = {}

    def _search(self, rx: re.Pattern[str], piece: str) -> bool:
        seen = self._found.setdefault(rx, {})
        hit = seen.get(piece)
        if hit is None:
            hit = seen[piece] = rx.search(piece) is not None
        return hit

    def rule_hits(self, it: Item | RuleInput) -> tuple[tuple[str, str], ...]:
        """(dimension, rule id) of every rule that matches, in rule order."""
        mk = it.marker
        codes_key = (tuple(it.sectors), tuple(it.tags),
                     str(it.extra.get("destination_globalcluster") or ""),
                     mk.common if mk is not None else None)
        key = (codes_key, it.text)
        hits = self._hits.get(key)
        if hits is not None:
            return hits
        codes = self._codes.get(codes_key)
        if codes is None:
            c = Codes.of(it)
            codes = self._codes[codes_key] = [r.codes(c) for r in self.rules]
        text = it.text
        pieces = text.split(TEXT_JOIN) if text else []

        def found_pieces(rx: re.Pattern[str]) -> bool:
            return any(self._search(rx, p) for p in pieces)

        def found_whole(rx: re.Pattern[str]) -> bool:
            return bool(text) and self._search(rx, text)

        hits = self._hits[key] = tuple(
            (dim, r.id) for r, rc in zip(self.rules, codes, strict=True)
            if r.decide(rc, found_pieces if r.splits else found_whole) for dim in r.sets)
        return hits

    def classify(self, it: Item | RuleInput) -> Classification:
        """Apply rules, then plugin classifiers, then hand overrides (last word)."""
        c = Classification()
        for dim, rule_id in self.rule_hits(it):
            c.why.setdefault(dim, []).append(rule_id)
        if self.extra:
            if not isinstance(it, Item):
                raise TypeError("plugin classifiers read whole items (load_items)")
            for fn in self.extra:
                for dim, rule_id in fn(it) or []:
                    c.why.setdefault(dim, []).append(rule_id)
        for dim, (value, oid) in self.overrides.get(subject_of(it), {}).items():
            if dim == "gender":
                continue
            if value == "in":
                c.why[dim] = [f"override:{oid}"]
            else:
                c.why.pop(dim, None)
        return c


def classify(it: Item, overrides: dict[str, dict[str, tuple[str, int]]] | None = None,
             extra: list[Callable[[Item], Iterable[tuple[str, str]]]] | None = None,
             rules: dict[str, Any] | None = None) -> Classification:
    """Apply rules (``rules.toml`` unless another parsed rule file is given), then plugin
    classifiers, then hand overrides (last word). For many items use one
    :class:`Classifier`."""
    return Classifier(rules, overrides, extra).classify(it)


def subject_of(it: Item | RuleInput) -> str:
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


def apply_gender_overrides(items: Sequence[Item | RuleInput], overrides: dict[str, dict[str, tuple[str, int]]]
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
    clf = Classifier(None, overrides, extra)
    return {it.flow_id: clf.classify(it) for it in items}
