"""Country names as reported (FTS locations, CRS recipients) -> ISO 3166-1 alpha-2.

FTS flows name a location only by FTS id and English name; CRS rows by DAC recipient code
and name. Neither gives an ISO code, so both importers look the name up here: first in the
IATI Country codelist fundtrack ships (names normalised: case, accents, punctuation and
"the" ignored, so "Korea (the Republic of)" matches "Korea, Republic of"), then in a short
list of the spellings FTS and the DAC use that the codelist does not. A name that matches
nothing, or matches two codes, gives ``None``: the caller keeps the name, never a guess.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from lxml import etree

from fundtrack.ingest.codelists import DATA

#: Spellings used by OCHA FTS and the OECD DAC that the IATI codelist spells otherwise.
ALIASES = {
    "united states": "US", "usa": "US", "united kingdom": "GB", "uk": "GB",
    "turkey": "TR", "turkiye": "TR",
    "occupied palestinian territory": "PS", "west bank and gaza strip": "PS",
    "palestine": "PS", "palestinian adm areas": "PS",
    "democratic republic of congo": "CD", "congo democratic republic": "CD",
    "congo dem rep": "CD", "republic of congo": "CG", "congo republic": "CG",
    "china people s republic of": "CN", "vietnam": "VN", "laos": "LA", "lao pdr": "LA",
    "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "united republic of tanzania": "TZ",
    "moldova": "MD", "republic of moldova": "MD", "iran": "IR", "syria": "SY",
    "democratic people s republic of korea": "KP", "korea dem rep": "KP", "north korea": "KP",
    "republic of korea": "KR", "korea": "KR", "south korea": "KR", "russia": "RU",
    "micronesia": "FM", "ivory coast": "CI", "swaziland": "SZ", "cape verde": "CV",
    "macedonia": "MK", "former yugoslav republic of macedonia": "MK", "czech republic": "CZ",
    "st vincent and grenadines": "VC", "st lucia": "LC", "st kitts nevis": "KN",
    "st helena": "SH", "saint helena": "SH", "timor leste": "TL", "east timor": "TL",
    "kyrgyz republic": "KG", "slovak republic": "SK", "brunei": "BN",
}


def normalise(name: str) -> str:
    """Lower case, no accents, no punctuation, no "the": the key names are compared by."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w != "the"]
    return " ".join(words)


@lru_cache(maxsize=1)
def _index() -> dict[str, str | None]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(DATA / "Country.xml"), parser).getroot()
    index: dict[str, str | None] = {}
    for item in root.iter("codelist-item"):
        code = (item.findtext("code") or "").strip()
        for narrative in item.iterfind("name/narrative"):
            if narrative.get("{http://www.w3.org/XML/1998/namespace}lang") not in (None, "en"):
                continue
            key = normalise(narrative.text or "")
            if key:
                index[key] = code if index.get(key, code) == code else None  # clash -> None
    for key, code in ALIASES.items():
        index.setdefault(key, code)
    return index


def iso2_for_name(name: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 code for a country name, or ``None`` when not certain."""
    if not name:
        return None
    return _index().get(normalise(name))
