"""Gender marker crosswalk: OECD DAC, UN GEM, IASC GAM and the PBF GM on one scale.

The common scale is principal / significant / not-targeted / not-screened. The original
vocabulary, code and score are always kept beside it (:class:`Marker`). Tables are data
(``markers.toml``); this module only applies them.
"""

from __future__ import annotations

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
    scale: str | None        # dac | gem | gam | pbf (None: no marker reported)
    vocabulary: str | None   # IATI policy-marker vocabulary, or "flow.extra"
    code: str | None         # policy-marker code, or the extra key
    score: str | None        # exactly as reported
    level: str               # activity | flow | none

    def as_dict(self) -> dict[str, Any]:
        return {"common": self.common, "scale": self.scale, "vocabulary": self.vocabulary,
                "code": self.code, "score": self.score, "level": self.level}


UNMARKED = Marker(NOT_SCREENED, None, None, None, None, "none")


def normalise_score(score: str | None) -> str:
    """'GEM2a' -> '2a', ' 3 T ' -> '3T', '2.0' -> '2': forms seen in real reports."""
    if score is None:
        return ""
    s = "".join(str(score).split()).upper()
    for prefix in ("GEM", "GAM", "GM"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    if s.endswith(".0"):
        s = s[:-2]
    return s.replace("A", "a").replace("B", "b")


def to_common(scale: str, score: str | None) -> str:
    """The common-scale value of ``score`` on ``scale``; unknown -> not-screened."""
    table = load("markers")["scales"][scale]["scores"]
    return table.get(normalise_score(score), NOT_SCREENED)


def activity_marker(rows: list[tuple[str | None, str | None, str | None]],
                    level: str = "activity") -> Marker:
    """The gender marker of an activity (or, with ``level="flow"``, of a flow's own
    policy-marker rows) from its rows (vocabulary, code, score).

    Several gender markers (a DAC score and a GEM, say): the source with the lowest
    ``priority`` number wins among screened values; an unscreened one only when nothing else.
    """
    sources = load("markers")["activity_sources"]
    best: tuple[tuple[int, int], Marker] | None = None
    for vocab, code, score in rows:
        for src in sources:
            if (vocab or "1") == src["vocabulary"] and (code or "").strip() == src["code"]:
                common = to_common(src["scale"], score)
                mk = Marker(common, src["scale"], vocab or "1", code, score, level)
                key = (1 if common == NOT_SCREENED else 0, src["priority"])
                if best is None or key < best[0]:
                    best = (key, mk)
    return best[1] if best else UNMARKED


def flow_marker(extra: dict[str, Any] | None) -> Marker | None:
    """The gender marker a flow carries itself (CRS rows, FTS), or None."""
    if not extra:
        return None
    best: tuple[int, Marker] | None = None
    for src in load("markers")["flow_sources"]:
        if src["key"] in extra and str(extra[src["key"]]).strip() != "":
            score = str(extra[src["key"]])
            mk = Marker(to_common(src["scale"], score), src["scale"], "flow.extra", src["key"],
                        score, "flow")
            if best is None or src["priority"] < best[0]:
                best = (src["priority"], mk)
    return best[1] if best else None


def effective_marker(flow_extra: dict[str, Any] | None, activity: Marker | None,
                     flow_rows: list[tuple[str | None, str | None, str | None]] | None = None,
                     ) -> Marker:
    """A flow's own marker where it has one, else its activity's (flow level is more specific).

    The flow's own marker comes from its ``flow_policy_marker`` rows, else from
    ``flow.extra`` keys written by older importers.
    """
    own = activity_marker(flow_rows, "flow") if flow_rows else None
    if own is None or own is UNMARKED:
        own = flow_marker(flow_extra)
    if own is not None and own.common != NOT_SCREENED:
        return own
    return activity or own or UNMARKED
