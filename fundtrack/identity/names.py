"""Normalised names: what the name rule compares.

Case, accents, apostrophes and punctuation are dropped; ``&`` is ``and``; a few abbreviations are
spelled out; "peace building" is "peacebuilding"; a trailing parenthesised acronym is
dropped ("... (CERF)"); and the ways reports order a government body and its country
become one: "Denmark - Ministry of Foreign Affairs", "Ministry of Foreign Affairs,
Denmark", "Danish Ministry of Foreign Affairs" and "Ministry of Foreign Affairs of
Denmark" all read "ministry of foreign affairs of denmark"; "Denmark, Government of"
reads "government of denmark".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

ABBREVIATIONS = {
    "un": "united nations", "mfa": "ministry of foreign affairs", "govt": "government",
    "gov": "government", "intl": "international", "int'l": "international",
    "org": "organization", "organisation": "organization", "dept": "department",
    "min": "ministry",
}
#: Country adjectives that open a ministry's or government's name ("Danish Ministry of ...").
DEMONYMS = {
    "danish": "denmark", "german": "germany", "swedish": "sweden", "norwegian": "norway",
    "finnish": "finland", "dutch": "netherlands", "british": "united kingdom",
    "french": "france", "swiss": "switzerland", "irish": "ireland", "italian": "italy",
    "spanish": "spain", "japanese": "japan", "canadian": "canada", "australian": "australia",
    "belgian": "belgium", "austrian": "austria",
}
BODIES = ("ministry", "government", "department", "federal", "agency")
_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_PAREN_END = re.compile(r"\s*\([^()]*\)\s*$")


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    words = [ABBREVIATIONS.get(w, w) for w in _PUNCT.sub(" ", text).split()]
    return " ".join(words).replace("peace building", "peacebuilding")


@lru_cache(maxsize=1 << 18)
def normalise(name: str | None) -> str:
    """The normalised form of ``name`` ('' for none); cut to 300 characters. Cached: the
    resolver normalises each party's name several times, and an import's update resolves
    the whole party set again."""
    if not name or not name.strip():
        return ""
    text = name.strip()
    while _PAREN_END.search(text) and _PAREN_END.sub("", text).strip():
        text = _PAREN_END.sub("", text)
    # "Denmark - Ministry of Foreign Affairs", "Denmark, Government of", "Ministry ..., Denmark"
    parts = [p.strip() for p in re.split(r"\s+[-\u2013\u2014]\s+|,\s*", text) if p.strip()]
    if len(parts) == 2:
        a, b = (_plain(p) for p in parts)
        if b.endswith(" of") and not a.startswith(BODIES):
            text = f"{b} {a}"
        elif b.startswith(BODIES) and not a.startswith(BODIES) and len(a.split()) <= 3:
            text = f"{b} of {a}"
        elif a.startswith(BODIES) and " of " in a and len(b.split()) <= 3 \
                and not b.startswith(BODIES):
            text = f"{a} of {b}"
    out = _plain(text)
    first, _, rest = out.partition(" ")
    if first in DEMONYMS and rest.startswith(BODIES):
        out = f"{rest} of {DEMONYMS[first]}"
    return out[:300]


def acronym(name: str | None) -> str:
    """The parenthesised acronym at the end of a name ("... (CERF)" -> "cerf"), or ''."""
    m = re.search(r"\(([^()]{2,12})\)\s*$", name or "")
    return _plain(m.group(1)) if m else ""
