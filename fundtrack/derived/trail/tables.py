"""Ledger tables for links, movements, funds and attribution (follow-the-money issue).

All of them except :class:`Fund` are derived: rebuilt from the current ledger rows by
:mod:`fundtrack.derived.trail` after every import and by ``fundtrack recompute``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from fundtrack.db.base import Base, BigId
from fundtrack.money import Money


def Ident(length: int) -> TypeEngine[str]:
    """An identifier column of a derived table (organisation ref, activity id, donor):
    compared for equality and sorted only for a stable order, so on PostgreSQL it
    compares byte by byte (``COLLATE "C"``) instead of through the database locale's
    ``strcoll`` (``C.UTF-8`` on libc): the rebuild's index builds sort a little faster
    (about 10% each at 1M flows). UTF-8 byte order is code point order, the order SQLite
    uses too.
    Never joined to ledger columns (their default collation would hide an index)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class TrailLink(Base):
    """A reference from a flow or activity to something at the other end of the money.

    ``kind``: provider-activity | receiver-activity (IATI transaction ids),
    related-activity (IATI parent/child/...; ``relation`` holds the type code),
    fts-parent (FTS parentFlowId), fund-contribution / fund-allocation (a flow into or
    out of an organisation marked as a pooled fund). ``to_self``: the link names its own
    activity (counted apart: it traces nothing). ``resolved`` false = broken link:
    the id names nothing anyone reported. Kept, counted per publisher, queryable.
    """

    __tablename__ = "trail_link"
    __table_args__ = (Index("ix_trail_link_publisher", "publisher_ref", "resolved"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int | None] = mapped_column(ForeignKey("flow.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    relation: Mapped[str | None] = mapped_column(String(10))
    target_ref: Mapped[str] = mapped_column(String(300), index=True)
    target_activity_id: Mapped[int | None] = mapped_column(BigId)
    target_flow_id: Mapped[int | None] = mapped_column(BigId)
    publisher_ref: Mapped[str | None] = mapped_column(String(200))
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The link names the activity it is reported in (a transaction's provider- or
    #: receiver-activity-id equal to its own iati-identifier, or a related-activity to
    #: itself). It resolves by construction and traces nothing: counted apart (migration 0012).
    to_self: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Movement(Base):
    """One movement of money: a cash flow, or a disbursement and its mirrored incoming funds.

    ``flow_id`` is the canonical report (the sender's disbursement when both exist);
    ``mirror_flow_id`` the other report of the same money. Totals count movements, so
    the same cash is counted once while both records keep their provenance.
    Accounts are (organisation ref, activity identifier or '').
    A lump (``method`` lump) is one report matched to several on the other side: one
    movement per record of the "many" side, so a flow may appear in several movements
    (a lump disbursement's parts sum exactly to it; see docs/methodology.md).
    """

    __tablename__ = "movement"
    __table_args__ = (
        Index("ix_movement_src", "src_org", "src_activity"),
        Index("ix_movement_dst", "dst_org", "dst_activity"),
        # an update reads the groups (src org, dst org) a batch touches
        Index("ix_movement_group", "src_org", "dst_org"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow.id", ondelete="CASCADE"), index=True)
    mirror_flow_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # single | linked | amount-date | lump
    kind: Mapped[str] = mapped_column(String(16))    # transfer | expenditure
    src_org: Mapped[str] = mapped_column(Ident(200))
    src_activity: Mapped[str] = mapped_column(Ident(300))
    dst_org: Mapped[str] = mapped_column(Ident(200))
    dst_activity: Mapped[str] = mapped_column(Ident(300))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    value_date: Mapped[Any] = mapped_column(Date, nullable=True)
    earmarking: Mapped[int | None] = mapped_column(Integer)
    recipient_country: Mapped[str | None] = mapped_column(String(10))
    sector_code: Mapped[str | None] = mapped_column(String(60))
    sort_key: Mapped[str] = mapped_column(Text)  # content key: import order never matters


class Attribution(Base):
    """The part of a movement that came from one originating donor, or that is untraced.

    Parts of a movement sum exactly to its amount (and to its USD amount).
    ``depth``: hops from the originator's own account (1 = the donor's own outflow).
    """

    __tablename__ = "attribution"
    # (originator, amount_usd): a donor's parts by index, largest first (bounded traces)
    __table_args__ = (Index("ix_attribution_originator_usd", "originator_ref", "amount_usd"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    movement_id: Mapped[int] = mapped_column(
        ForeignKey("movement.id", ondelete="CASCADE"), index=True)
    originator_ref: Mapped[str | None] = mapped_column(Ident(200))
    untraced_reason: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    depth: Mapped[int] = mapped_column(Integer, default=1)


class Reach(Base):
    """Where each donor's money is, per account: the rollup that answers donor traces.

    Derived from ``attribution`` (:mod:`fundtrack.derived.trail.reach`), rows per originator:
    ``spent`` per (account, currency): its expenditure paid with the donor's money;
    ``account`` per account: ``amount`` held there (in minus out, USD), ``amount_usd``
    what came in, ``rank`` what passed through; and the exact totals beside them:
    ``spent-sum`` per currency, ``held-sum``, ``account-sum`` (``n`` accounts, ``depth``
    the deepest part) and ``movement-sum`` (``n`` movements). ``rank`` orders lists
    largest first by index; ``amount`` orders only the accounts' held money, so its index
    covers the account rows alone (half the rows: cheaper to build after each rebuild;
    queries name the kind as a constant, :data:`HELD_ROWS`, so the index applies).
    """

    __tablename__ = "trail_reach"
    __table_args__ = (
        Index("ix_trail_reach_rank", "originator_ref", "kind", "rank"),
        Index("ix_trail_reach_held", "originator_ref", "amount",
              postgresql_where=text("kind = 'account'"), sqlite_where=text("kind = 'account'")),
        Index("ix_trail_reach_account", "org", "activity"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    originator_ref: Mapped[str] = mapped_column(Ident(200))
    kind: Mapped[str] = mapped_column(Ident(12))
    org: Mapped[str] = mapped_column(Ident(200))
    activity: Mapped[str] = mapped_column(Ident(300))
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Money)
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    rank: Mapped[Decimal] = mapped_column(Money)
    n: Mapped[int] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer)


#: The predicate of ``ix_trail_reach_held``, as a constant in the SQL (a bound parameter
#: would not prove a partial index's condition in a generic or SQLite plan).
HELD_ROWS = Reach.__table__.c.kind == literal_column("'account'")


class Fund(Base):
    """A pooled fund in the registry: seeded with the funds the sources name, editable."""

    __tablename__ = "fund"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_ref: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(Text)
    acronym: Mapped[str | None] = mapped_column(String(40))
    administrative_agent_ref: Mapped[str | None] = mapped_column(String(200))
    administrative_agent_name: Mapped[str | None] = mapped_column(Text)
    aliases: Mapped[list[str] | None] = mapped_column(JSON)  # other refs / names seen in reports
    note: Mapped[str | None] = mapped_column(Text)
