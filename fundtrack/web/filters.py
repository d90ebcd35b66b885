"""The filters people pick on the pages and in ``fundtrack export --where``.

One small vocabulary (``year=2021 gender=2 pillar=protection donor=XM-DAC-41114 ...``) is turned into the
same filter object the GraphQL ``FlowWhere`` input compiles from, so the pages, the exports
and the GraphQL API select flows with the same SQL (:func:`fundtrack.query.filters.flow_where`).
:meth:`FlowFilter.graphql` gives the same filter as GraphQL variables: the pages print it,
the tests send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement

from fundtrack.query import filters as flt
from fundtrack.query.filters import Where
from fundtrack.records import FlowKind

#: gender choice -> (label, IntComparison kwargs). DAC gender marker (vocabulary 1, code 1).
GENDER_CHOICES: dict[str, tuple[str, dict[str, Any]]] = {
    "": ("any (marked or not)", {}),
    "2": ("principal (2)", {"eq": 2}),
    "1+": ("significant or principal (1-2)", {"gte": 1}),
    "1": ("significant (1)", {"eq": 1}),
    "0": ("not targeted (0)", {"eq": 0}),
    "none": ("not screened (no readable marker)", {"is_null": True}),
}

KEYS = ("year", "kind", "donor", "reporting_org", "country", "gender", "pillar", "activity")


def pillar_choices() -> dict[str, str]:
    """pillar choice -> label: "any", then the WPS pillars of ``rules.toml``."""
    from fundtrack.accounting.classify import pillars

    return {"": "any (classified or not)"} | {p: p.replace("-", " ") for p in pillars()}


class FilterError(ValueError):
    """A filter value that cannot be understood; the message says which and why."""


#: Longer than any reference, identifier or code a filter takes (refs are at most 200).
MAX_VALUE_CHARS = 300


def check_text(key: str, value: str) -> None:
    """Refuse control characters (a NUL cannot even reach PostgreSQL) and absurd lengths."""
    if any(ch < " " or ch == "\x7f" for ch in value):
        bad = next(ch for ch in value if ch < " " or ch == "\x7f")
        raise FilterError(f"{key} must not contain control characters (found U+{ord(bad):04X})")
    if len(value) > MAX_VALUE_CHARS:
        raise FilterError(f"{key} is {len(value):,} characters long; the limit is {MAX_VALUE_CHARS}")


def parse_year(value: str) -> int:
    """A year of 1900-2200 written in ASCII digits (``"²".isdigit()`` is true in Python, and
    ``int("99999999999999999999")`` is no year)."""
    if not (value.isascii() and value.isdigit() and len(value) <= 4
            and 1900 <= int(value) <= 2200):
        raise FilterError(f"year must be a year such as 2021 (1900-2200), not {value[:30]!r}")
    return int(value)


@dataclass(frozen=True)
class FlowFilter:
    year: int | None = None
    kinds: tuple[FlowKind, ...] = ()
    donor: str | None = None          # provider-org ref
    reporting_org: str | None = None
    country: str | None = None        # the flow's own recipient country
    gender: str = ""
    pillar: str | None = None         # WPS pillar (stored 1325 classification)
    activity: str | None = None       # iati-identifier
    extra: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> FlowFilter:
        """From query parameters or ``key=value`` pairs; empty values mean "any"."""
        items = params.items() if isinstance(params, Mapping) else params
        values: dict[str, Any] = {}
        kinds: list[FlowKind] = []
        for key, raw in items:
            value = (raw or "").strip()
            if not value or key not in KEYS:
                continue
            check_text(key, value)
            if key == "year":
                values["year"] = parse_year(value)
            elif key == "kind":
                for part in value.split(","):
                    name = part.strip().upper().replace("-", "_")
                    if name not in FlowKind.__members__:
                        raise FilterError(f"kind {part!r} is not one of "
                                          f"{', '.join(k.name for k in FlowKind)}")
                    kinds.append(FlowKind[name])
            elif key == "gender":
                if value not in GENDER_CHOICES:
                    raise FilterError(f"gender must be one of {', '.join(GENDER_CHOICES)}")
                values["gender"] = value
            elif key == "pillar":
                if value not in pillar_choices():
                    raise FilterError(f"pillar must be one of {', '.join(list(pillar_choices())[1:])}")
                values["pillar"] = value
            elif key == "country":
                values["country"] = value.upper()
            else:
                values[key] = value
        return cls(kinds=tuple(kinds), **values)

    @classmethod
    def parse_pairs(cls, pairs: Iterable[str]) -> FlowFilter:
        """From ``key=value`` strings (the CLI's repeated ``--where``)."""
        out = []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key.strip() not in KEYS:
                raise FilterError(f"--where takes key=value with key one of {', '.join(KEYS)}; "
                                  f"got {pair!r}")
            out.append((key.strip(), value))
        return cls.parse(out)

    def with_kinds(self, kinds: Iterable[FlowKind]) -> FlowFilter:
        return replace(self, kinds=tuple(kinds))

    def params(self) -> dict[str, str]:
        """Back to query parameters (for links that keep the current selection)."""
        out = {"year": str(self.year or ""), "kind": ",".join(k.name for k in self.kinds),
               "donor": self.donor or "", "reporting_org": self.reporting_org or "",
               "country": self.country or "", "gender": self.gender,
               "pillar": self.pillar or "", "activity": self.activity or ""}
        return {k: v for k, v in out.items() if v}

    def where(self) -> Where:
        """This filter in the shape of the API's ``FlowWhere`` input."""
        kw: dict[str, Any] = {}
        if self.kinds:
            kw["kind"] = Where(in_=list(self.kinds))
        if self.year:
            kw["value_date"] = Where(gte=date(self.year, 1, 1),
                                                  lte=date(self.year, 12, 31))
        if self.donor:
            kw["provider_ref"] = Where(eq=self.donor)
        if self.reporting_org:
            kw["reporting_org_ref"] = Where(eq=self.reporting_org)
        if self.country:
            kw["recipient_country"] = Where(eq=self.country)
        if GENDER_CHOICES[self.gender][1]:
            kw["gender_significance"] = Where(**GENDER_CHOICES[self.gender][1])
        if self.pillar:
            kw["pillar"] = Where(eq=self.pillar)
        if self.activity:
            kw["activity"] = Where(iati_identifier=Where(eq=self.activity))
        return Where(**kw)

    def clause(self) -> ColumnElement[bool]:
        """The SQL condition, compiled by the one filter compiler (the API's too)."""
        return flt.flow_where(self.where())

    def graphql(self) -> dict[str, Any]:
        """The same filter as a GraphQL ``FlowWhere`` value (JSON)."""
        w: dict[str, Any] = {}
        if self.kinds:
            w["kind"] = {"_in": [k.name for k in self.kinds]}
        if self.year:
            w["valueDate"] = {"_gte": f"{self.year}-01-01", "_lte": f"{self.year}-12-31"}
        if self.donor:
            w["providerRef"] = {"_eq": self.donor}
        if self.reporting_org:
            w["reportingOrgRef"] = {"_eq": self.reporting_org}
        if self.country:
            w["recipientCountry"] = {"_eq": self.country}
        gender = GENDER_CHOICES[self.gender][1]
        if gender:
            names = {"eq": "_eq", "gte": "_gte", "is_null": "_is_null"}
            w["genderSignificance"] = {names[k]: v for k, v in gender.items()}
        if self.pillar:
            w["pillar"] = {"_eq": self.pillar}
        if self.activity:
            w["activity"] = {"iatiIdentifier": {"_eq": self.activity}}
        return w
