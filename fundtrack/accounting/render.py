"""A card as Markdown, JSON or CSV: the same numbers, grade beside them, method cited."""

from __future__ import annotations

import csv
import io
import json

from fundtrack.accounting.reportcard import Card, CardItem

FIELDS = ("key", "title", "value", "numerator", "denominator", "unit", "status", "grade",
          "base", "base_count", "base_usd", "coverage", "coverage_numerator",
          "coverage_denominator", "coverage_unit", "coverage_of", "min_count", "min_coverage",
          "insufficient", "benchmark", "method", "not_available", "note", "benchmark_source")


def _pct(v: object) -> str:
    if v is None:
        return "-"
    from decimal import Decimal

    return f"{(Decimal(str(v)) * 100).quantize(Decimal('0.01'))}%"


def to_json(card: Card) -> str:
    return json.dumps(card.as_dict(), indent=2, default=str) + "\n"


def to_csv(card: Card) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=("subject", "year", "card_method", "rules_fingerprint",
                                        *FIELDS), lineterminator="\n")
    w.writeheader()
    for it in card.items:
        d = it.as_dict()
        w.writerow({"subject": card.subject, "year": card.year, "card_method": card.method,
                    "rules_fingerprint": card.rules, **{k: d.get(k) for k in FIELDS}})
    return buf.getvalue()


def _base(it: CardItem) -> str:
    usd = "" if it.base_usd is None else f", USD {it.base_usd}"
    return f"{it.base_count if it.base_count is not None else '-'}{usd} ({it.base})"


def to_markdown(card: Card) -> str:
    lines = [f"# Report card: {card.subject}, {card.year}", "",
             f"Counting method: **{card.method}**. Rules fingerprint `{card.rules}`; "
             "methods in docs/accounting.md. Counts the organisation's own reports; a grade "
             "only when base and coverage pass the thresholds.", "",
             "| item | value | numbers | base | coverage | benchmark | grade | method |",
             "|---|---|---|---|---|---|---|---|"]
    for it in card.items:
        value = it.not_available or _pct(it.value)
        nums = "" if it.numerator is None else f"{it.numerator} / {it.denominator} {it.unit}"
        cov = "-" if it.coverage is None else (
            f"{_pct(it.coverage)} (needs {_pct(it.min_coverage)})")
        verdict = it.grade or ("insufficient data" if it.status == "insufficient-data" else "-")
        lines.append(f"| {it.title} | {value} | {nums} | {_base(it)} | {cov} | "
                     f"{_pct(it.benchmark)} | {verdict} | {it.method or ''} |")
    for s in card.stipulations:
        state = s["not_available"] or ("met" if s["met"] else "not met")
        lines.append("")
        lines.append(f"- stipulation {s['id']}: at least {_pct(s['min_share'])} of the money "
                     f"leaving {s['recipient_ref']} to {s['kind']} {s['target'] or ''}: "
                     f"{state}; share {_pct(s['share'])}, margin USD {s['margin_usd']}")
    notes = [f"- {it.title}: {it.insufficient + '. ' if it.insufficient else ''}{it.note or ''}"
             for it in card.items if it.note or it.insufficient]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


RENDERERS = {"md": to_markdown, "json": to_json, "csv": to_csv}
