"""Benchmarks and grades, from ``benchmarks.toml``: a grade always comes with its numbers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fundtrack.accounting.config import load


@dataclass(frozen=True)
class Benchmark:
    key: str
    title: str
    target: Decimal
    source: str


def benchmark(key: str) -> Benchmark:
    d = load("benchmarks")["benchmarks"][key]
    return Benchmark(key, d["title"], Decimal(d["target"]), d["source"])


def grade(value: Decimal | None, target: Decimal) -> str | None:
    """First grade whose ``min_ratio`` value/target reaches; None when there is no value."""
    if value is None:
        return None
    ratio = value / target if target else Decimal(1)
    for g in load("benchmarks")["grades"]:
        if ratio >= Decimal(g["min_ratio"]):
            return g["grade"]
    return load("benchmarks")["grades"][-1]["grade"]
