"""``flow_rollup``: current flows pre-aggregated for ``flowsAggregate`` (see fundtrack.derived.rollup).

One table holds several *grains* (column sets). Each row is one combination of its grain's
columns; columns outside the grain are null and ``grain`` says which they are, so a null
inside the grain (a flow with no country) is never confused with "not grouped".
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Enum, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from fundtrack.db.base import Base, BigId
from fundtrack.money import Money
from fundtrack.records import FlowKind


class FlowRollup(Base):
    """Count, exact sums and date range of the current flows sharing one key of one grain."""

    __tablename__ = "flow_rollup"
    __table_args__ = (Index("ix_flow_rollup_grain_year", "grain", "year"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    grain: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[FlowKind | None] = mapped_column(Enum(FlowKind, native_enum=False, length=32))
    currency: Mapped[str | None] = mapped_column(String(3))
    year: Mapped[int | None] = mapped_column(Integer)
    recipient_country: Mapped[str | None] = mapped_column(String(10))
    sector: Mapped[str | None] = mapped_column(String(60))
    gender_significance: Mapped[str | None] = mapped_column(String(10))
    earmarking: Mapped[int | None] = mapped_column(Integer)
    reporting_org_ref: Mapped[str | None] = mapped_column(String(200))
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    receiver_ref: Mapped[str | None] = mapped_column(String(200))
    flows: Mapped[int] = mapped_column(BigInteger)
    flows_without_usd: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    first_date: Mapped[date | None] = mapped_column(Date)
    last_date: Mapped[date | None] = mapped_column(Date)
