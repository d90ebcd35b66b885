"""The canonical import record: what every importer yields and the ledger accepts.

Importers turn a file into a stream of these dataclasses and :class:`Issue` objects.
They never touch the database; the ingest pipeline validates, converts and stores them.
The contract is documented for plugin authors in ``schema/canonical-record.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


class FlowKind(enum.Enum):
    """What a flow is, named after IATI transaction types 1-13."""

    INCOMING_FUNDS = 1
    OUTGOING_COMMITMENT = 2
    DISBURSEMENT = 3
    EXPENDITURE = 4
    INTEREST_PAYMENT = 5
    LOAN_REPAYMENT = 6
    REIMBURSEMENT = 7
    PURCHASE_OF_EQUITY = 8
    SALE_OF_EQUITY = 9
    CREDIT_GUARANTEE = 10
    INCOMING_COMMITMENT = 11
    OUTGOING_PLEDGE = 12
    INCOMING_PLEDGE = 13

    @property
    def is_cash(self) -> bool:
        return self in (FlowKind.INCOMING_FUNDS, FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE)


#: IATI 1.0x transaction type letter codes; real 2.0x files still contain them.
LEGACY_TRANSACTION_CODES = {
    "IF": 1, "C": 2, "D": 3, "E": 4, "IR": 5, "LR": 6, "R": 7, "QP": 8, "QS": 9, "CG": 10,
}


def flow_kind_from_code(code: str | int | None) -> FlowKind | None:
    """Map an IATI transaction type (number or 1.0x letter code) to a :class:`FlowKind`."""
    if code is None:
        return None
    text = str(code).strip().upper()
    if text in LEGACY_TRANSACTION_CODES:
        return FlowKind(LEGACY_TRANSACTION_CODES[text])
    try:
        return FlowKind(int(text))
    except ValueError:
        return None


class Severity(enum.StrEnum):
    ERROR = "error"      # the record (or file, if fatal) was not imported
    WARNING = "warning"  # imported, but something was missing or repaired


@dataclass(slots=True)
class Issue:
    """A problem found in a file, with where it is and why it matters."""

    severity: Severity
    message: str
    location: str = ""
    code: str = "invalid"
    #: What this problem left out of the import, by record kind (``{"activities": 1,
    #: "flows": 3}``): the pipeline adds these up so that, for every file, records found
    #: = imported + skipped. ``None`` on an error means one record (a flow) was skipped.
    skipped: dict[str, int] | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{self.severity.value}: {where}{self.message}"


class FileRejected(Exception):
    """The file as a whole cannot be imported; nothing of it is written.

    Importers raise it for files they cannot read at all (malformed XML, wrong root),
    with a location such as ``line 12, column 5``.
    """

    def __init__(self, message: str, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def as_issue(self) -> Issue:
        return Issue(Severity.ERROR, self.message, self.location, "rejected")


@dataclass(slots=True)
class OrgRef:
    """An organisation as named in a report: reference and/or name."""

    ref: str | None = None
    name: str | None = None
    type: str | None = None
    activity_id: str | None = None  # provider-/receiver-activity-id or participating @activity-id
    role: str | None = None         # participating-org role code (1-4)


@dataclass(slots=True)
class Coded:
    """A code with its vocabulary and optional percentage (sector, country, region)."""

    code: str
    vocabulary: str | None = None
    percentage: Decimal | None = None


@dataclass(slots=True)
class PolicyMarker:
    code: str
    vocabulary: str = "1"
    significance: str | None = None  # kept as reported: "0"-"4", "2a", "M" ...
    vocabulary_uri: str | None = None  # names a reporting organisation's own vocabulary (99)


@dataclass(slots=True)
class FlowRecord:
    """One movement of money as reported (an IATI transaction, an FTS flow, a CRS row)."""

    kind: FlowKind
    amount: Decimal
    currency: str | None
    value_date: date | None = None
    transaction_date: date | None = None
    provider: OrgRef = field(default_factory=OrgRef)
    receiver: OrgRef = field(default_factory=OrgRef)
    description: str | None = None
    ref: str | None = None              # the report's own transaction reference
    external_id: str | None = None      # stable id for flows outside activities (FTS flow id)
    reporting_org: OrgRef | None = None  # only for flows outside an activity
    activity_identifier: str | None = None  # for flows outside an ActivityRecord
    sector: Coded | None = None
    recipient_country: str | None = None
    recipient_region: str | None = None
    aid_type: str | None = None          # DAC aid type (vocabulary 1)
    earmarking: int | None = None        # Grand Bargain category 1-4
    flow_type: str | None = None
    finance_type: str | None = None
    tied_status: str | None = None
    disbursement_channel: str | None = None
    humanitarian: bool | None = None
    usd_amount: Decimal | None = None    # the report's own USD figure, if it gives one
    usd_rate: Decimal | None = None      # the report's own rate, USD per one unit of currency
    parent_external_ids: list[str] = field(default_factory=list)
    policy_markers: list[PolicyMarker] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    location: str = ""


@dataclass(slots=True)
class BudgetRecord:
    """A budget line or planned disbursement (activity or organisation level)."""

    kind: str  # budget | planned_disbursement | total_budget | recipient_org_budget | ...
    amount: Decimal
    currency: str | None
    period_start: date | None = None
    period_end: date | None = None
    value_date: date | None = None
    budget_type: str | None = None
    status: str | None = None
    provider: OrgRef | None = None
    receiver: OrgRef | None = None
    recipient_country: str | None = None
    recipient_region: str | None = None
    location: str = ""


@dataclass(slots=True)
class ActivityRecord:
    """A project as its reporting organisation describes it, with its flows and budgets."""

    identifier: str
    reporting_org: OrgRef
    title: str | None = None
    description: str | None = None
    status: str | None = None
    start_planned: date | None = None
    start_actual: date | None = None
    end_planned: date | None = None
    end_actual: date | None = None
    default_currency: str | None = None
    humanitarian: bool = False
    hierarchy: int | None = None
    last_updated: str | None = None
    version: str | None = None
    recipient_countries: list[Coded] = field(default_factory=list)
    recipient_regions: list[Coded] = field(default_factory=list)
    sectors: list[Coded] = field(default_factory=list)
    policy_markers: list[PolicyMarker] = field(default_factory=list)
    participating_orgs: list[OrgRef] = field(default_factory=list)
    related_activities: list[tuple[str, str]] = field(default_factory=list)  # (type, ref)
    tags: list[Coded] = field(default_factory=list)
    flows: list[FlowRecord] = field(default_factory=list)
    budgets: list[BudgetRecord] = field(default_factory=list)
    location: str = ""


@dataclass(slots=True)
class OrganisationRecord:
    """An organisation's own description (IATI organisation file, registry entry)."""

    ref: str
    name: str | None = None
    type: str | None = None
    country: str | None = None
    reporting_org: OrgRef | None = None
    default_currency: str | None = None
    budgets: list[BudgetRecord] = field(default_factory=list)
    location: str = ""


Record = ActivityRecord | FlowRecord | OrganisationRecord
