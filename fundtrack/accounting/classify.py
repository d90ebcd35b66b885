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

from fundtrack.accounting.config import load
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


def _rule_matches(rule: dict[str, Any], it: Item) -> bool:
    sectors = set(it.sectors)
    if sectors & set(rule.get("sectors", [])):
        return True
    for lo, hi in rule.get("sector_ranges", []):
        if any(len(s) == 5 and s.isdigit() and lo <= s <= hi for s in sectors):
            return True
    tags = {t.lower() for t in it.tags}
    if tags & {t.lower() for t in rule.get("tags", [])}:
        return True
    rx = _keyword_re(tuple(rule.get("keywords", [])))
    return bool(rx and it.text and rx.search(it.text))


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
             ) -> Classification:
    """Apply rules, then plugin classifiers, then hand overrides (last word)."""
    c = Classification()
    for rule in load("rules")["rules"]:
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
    return {it.flow_id: classify(it, overrides, extra) for it in items}
