"""The ledger: SQLAlchemy 2 models. Migrations in ``migrations/`` build exactly this.

Rows written by an import carry ``batch_id``; rows replaced by a later import carry
``superseded_by`` (that batch's id) and are kept so a revert can restore them. Every
read of "the ledger as it stands" filters ``superseded_by IS NULL``
(:func:`fundtrack.db.base.current`). The tables of other areas live beside their code;
:mod:`fundtrack.db.metadata` gathers them all.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.functions import FunctionElement

from fundtrack.db.base import Base, BigId
from fundtrack.money import Money
from fundtrack.records import FlowKind


class Organisation(Base):
    """Anyone who gives, channels or spends money, keyed by its IATI-style reference."""

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str | None] = mapped_column(String(10))
    is_womens_rights_org: Mapped[bool] = mapped_column(Boolean, default=False)
    is_pooled_fund: Mapped[bool] = mapped_column(Boolean, default=False)
    default_currency: Mapped[str | None] = mapped_column(String(3))
    # The batch of the organisation file that described it, if any.
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id", ondelete="SET NULL"))


#: Batches whose ``counts`` carry the stale mark (:data:`fundtrack.derived.steps.STALE`),
#: as each database writes the test: the predicate of a partial index holding only those
#: batches, so that the check every import makes is one probe of an (empty) index.
STALE_MARKED = {"postgresql": "(counts ->> 'derived_stale') IS NOT NULL",
                "sqlite": "json_extract(counts, '$.derived_stale') IS NOT NULL"}


class ImportBatch(Base):
    """One file imported (or tried in a dry run): who, when, what and what was wrong."""

    __tablename__ = "import_batch"
    __table_args__ = (Index("ix_import_batch_derived_stale", "id",
                            postgresql_where=text(STALE_MARKED["postgresql"]),
                            sqlite_where=text(STALE_MARKED["sqlite"])),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    importer: Mapped[str] = mapped_column(String(64))
    importer_version: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    imported_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # applied | reverted
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Every publisher of the batch, comma-joined, for display (``publisherRef``); the
    # permission checks read :class:`BatchPublisher`, which holds each one as a row.
    # TEXT on PostgreSQL; SQLite never enforces the declared length (and its table cannot
    # be altered in place while other tables refer to it).
    publisher_ref: Mapped[str | None] = mapped_column(String(200).with_variant(Text(), "postgresql"))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Where the file was fetched from (``fundtrack sync``); null for uploads and local files.
    source_url: Mapped[str | None] = mapped_column(Text)
    #: The file's own date (IATI ``@generated-datetime``), for the older-file policy.
    file_generated: Mapped[str | None] = mapped_column(String(40))
    # Reconciliation (migration 0012): for every record kind, found in the file =
    # imported + skipped. NULL for batches imported before 0012.
    activities_found: Mapped[int | None] = mapped_column(Integer)
    activities_imported: Mapped[int | None] = mapped_column(Integer)
    activities_skipped: Mapped[int | None] = mapped_column(Integer)
    flows_found: Mapped[int | None] = mapped_column(Integer)
    flows_imported: Mapped[int | None] = mapped_column(Integer)
    flows_skipped: Mapped[int | None] = mapped_column(Integer)
    budgets_found: Mapped[int | None] = mapped_column(Integer)
    budgets_imported: Mapped[int | None] = mapped_column(Integer)
    budgets_skipped: Mapped[int | None] = mapped_column(Integer)
    organisations_found: Mapped[int | None] = mapped_column(Integer)
    organisations_imported: Mapped[int | None] = mapped_column(Integer)
    organisations_skipped: Mapped[int | None] = mapped_column(Integer)

    issues: Mapped[list[BatchIssue]] = relationship(
        back_populates="batch", cascade="all, delete-orphan", order_by="BatchIssue.id"
    )


class BatchIssue(Base):
    """A warning or skipped record from an applied batch, with its location in the file."""

    __tablename__ = "batch_issue"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id", ondelete="CASCADE"), index=True)
    severity: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(40))
    location: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)

    batch: Mapped[ImportBatch] = relationship(back_populates="issues")


class BatchPublisher(Base):
    """One organisation whose reports a batch holds: every one, in full (the revert
    permission check reads this; a joined string cut at 200 characters let a reporter
    revert a batch that also held another organisation's rows)."""

    __tablename__ = "batch_publisher"
    __table_args__ = (UniqueConstraint("batch_id", "org_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id", ondelete="CASCADE"),
                                          index=True)
    org_ref: Mapped[str] = mapped_column(String(200))


class BatchOrgChange(Base):
    """A registry organisation as it was before a batch changed or created it, so that
    reverting the batch puts back its name, type and currency (or removes it again)."""

    __tablename__ = "batch_org_change"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id", ondelete="CASCADE"),
                                          index=True)
    org_ref: Mapped[str] = mapped_column(String(200))
    existed: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(10))
    default_currency: Mapped[str | None] = mapped_column(String(3))
    prior_batch_id: Mapped[int | None] = mapped_column(BigInteger)


class Activity(Base):
    """A project or programme as its reporting organisation describes it."""

    __tablename__ = "activity"
    __table_args__ = (
        Index("ix_activity_key", "reporting_org_ref", "iati_identifier"),
        Index("ix_activity_current", "superseded_by"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    superseded_by: Mapped[int | None] = mapped_column(BigInteger)
    iati_identifier: Mapped[str] = mapped_column(String(300), index=True)
    reporting_org_ref: Mapped[str] = mapped_column(String(200))
    reporting_org_name: Mapped[str | None] = mapped_column(Text)
    reporting_org_type: Mapped[str | None] = mapped_column(String(10))
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(10))
    start_planned: Mapped[date | None] = mapped_column(Date)
    start_actual: Mapped[date | None] = mapped_column(Date)
    end_planned: Mapped[date | None] = mapped_column(Date)
    end_actual: Mapped[date | None] = mapped_column(Date)
    default_currency: Mapped[str | None] = mapped_column(String(3))
    humanitarian: Mapped[bool] = mapped_column(Boolean, default=False)
    hierarchy: Mapped[int | None] = mapped_column(Integer)
    last_updated: Mapped[str | None] = mapped_column(String(40))
    iati_version: Mapped[str | None] = mapped_column(String(10))
    source_location: Mapped[str | None] = mapped_column(Text)


class _ActivityChild:
    """Columns shared by the small tables that hang off an activity."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)


class ActivityCountry(_ActivityChild, Base):
    __tablename__ = "activity_country"
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(10))
    percentage: Mapped[Decimal | None] = mapped_column(Money)


class ActivityRegion(_ActivityChild, Base):
    __tablename__ = "activity_region"
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    vocabulary: Mapped[str | None] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(20))
    percentage: Mapped[Decimal | None] = mapped_column(Money)


class ActivitySector(_ActivityChild, Base):
    __tablename__ = "activity_sector"
    __table_args__ = (Index("ix_activity_sector_code", "vocabulary", "code"),)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    vocabulary: Mapped[str | None] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(60))
    percentage: Mapped[Decimal | None] = mapped_column(Money)


class PolicyMarker(_ActivityChild, Base):
    __tablename__ = "policy_marker"
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    vocabulary: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(200))
    significance: Mapped[str | None] = mapped_column(String(10))
    #: The publisher's own vocabulary (IATI vocabulary 99) is named by this URI.
    vocabulary_uri: Mapped[str | None] = mapped_column(String(300))


class ParticipatingOrg(_ActivityChild, Base):
    __tablename__ = "participating_org"
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str | None] = mapped_column(String(200), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(String(10))
    type: Mapped[str | None] = mapped_column(String(10))
    activity_ref: Mapped[str | None] = mapped_column(String(300))


class RelatedActivity(_ActivityChild, Base):
    __tablename__ = "related_activity"
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    type: Mapped[str | None] = mapped_column(String(10))
    ref: Mapped[str] = mapped_column(String(300), index=True)


class ActivityTag(_ActivityChild, Base):
    """A tag the publisher put on the activity (IATI ``tag``: SDG targets, own keywords)."""

    __tablename__ = "activity_tag"
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    vocabulary: Mapped[str | None] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(100))


#: The sides of flows a party known only by name is on (no ref, as the identity step's
#: party keys strip it), indexed by their trimmed name (:class:`trimmed`): the identity
#: update looks up the flows of such a party (dropped or moved by an import) by name.
NAME_ONLY = {side: f"coalesce(trim({side}_ref), '') = ''" for side in ("provider", "receiver")}


class trimmed(FunctionElement[str]):  # noqa: N801 - a SQL function, named like one
    """``trim(x)``, written as PostgreSQL reads it back (``TRIM(BOTH FROM x)``), so that an
    index on it and the migration's index compare equal; the queries use it too, so that
    both databases match the expression to the index."""

    type = Text()
    inherit_cache = True
    name = "trimmed"


@compiles(trimmed)
def _trimmed(element: trimmed, compiler: Any, **kw: Any) -> str:
    return f"trim({compiler.process(element.clauses, **kw)})"


@compiles(trimmed, "postgresql")
def _trimmed_pg(element: trimmed, compiler: Any, **kw: Any) -> str:
    return f"TRIM(BOTH FROM {compiler.process(element.clauses, **kw)})"


class Flow(Base):
    """One reported movement of money, exactly as reported, with USD and provenance."""

    __tablename__ = "flow"
    __table_args__ = (
        Index("ix_flow_current_kind", "superseded_by", "kind"),
        Index("ix_flow_key", "reporting_org_ref", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    superseded_by: Mapped[int | None] = mapped_column(BigInteger)
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), index=True
    )
    reporting_org_ref: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    ref: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[FlowKind] = mapped_column(Enum(FlowKind, native_enum=False, length=32))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    value_date: Mapped[date | None] = mapped_column(Date, index=True)
    transaction_date: Mapped[date | None] = mapped_column(Date)
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    usd_rate: Mapped[Decimal | None] = mapped_column(Money)
    usd_rate_date: Mapped[date | None] = mapped_column(Date)
    usd_rate_source: Mapped[str | None] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    provider_name: Mapped[str | None] = mapped_column(Text)
    provider_activity_id: Mapped[str | None] = mapped_column(String(300))
    receiver_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    receiver_name: Mapped[str | None] = mapped_column(Text)
    receiver_activity_id: Mapped[str | None] = mapped_column(String(300))
    sector_vocabulary: Mapped[str | None] = mapped_column(String(10))
    sector_code: Mapped[str | None] = mapped_column(String(60))
    recipient_country: Mapped[str | None] = mapped_column(String(10))
    recipient_region: Mapped[str | None] = mapped_column(String(20))
    aid_type: Mapped[str | None] = mapped_column(String(10))
    earmarking: Mapped[int | None] = mapped_column(Integer)
    flow_type: Mapped[str | None] = mapped_column(String(10))
    finance_type: Mapped[str | None] = mapped_column(String(10))
    tied_status: Mapped[str | None] = mapped_column(String(10))
    disbursement_channel: Mapped[str | None] = mapped_column(String(10))
    humanitarian: Mapped[bool | None] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source_location: Mapped[str | None] = mapped_column(Text)


class FlowPolicyMarker(Base):
    """A policy marker reported on the flow itself (CRS rows, FTS), as reported."""

    __tablename__ = "flow_policy_marker"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow.id", ondelete="CASCADE"), index=True)
    vocabulary: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(200))
    significance: Mapped[str | None] = mapped_column(String(10))
    #: The publisher's own vocabulary (IATI vocabulary 99) is named by this URI.
    vocabulary_uri: Mapped[str | None] = mapped_column(String(300))


class FlowParent(Base):
    """A parent flow named by a child flow (FTS parentFlowId), by the parent's external id."""

    __tablename__ = "flow_parent"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow.id", ondelete="CASCADE"), index=True)
    parent_external_id: Mapped[str] = mapped_column(String(200), index=True)


class Budget(Base):
    """A budget, planned disbursement or organisation-level budget/expenditure line."""

    __tablename__ = "budget"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    superseded_by: Mapped[int | None] = mapped_column(BigInteger, index=True)
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), index=True
    )
    organisation_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    budget_type: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str | None] = mapped_column(String(10))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_usd: Mapped[Decimal | None] = mapped_column(Money)
    usd_rate: Mapped[Decimal | None] = mapped_column(Money)
    usd_rate_date: Mapped[date | None] = mapped_column(Date)
    usd_rate_source: Mapped[str | None] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    receiver_ref: Mapped[str | None] = mapped_column(String(200))
    receiver_name: Mapped[str | None] = mapped_column(Text)
    recipient_country: Mapped[str | None] = mapped_column(String(10))
    recipient_region: Mapped[str | None] = mapped_column(String(20))
    source_location: Mapped[str | None] = mapped_column(Text)


# expression indexes (the columns must exist first): see NAME_ONLY and trimmed. Hash on
# PostgreSQL: names are looked up by equality only, and a B-tree refuses an entry over
# 2,704 bytes (real participating-org names reach 4 kB); SQLite's B-tree takes any length.
for _side, _where in NAME_ONLY.items():
    Index(f"ix_flow_{_side}_name_only", trimmed(Flow.__table__.c[f"{_side}_name"]),
          postgresql_where=text(_where), sqlite_where=text(_where), postgresql_using="hash")
#: the identity update looks up participating organisations by trimmed name
Index("ix_participating_org_name_trim", trimmed(ParticipatingOrg.__table__.c.name),
      postgresql_using="hash")
