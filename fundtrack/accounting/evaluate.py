"""Precision and recall of pillar rules against a hand-labelled sample of real flows.

The sample (``tests/fixtures/pillar_sample.csv``, drawn by ``bench/pillar_sample_draw.py``)
keeps each case's classifier inputs as fundtrack read them (text, DAC sectors, donor codes,
FTS clusters, gender marker) beside a person's labels, so any rule set can be measured
against it without a database: ``bench/pillar_sample.py`` prints the figures and
``tests/test_pillar_sample.py`` asserts them (docs/accounting.md shows them).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from fundtrack.accounting.classify import SCOPE, classify
from fundtrack.accounting.items import Item
from fundtrack.accounting.markers import COMMON_SCALE, UNMARKED, Marker
from fundtrack.records import FlowKind

#: Dimensions measured, in the order printed: scope, then the four pillars.
DIMENSIONS = (SCOPE, "pillar:participation", "pillar:protection", "pillar:prevention",
              "pillar:relief-and-recovery")
LABEL_COLUMNS = ("label_scope", "label_participation", "label_protection",
                 "label_prevention", "label_relief_and_recovery", "reason")
INPUT_COLUMNS = ("text", "sectors", "tags", "clusters", "marker")
COLUMNS = ("case", "stratum", "source", "file", "source_location", "flow_kind",
           "external_id", "activity", *LABEL_COLUMNS, *INPUT_COLUMNS)


def label_column(dimension: str) -> str:
    return "label_" + dimension.removeprefix("pillar:").replace("-", "_")


def inputs_row(it: Item) -> dict[str, str]:
    """The classifier's inputs of one item, as the sample stores them."""
    return {"text": it.text or "", "sectors": " ".join(it.sectors),
            "tags": "|".join(it.tags),
            "clusters": str(it.extra.get("destination_globalcluster") or ""),
            "marker": it.marker.common if it.marker else UNMARKED.common}


def item_from_row(row: dict[str, str]) -> Item:
    """An item carrying only what the rules read, rebuilt from a sample row."""
    common = row["marker"] or UNMARKED.common
    assert common in COMMON_SCALE, common
    extra = {"destination_globalcluster": row["clusters"]} if row["clusters"] else {}
    return Item(flow_id=0, activity_id=None, activity_identifier=row["activity"] or None,
                kind=FlowKind[row["flow_kind"]], reporting_org_ref=None, provider_ref=None,
                receiver_ref=None, receiver_activity_id=None, amount=Decimal(0),
                currency=None, amount_usd=None, value_date=date(2000, 1, 1),
                earmarking=None, countries=[], sectors=row["sectors"].split(),
                tags=[t for t in row["tags"].split("|") if t], text=row["text"],
                extra=extra, marker=Marker(common, None, None, None, None, "sample"))


def read_sample(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Score:
    """Counts against the labels: true positives, false positives, false negatives."""

    dimension: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> Decimal | None:
        """tp / (tp + fp); None when the rules put nothing in the dimension."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> Decimal | None:
        """tp / (tp + fn); None when no case is labelled in the dimension."""
        return _ratio(self.tp, self.tp + self.fn)


def _ratio(a: int, b: int) -> Decimal | None:
    return (Decimal(a) / Decimal(b)).quantize(Decimal("0.001")) if b else None


def measure(rows: list[dict[str, str]], rules: dict[str, Any]) -> list[Score]:
    """Score of ``rules`` per dimension over every labelled row (unweighted: the sample is
    stratified, so these describe the sample, not the whole population)."""
    found = [set(classify(item_from_row(r), rules=rules).why) for r in rows]
    out = []
    for dim in DIMENSIONS:
        col = label_column(dim)
        tp = sum(1 for r, f in zip(rows, found, strict=True) if r[col] == "1" and dim in f)
        fp = sum(1 for r, f in zip(rows, found, strict=True) if r[col] != "1" and dim in f)
        fn = sum(1 for r, f in zip(rows, found, strict=True) if r[col] == "1" and dim not in f)
        out.append(Score(dim, tp, fp, fn))
    return out


def table(scores: dict[str, list[Score]]) -> str:
    """A plain-text table: one line per rule set and dimension."""
    def pct(v: Decimal | None) -> str:
        return "n/a" if v is None else f"{v * 100:.1f}%"

    lines = [f"{'rules':<12} {'dimension':<28} {'TP':>4} {'FP':>4} {'FN':>4} "
             f"{'precision':>10} {'recall':>8}"]
    for name, ss in scores.items():
        for s in ss:
            lines.append(f"{name:<12} {s.dimension:<28} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
                         f"{pct(s.precision):>10} {pct(s.recall):>8}")
    return "\n".join(lines)
