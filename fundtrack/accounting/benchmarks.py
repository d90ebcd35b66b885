"""Benchmarks, grades and the thresholds a measure must pass to be graded, all from
``benchmarks.toml``: a grade always comes with its numbers, and only when the base is
big enough and covered enough."""

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


@dataclass(frozen=True)
class Threshold:
    """A measure is graded only with ``min_count`` items in its base and at least
    ``min_coverage`` of the base covered (``[thresholds.<key>]``, else the default)."""

    min_count: int
    min_coverage: Decimal


def benchmark(key: str) -> Benchmark:
    d = load("benchmarks")["benchmarks"][key]
    return Benchmark(key, d["title"], Decimal(d["target"]), d["source"])


def has_benchmark(key: str) -> bool:
    return key in load("benchmarks")["benchmarks"]


def threshold(key: str) -> Threshold:
    table = load("benchmarks").get("thresholds", {})
    d = table.get(key) or table.get("default") or {"min_count": 1, "min_coverage": "0"}
    return Threshold(int(d["min_count"]), Decimal(str(d["min_coverage"])))


def grade(value: Decimal | None, target: Decimal) -> str | None:
    """First grade whose ``min_ratio`` value/target reaches; None when there is no value."""
    if value is None:
        return None
    ratio = value / target if target else Decimal(1)
    for g in load("benchmarks")["grades"]:
        if ratio >= Decimal(g["min_ratio"]):
            return g["grade"]
    return load("benchmarks")["grades"][-1]["grade"]
