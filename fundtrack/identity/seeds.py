"""The shipped organisations (``fundtrack/data/identity/*.toml``, every entry with its
source) and the CRSChannelCode codelist's names (English and French)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lxml import etree

DATA = Path(__file__).resolve().parents[1] / "data"
SEED_DIR = DATA / "identity"
#: The CRSChannelCode codelist (IATI non-embedded, replicated from OECD-DAC).
CRS_CODELIST = DATA / "identity" / "CRSChannelCode.xml"


@dataclass(frozen=True)
class SeedIdentifier:
    scheme: str
    value: str
    requires_name: bool
    source: str


@dataclass(frozen=True)
class Seed:
    ref: str
    name: str
    type: str | None
    country: str | None
    pooled_fund: bool
    source: str
    identifiers: tuple[SeedIdentifier, ...]
    names: tuple[str, ...] = field(default_factory=tuple)


@lru_cache(maxsize=1)
def load_seeds() -> tuple[Seed, ...]:
    """Every seeded organisation, in file order (files sorted by name)."""
    out: list[Seed] = []
    for path in sorted(SEED_DIR.glob("*.toml")):
        for e in tomllib.loads(path.read_text(encoding="utf-8")).get("org", []):
            ids = tuple(SeedIdentifier(i["scheme"], i["value"], bool(i.get("requires_name")),
                                       i.get("source") or e["source"])
                        for i in e.get("identifiers", []))
            out.append(Seed(e["ref"], e["name"], e.get("type"), e.get("country"),
                            bool(e.get("pooled_fund")), e["source"], ids,
                            tuple(e.get("names", []))))
    return tuple(out)


@lru_cache(maxsize=1)
def crs_channel_names() -> dict[str, tuple[str, ...]]:
    """{5-digit CRS channel code: (English name, French name, ...)} from the codelist."""
    out: dict[str, tuple[str, ...]] = {}
    root = etree.parse(str(CRS_CODELIST)).getroot()
    for item in root.iter("codelist-item"):
        code = (item.findtext("code") or "").strip()
        names = tuple((n.text or "").strip() for n in item.iterfind("name/narrative")
                      if (n.text or "").strip())
        if code and names:
            out[code] = names
    return out
