"""Tables of 1325 accounting: hand overrides, reported shares, stipulations, fund targets
and National Action Plans. All are entered by people (registry data), none is derived:
figures are computed from them and the ledger on demand, so a card is reproducible."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fundtrack.db.base import Base, BigId
from fundtrack.money import Money


class ClassificationOverride(Base):
    """A hand decision that beats the rules: an activity (by IATI identifier) or a flow
    outside activities (by external id) is in/out of scope or a pillar, or has a gender
    marker value on the common scale. ``dimension``: scope | pillar:<name> | gender."""

    __tablename__ = "accounting_override"
    __table_args__ = (UniqueConstraint("subject", "dimension", name="uq_accounting_override_subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))  # activity:<identifier> | flow:<external id>
    dimension: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(40))  # in | out | principal | significant ...
    note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReportedShare(Base):
    """The gender share of an activity's budget as a report states it (0..1), with source."""

    __tablename__ = "accounting_reported_share"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    activity_identifier: Mapped[str] = mapped_column(String(300), unique=True)
    share: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str | None] = mapped_column(Text)


class Stipulation(Base):
    """A condition a donor put on its contributions to a fund (or any recipient) in a year.

    ``kind``: gender-principal | wro | pillar | country; ``target`` the pillar or country;
    ``min_share`` the least share (0..1) of the donor's money leaving the recipient that
    must go there, as traced by the attribution."""

    __tablename__ = "accounting_stipulation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    donor_ref: Mapped[str] = mapped_column(String(200), index=True)
    recipient_ref: Mapped[str] = mapped_column(String(200))
    year: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    target: Mapped[str | None] = mapped_column(String(60))
    min_share: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str | None] = mapped_column(Text)


class FundTarget(Base):
    """A pooled fund's own target for the gender-principal share of its allocations."""

    __tablename__ = "accounting_fund_target"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    fund_ref: Mapped[str] = mapped_column(String(200), unique=True)
    gender_principal_share: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str | None] = mapped_column(Text)


class NationalActionPlan(Base):
    """A National Action Plan on UNSCR 1325: country, period (years inclusive).

    ``code`` names the plan in CSV files, the CLI and URLs (``GE-2018``); plans stored
    before it existed got ``<country>-<id>`` (migration 0015)."""

    __tablename__ = "nap"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(60), unique=True, index=True)
    country: Mapped[str] = mapped_column(String(10), index=True)
    title: Mapped[str] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(Text)


class NapLine(Base):
    """A costed line of a plan under one pillar; ``rule`` links movements to it
    automatically (:func:`fundtrack.accounting.nap.line_matches`: sector codes, sector
    ranges or donors' own codes, optionally narrowed by keywords; never keywords alone).

    The cost as the plan states it is ``costed_amount`` in ``costed_currency``;
    ``costed_usd`` is the figure coverage divides by (given, or converted at the ECB
    rate of the plan's first day; see docs/wps-data.md)."""

    __tablename__ = "nap_line"
    __table_args__ = (Index("ix_nap_line_nap_code", "nap_id", "code", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    nap_id: Mapped[int] = mapped_column(ForeignKey("nap.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(60))
    pillar: Mapped[str] = mapped_column(String(40))
    title: Mapped[str | None] = mapped_column(Text)
    costed_usd: Mapped[Decimal | None] = mapped_column(Money)
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    costed_amount: Mapped[Decimal | None] = mapped_column(Money)
    costed_currency: Mapped[str | None] = mapped_column(String(3))
    source: Mapped[str | None] = mapped_column(Text)


class NapBudgetLine(Base):
    """A domestic budget line: what the plan's own government allocated to it in a
    (fiscal) ``year``, by ``institution``, optionally for one costed line
    (``nap_line_code``). Shown beside donors' money, never added to it."""

    __tablename__ = "nap_budget_line"
    __table_args__ = (Index("ix_nap_budget_line_key", "nap_id", "code", "year", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    nap_id: Mapped[int] = mapped_column(ForeignKey("nap.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(60))
    year: Mapped[int] = mapped_column(Integer)
    institution: Mapped[str | None] = mapped_column(Text)
    nap_line_code: Mapped[str | None] = mapped_column(String(60))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    source: Mapped[str | None] = mapped_column(Text)


class WpsChange(Base):
    """Who changed which WPS record, when, and from what to what (``before``/``after``:
    the row as JSON, null on create/delete). Kept when the record is deleted; ``nap_id``
    (no foreign key, on purpose) lets a plan's page list its history."""

    __tablename__ = "wps_change"
    __table_args__ = (Index("ix_wps_change_entity", "entity", "entity_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))   # create | update | delete
    entity: Mapped[str] = mapped_column(String(24))   # nap | nap_line | nap_budget_line ...
    entity_id: Mapped[int | None] = mapped_column(BigId)
    entity_key: Mapped[str] = mapped_column(String(300))
    nap_id: Mapped[int | None] = mapped_column(BigId, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    via: Mapped[str | None] = mapped_column(Text)     # api | cli | csv:<file> (sha256)


class NapLink(Base):
    """A hand link of an activity's flows (by IATI identifier) to a plan line; beats rules."""

    __tablename__ = "nap_link"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    nap_line_id: Mapped[int] = mapped_column(ForeignKey("nap_line.id", ondelete="CASCADE"),
                                             index=True)
    activity_identifier: Mapped[str] = mapped_column(String(300), index=True)
    note: Mapped[str | None] = mapped_column(Text)


class FlowClassification(Base):
    """Derived (``fundtrack.accounting.stored``): the scope and pillars of every current
    flow, as :func:`fundtrack.accounting.classify.classify` decides them, stored so that
    SQL filters (``FlowWhere.pillar``, ``inScope``) can use them.

    One ``scope`` row per current flow (``is_in`` true or false); one ``pillar:<name>``
    (or plugin) row per dimension the flow is in, or is put out of by a hand override;
    one ``gender:<common value>`` row for a screened gender marker (the crosswalk's value,
    ``rules`` says which marker or override gave it).
    ``rules``: the rule ids that made it, space-separated (``override:<id>`` for hand
    decisions); empty when out of scope because no rule matched."""

    __tablename__ = "flow_classification"
    __table_args__ = (Index("ix_flow_classification_dimension", "dimension", "is_in"),)

    flow_id: Mapped[int] = mapped_column(BigId, ForeignKey("flow.id", ondelete="CASCADE"),
                                         primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    is_in: Mapped[bool] = mapped_column(Boolean)
    rules: Mapped[str | None] = mapped_column(Text)
