"""Counting methods: how much of a flow is "1325 money". Named, data-driven, cited.

Every figure is a :class:`Figure` that carries its method's name, so nothing the API or a
card prints can lose it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from fundtrack.accounting.config import load
from fundtrack.accounting.items import Item
from fundtrack.money import SUM_CONTEXT

REPORTED_SHARE = "reported-share"


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    weights: dict[str, Decimal]
    source: str


def methods() -> dict[str, Method]:
    out = {}
    for name, d in load("benchmarks")["methods"].items():
        out[name] = Method(name, d["title"], {k: Decimal(v) for k, v in d["weights"].items()},
                           d["source"])
    return out


def get_method(name: str) -> Method:
    ms = methods()
    if name not in ms:
        raise ValueError(f"unknown counting method {name!r}; known: {', '.join(ms)}")
    return ms[name]


def reported_shares(conn: Connection) -> dict[str, Decimal]:
    from fundtrack.accounting.tables import ReportedShare as R

    return {r.activity_identifier: r.share
            for r in conn.execute(select(R.activity_identifier, R.share))}


@dataclass
class Figure:
    """An amount of 1325 money in USD out of a base, by a named method."""

    method: str
    amount_usd: Decimal = Decimal(0)
    base_usd: Decimal = Decimal(0)
    flows: int = 0
    flows_without_usd: int = 0
    flows_without_share: int = 0
    by_marker: dict[str, Decimal] = field(default_factory=dict)

    @property
    def share(self) -> Decimal | None:
        return None if not self.base_usd else self.amount_usd / self.base_usd

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "amount_usd": str(self.amount_usd),
                "base_usd": str(self.base_usd),
                "share": None if self.share is None else str(self.share),
                "flows": self.flows, "flows_without_usd": self.flows_without_usd,
                "flows_without_share": self.flows_without_share,
                "by_marker": {k: str(v) for k, v in sorted(self.by_marker.items())}}


def weight(method: Method, it: Item, shares: dict[str, Decimal] | None = None) -> Decimal | None:
    """The fraction of ``it`` that counts; None when reported-share has no share for it."""
    if method.name == REPORTED_SHARE:
        return (shares or {}).get(it.activity_identifier or "")
    return method.weights.get(it.marker.common, Decimal(0))


def count(items: Iterable[Item], method: Method,
          shares: dict[str, Decimal] | None = None) -> Figure:
    """Exact sum of each item's USD amount times its weight; flows without USD are counted
    and left out of both amount and base."""
    fig = Figure(method.name)
    for it in items:
        fig.flows += 1
        if it.amount_usd is None:
            fig.flows_without_usd += 1
            continue
        fig.base_usd = SUM_CONTEXT.add(fig.base_usd, it.amount_usd)
        fig.by_marker[it.marker.common] = SUM_CONTEXT.add(
            fig.by_marker.get(it.marker.common, Decimal(0)), it.amount_usd)
        w = weight(method, it, shares)
        if w is None:
            fig.flows_without_share += 1
            continue
        if w:
            fig.amount_usd = SUM_CONTEXT.add(fig.amount_usd,
                                             SUM_CONTEXT.multiply(it.amount_usd, w))
    return fig
