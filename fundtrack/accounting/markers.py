"""Gender marker crosswalk: OECD DAC, UN GEM, IASC GAM, the PBF GM, IOM's gender marker and
ADB's gender categories on one scale.

The common scale is principal / significant / not-targeted / not-screened. The original
vocabulary, code and score are always kept beside it (:class:`Marker`). Tables are data
(``markers.toml``); this module only applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fundtrack.accounting.config import load

PRINCIPAL, SIGNIFICANT, NOT_TARGETED, NOT_SCREENED = (
    "principal", "significant", "not-targeted", "not-screened")
COMMON_SCALE = (PRINCIPAL, SIGNIFICANT, NOT_TARGETED, NOT_SCREENED)


@dataclass(frozen=True, slots=True)
class Marker:
    """One reported gender marker and its place on the common scale."""

    common: str
    scale: str | None        # dac | gem | gam | pbf | iom | adb (None: no marker reported)
    vocabulary: str | None   # IATI policy-marker vocabulary, or "flow.extra"
    code: str | None         # policy-marker code, or the extra key
    score: str | None        # exactly as reported
    level: str               # activity | flow | none

    def as_dict(self) -> dict[str, Any]:
        return {"common": self.common, "scale": self.scale, "vocabulary": self.vocabulary,
                "code": self.code, "score": self.score, "level": self.level}


UNMARKED = Marker(NOT_SCREENED, None, None, None, None, "none")

#: The stored dimension (``flow_classification``) of each screened common value; the
#: number it stands for is in :data:`fundtrack.query.vocabulary.GENDER_STORED`. Not
#: screened has no row: the filter's ``isNull``.
GENDER_DIMENSIONS = {c: f"gender:{c}" for c in (PRINCIPAL, SIGNIFICANT, NOT_TARGETED)}


def marker_rule(mk: Marker) -> str:
    """Where a stored gender value comes from, in words: 'activity dac 1/1=2'."""
    if mk.level.startswith("override:"):
        return mk.level
    return f"{mk.level} {mk.scale} {mk.vocabulary}/{mk.code}={mk.score}"[:2000]


#: ADB reports a category as "Some gender elements (SGE)": the bracketed abbreviation is the code.
_BRACKETED = re.compile(r"\(([A-Za-z]{2,5})\)\s*$")


def normalise_score(score: str | None) -> str:
    """'GEM2a' -> '2a', ' 3 T ' -> '3T', '2.0' -> '2', '2A' -> '2a', 'Some gender elements
    (SGE)' -> 'SGE', 'na' -> 'NA': forms seen in real reports."""
    if score is None:
        return ""
    found = _BRACKETED.search(str(score))
    if found:
        return found.group(1).upper()
    s = "".join(str(score).split()).upper()
    for prefix in ("GEM", "GAM", "GM"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    if s.endswith(".0"):
        s = s[:-2]
    if len(s) == 2 and s[0].isdigit() and s[1] in "AB":
        s = s[0] + s[1].lower()
    return s


def to_common(scale: str, score: str | None, cfg: dict[str, Any] | None = None) -> str:
    """The common-scale value of ``score`` on ``scale``; unknown -> not-screened.
    ``cfg``: ``markers.toml`` already read (callers looping over many flows pass it: each
    lookup reads the settings)."""
    table = (cfg or load("markers"))["scales"][scale]["scores"]
    return table.get(normalise_score(score), NOT_SCREENED)


def _uri(uri: str | None) -> str:
    """A vocabulary-uri compared without its scheme and trailing slash (publishers vary)."""
    u = (uri or "").strip()
    for scheme in ("https://", "http://"):
        if u.startswith(scheme):
            u = u[len(scheme):]
    return u.rstrip("/")


MarkerRow = tuple[str | None, ...]
"""(vocabulary, code, significance[, vocabulary_uri]) as stored."""


def _read(row: MarkerRow, src: dict[str, Any], scales: dict[str, Any]
          ) -> tuple[str, str | None] | None:
    """(common value, score as reported) if ``row`` is a marker of source ``src``, else None."""
    vocab, code, score = row[0], row[1], row[2]
    uri = row[3] if len(row) > 3 else None
    if (vocab or "1") != src["vocabulary"]:
        return None
    if "vocabulary_uri" in src and _uri(uri) != _uri(src["vocabulary_uri"]):
        return None
    if src.get("score_in") == "code":
        # The publisher's vocabulary names the score in the code; codes of that vocabulary
        # not on the scale (ADB's themes) are other markers, not gender ones.
        table = scales[src["scale"]]["scores"]
        key = normalise_score(code)
        return (table[key], code) if key in table else None
    if (code or "").strip() != src["code"]:
        return None
    return scales[src["scale"]]["scores"].get(normalise_score(score), NOT_SCREENED), score


def activity_marker(rows: list[MarkerRow], level: str = "activity",
                    cfg: dict[str, Any] | None = None) -> Marker:
    """The gender marker of an activity (or, with ``level="flow"``, of a flow's own
    policy-marker rows) from its rows (vocabulary, code, score[, vocabulary-uri]).

    Several gender markers (a DAC score and IOM's own, say): the source with the lowest
    ``priority`` number wins among screened values; an unscreened one only when nothing else.
    """
    if not rows:
        return UNMARKED
    cfg = cfg or load("markers")
    best: tuple[tuple[int, int], Marker] | None = None
    for row in rows:
        for src in cfg["activity_sources"]:
            read = _read(row, src, cfg["scales"])
            if read is None:
                continue
            common, score = read
            mk = Marker(common, src["scale"], row[0] or "1", row[1], score, level)
            key = (1 if common == NOT_SCREENED else 0, src["priority"])
            if best is None or key < best[0]:
                best = (key, mk)
    return best[1] if best else UNMARKED


def flow_marker(extra: dict[str, Any] | None, cfg: dict[str, Any] | None = None
                ) -> Marker | None:
    """The gender marker a flow carries itself (CRS rows, FTS), or None."""
    if not extra:
        return None
    cfg = cfg or load("markers")
    best: tuple[int, Marker] | None = None
    for src in cfg["flow_sources"]:
        if src["key"] in extra and str(extra[src["key"]]).strip() != "":
            score = str(extra[src["key"]])
            mk = Marker(to_common(src["scale"], score, cfg), src["scale"], "flow.extra",
                        src["key"], score, "flow")
            if best is None or src["priority"] < best[0]:
                best = (src["priority"], mk)
    return best[1] if best else None


def effective_marker(flow_extra: dict[str, Any] | None, activity: Marker | None,
                     flow_rows: list[MarkerRow] | None = None,
                     cfg: dict[str, Any] | None = None) -> Marker:
    """A flow's own marker where it has one, else its activity's (flow level is more specific).

    The flow's own marker comes from its ``flow_policy_marker`` rows, else from
    ``flow.extra`` keys written by older importers.
    """
    own = activity_marker(flow_rows, "flow", cfg) if flow_rows else None
    if own is None or own is UNMARKED:
        own = flow_marker(flow_extra, cfg)
    if own is not None and own.common != NOT_SCREENED:
        return own
    return activity or own or UNMARKED
