"""IATI codelists shipped with fundtrack (copied from the official IATI codelists).

Besides the codes, :func:`legacy_code` maps the text values publishers wrote in IATI
1.0x files (and still write in some 2.0x ones) to today's codes: a codelist name
("Multilateral", "Implementation", "Untied") or a 1.0x abbreviation ("INGO", "DAC",
"RO"). A value that maps to nothing is returned as ``None`` so the importer can keep it
as reported and warn.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lxml import etree

DATA = Path(__file__).resolve().parents[1] / "data" / "codelists"

#: Text values of IATI 1.0x files (and real publishers' variants) that are not codelist
#: names, per codelist. Keys are compared lower-cased with spaces/underscores/hyphens
#: collapsed. Sources: the IATI 1.0x codelists (vocabulary names such as ``DAC``,
#: ``RO``; 1.0x activity-status names) and values seen in published 1.0x files.
LEGACY_ALIASES: dict[str, dict[str, str]] = {
    "OrganisationType": {
        "ingo": "21", "international ngo": "21", "nngo": "22", "ngo": "22", "national ngo": "22",
        "rngo": "23", "regional ngo": "23", "ppp": "30", "multilateral organisation": "40",
        "multilateral organization": "40", "multi-lateral": "40", "private": "70",
        "academic": "80", "academic training and research": "80", "other": "90",
        "government": "10", "donor government": "10", "public sector": "15",
        "other public sector": "15", "local government": "11", "foundation": "60",
        "private sector": "70",
    },
    "OrganisationRole": {"funding": "1", "accountable": "2", "extending": "3",
                         "implementing": "4"},
    "ActivityStatus": {"pipeline": "1", "identification": "1", "pipeline identification": "1",
                       "completion": "3", "post completion": "4", "closed": "4",
                       "cancelled": "5", "suspended": "6"},
    "ActivityDateType": {"start planned": "1", "start actual": "2", "end planned": "3",
                         "end actual": "4"},
    "SectorVocabulary": {"dac": "1", "dac 3": "2", "dac3": "2", "cofog": "3", "nace": "4",
                         "ntee": "5", "adt": "6", "aiddata": "6", "ro": "99", "ro2": "98",
                         "rsv": "99"},
    "PolicyMarkerVocabulary": {"dac": "1", "ro": "99"},
    "RegionVocabulary": {"dac": "1", "un": "2", "ro": "99"},
    "FlowType": {"oda": "10", "oof": "20", "private ngo": "30", "private market": "35",
                 "non flow": "40", "other flows": "50"},
    "TiedStatus": {"partially tied": "3", "tied": "4", "untied": "5"},
    "BudgetType": {"original": "1", "revised": "2"},
    "BudgetStatus": {"indicative": "1", "committed": "2"},
    "RelatedActivityType": {"parent": "1", "child": "2", "sibling": "3", "co funded": "4",
                            "third party": "5"},
    "TransactionType": {"if": "1", "c": "2", "d": "3", "e": "4", "ir": "5", "lr": "6",
                        "r": "7", "qp": "8", "qs": "9", "cg": "10"},
}
CODE_LIKE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")
_SEP = re.compile(r"[\s_\-/,.&]+")


def _key(text: str) -> str:
    return _SEP.sub(" ", text.strip().lower()).strip()


@lru_cache(maxsize=64)
def _shipped(name: str) -> bool:
    return (DATA / f"{name}.xml").exists()


@lru_cache(maxsize=32)
def _tree(name: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.parse(str(DATA / f"{name}.xml"), parser).getroot()


@lru_cache(maxsize=32)
def codes(name: str) -> frozenset[str]:
    """The codes of codelist ``name`` (e.g. ``Currency``), withdrawn ones included."""
    return frozenset(c.text.strip() for c in _tree(name).iter("code") if c.text)


@lru_cache(maxsize=32)
def names(name: str) -> dict[str, str]:
    """Normalised English name (and 1.0x alias) -> code, for codelist ``name``."""
    out: dict[str, str] = {}
    if _shipped(name):
        for item in _tree(name).iter("codelist-item"):
            code = (item.findtext("code") or "").strip()
            el = item.find("name")
            label = None
            if el is not None:
                label = el.findtext("narrative") if el.find("narrative") is not None else el.text
            if code and label:
                out.setdefault(_key(label), code)
    out.update(LEGACY_ALIASES.get(name, {}))
    return out


def legacy_code(name: str, value: str | None) -> tuple[str | None, bool]:
    """``(code, known)`` for a reported value of codelist ``name``.

    A value that is already a code comes back unchanged; a 1.0x text value or a codelist
    name comes back as its code; anything else comes back as reported with ``known``
    False (the caller keeps it and warns). Codelists without a shipped file (e.g. region
    vocabularies) are matched through their aliases only, and a value that looks like a
    code (digits, or a short upper-case token) is kept as one.
    """
    if value is None:
        return None, True
    v = value.strip()
    if not v:
        return None, True
    if _shipped(name):
        if v in codes(name):
            return v, True
    elif v.isdigit():
        return v, True
    mapped = names(name).get(_key(v))
    if mapped is not None:
        return mapped, True
    if _shipped(name) and v.upper() in codes(name):
        return v.upper(), True
    # A code-like value (``D03``, ``B031``, ``99``) not in our copy of the list may be
    # newer than it: kept without a warning. Text ("Bilateral agency") is warned about.
    return v, bool(CODE_LIKE.match(v))


@lru_cache(maxsize=16)
def _labels(name: str) -> dict[str, str]:
    """code -> English name, for codelist ``name``."""
    out: dict[str, str] = {}
    for item in _tree(name).iter("codelist-item"):
        code = (item.findtext("code") or "").strip()
        el = item.find("name")
        if el is None or not code:
            continue
        text = el.findtext("narrative") if el.find("narrative") is not None else el.text
        if text and text.strip():
            out[code] = " ".join(text.split())
    return out


def country_name(code: str | None) -> str | None:
    """A recipient country's name (IATI Country codelist): ``AF`` -> ``Afghanistan``."""
    if not code:
        return None
    return _labels("Country").get(code.strip().upper())


def sector_name(code: str | None) -> str | None:
    """A DAC sector's name: 5-digit purpose codes (IATI Sector codelist), else 3-digit
    categories (SectorCategory): ``15170`` -> ``Women's rights organisations and
    movements, and government institutions``."""
    if not code:
        return None
    c = code.strip()
    return _labels("Sector").get(c) or _labels("SectorCategory").get(c)
