"""IATI codelists shipped with fundtrack (copied from the official IATI codelists)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree

DATA = Path(__file__).parent / "data" / "codelists"


@lru_cache(maxsize=16)
def codes(name: str) -> frozenset[str]:
    """The codes of codelist ``name`` (e.g. ``Currency``), withdrawn ones included."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(DATA / f"{name}.xml"), parser).getroot()
    return frozenset(c.text.strip() for c in root.iter("code") if c.text)
