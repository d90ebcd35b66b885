"""The public object types. Build them from row mappings with ``X.from_row(row)``.

Plain attributes are copied from the row (cheap); anything needing another table goes
through the request's DataLoaders (``info.context.loaders``), never a query per object.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from fundtrack.api.execution.fields import fast
from fundtrack.api.identity import OrganizationIdentity
from fundtrack.api.organizations import ActivityLinks, OrganizationLinks
from fundtrack.query.ids import encode_id
from fundtrack.query.vocabulary import GENDER_CODE, GENDER_VOCABULARY, VALID_SIGNIFICANCE
from fundtrack.records import FlowKind as _FlowKind

FlowKind = strawberry.enum(_FlowKind, description="What a flow is (IATI transaction types 1-13).")



def gender_significance(markers: list[Any]) -> int | None:
    """The activity's DAC gender marker score (0-2), ``None`` if not given or unreadable."""
    scores = [int(r["significance"]) for r in markers
              if r["vocabulary"] == GENDER_VOCABULARY and r["code"] == GENDER_CODE
              and r["significance"] in VALID_SIGNIFICANCE]
    return max(scores) if scores else None


def _related(ctx: Any, how: str, loader: str, key: Any, build: Any) -> Any:
    """A relation through the request's loaders: ``how`` is ``get`` (resolvers: the value
    or an awaitable) or ``peek`` (the fast path: the value or ``MISSING``)."""
    if key is None or key == "":
        return None
    return getattr(ctx.loaders, how)(loader, key, build)


def _relation(loader: str, attr: str, build_name: str, **field: Any) -> Any:
    """``strawberry.field`` arguments for a relation, with its fast path (field metadata)."""
    def peek(source: Any, ctx: Any) -> Any:  # _related(ctx, "peek", ...), inlined: per item
        key = getattr(source, attr)
        if key is None or key == "":
            return None
        return ctx.loaders.peek(loader, key, globals()[build_name])

    return strawberry.field(metadata=fast(peek), **field)


@strawberry.interface(description="An object with a global id (Relay).")
class Node:
    id: strawberry.ID


@strawberry.type(description="An organisation in the registry (donor, fund, agency, NGO ...).")
class Organization(OrganizationLinks, OrganizationIdentity, Node):
    pk: strawberry.Private[int]
    ref: str
    name: str | None
    type: str | None
    country: str | None
    is_womens_rights_org: bool
    is_pooled_fund: bool
    default_currency: str | None

    @classmethod
    def from_row(cls, r: Any) -> Organization:
        return cls(id=strawberry.ID(encode_id("Organization", r["id"])), pk=r["id"], ref=r["ref"],
                   name=r["name"], type=r["type"], country=r["country"],
                   is_womens_rights_org=bool(r["is_womens_rights_org"]),
                   is_pooled_fund=bool(r["is_pooled_fund"]),
                   default_currency=r["default_currency"])


@strawberry.type(description="One end of a flow, as the report names it.")
class FlowParty:
    ref: str | None
    name: str | None
    activity_id: str | None = strawberry.field(
        description="The IATI identifier of the activity at this end, if reported.")

    @_relation("organisation_by_ref", "ref", "_organization",
               description="The registry entry for `ref`, if the registry knows it.")
    def organization(self, info: Info) -> Organization | None:
        return _related(info.context, "get", "organisation_by_ref", self.ref, _organization)


@strawberry.type
class Sector:
    vocabulary: str | None
    code: str
    percentage: Decimal | None


@strawberry.type(description="A policy marker as reported (vocabulary 1 code 1 = DAC gender).")
class PolicyMarker:
    vocabulary: str
    code: str
    significance: str | None
    vocabulary_uri: str | None = strawberry.field(
        default=None, description="Names a reporting organisation's own vocabulary (99).")


@strawberry.type
class CountryShare:
    code: str
    percentage: Decimal | None


@strawberry.type
class RegionShare:
    vocabulary: str | None
    code: str
    percentage: Decimal | None


@strawberry.type
class ParticipatingOrg:
    ref: str | None
    name: str | None
    role: str | None
    type: str | None
    activity_id: str | None


@strawberry.type(description="A project or programme as its reporting organisation describes it.")
class Activity(ActivityLinks, Node):
    pk: strawberry.Private[int]
    batch_pk: strawberry.Private[int]
    iati_identifier: str
    reporting_org_ref: str
    reporting_org_name: str | None
    title: str | None
    description: str | None
    status: str | None
    start_planned: date | None
    start_actual: date | None
    end_planned: date | None
    end_actual: date | None
    default_currency: str | None
    humanitarian: bool
    current: bool

    @classmethod
    def from_row(cls, r: Any) -> Activity:
        return cls(id=strawberry.ID(encode_id("Activity", r["id"])), pk=r["id"],
                   batch_pk=r["batch_id"], iati_identifier=r["iati_identifier"],
                   reporting_org_ref=r["reporting_org_ref"],
                   reporting_org_name=r["reporting_org_name"], title=r["title"],
                   description=r["description"], status=r["status"],
                   start_planned=r["start_planned"], start_actual=r["start_actual"],
                   end_planned=r["end_planned"], end_actual=r["end_actual"],
                   default_currency=r["default_currency"], humanitarian=bool(r["humanitarian"]),
                   current=r["superseded_by"] is None)

    @_relation("organisation_by_ref", "reporting_org_ref", "_organization")
    def reporting_org(self, info: Info) -> Organization | None:
        return _related(info.context, "get", "organisation_by_ref", self.reporting_org_ref,
                        _organization)

    @_relation("sectors_by_activity", "pk", "_sectors")
    def sectors(self, info: Info) -> list[Sector]:
        return _related(info.context, "get", "sectors_by_activity", self.pk, _sectors)

    @_relation("markers_by_activity", "pk", "_markers")
    def policy_markers(self, info: Info) -> list[PolicyMarker]:
        return _related(info.context, "get", "markers_by_activity", self.pk, _markers)

    @_relation("markers_by_activity", "pk", "gender_significance",
               description="OECD DAC gender equality marker: 0 not targeted, "
               "1 significant, 2 principal; null if not reported.")
    def gender_significance(self, info: Info) -> int | None:
        return _related(info.context, "get", "markers_by_activity", self.pk, gender_significance)

    @_relation("countries_by_activity", "pk", "_countries")
    def recipient_countries(self, info: Info) -> list[CountryShare]:
        return _related(info.context, "get", "countries_by_activity", self.pk, _countries)

    @_relation("regions_by_activity", "pk", "_regions")
    def recipient_regions(self, info: Info) -> list[RegionShare]:
        return _related(info.context, "get", "regions_by_activity", self.pk, _regions)

    @_relation("participants_by_activity", "pk", "_participants")
    def participating_orgs(self, info: Info) -> list[ParticipatingOrg]:
        return _related(info.context, "get", "participants_by_activity", self.pk, _participants)

    @_relation("batch_by_id", "batch_pk", "_batch")
    def batch(self, info: Info) -> Annotated[ImportBatch, strawberry.lazy(
            "fundtrack.api.types")] | None:
        return _related(info.context, "get", "batch_by_id", self.batch_pk, _batch)


@strawberry.type(description="One reported movement of money, exactly as reported, with USD.")
class Flow(Node):
    pk: strawberry.Private[int]
    activity_pk: strawberry.Private[int | None]
    batch_pk: strawberry.Private[int]
    kind: FlowKind  # type: ignore[valid-type]
    amount: Decimal = strawberry.field(description="As reported, in `currency`.")
    currency: str | None
    value_date: date | None
    transaction_date: date | None
    amount_usd: Decimal | None
    usd_rate: Decimal | None = strawberry.field(description="USD per unit of `currency`.")
    usd_rate_date: date | None
    usd_rate_source: str | None
    reporting_org_ref: str | None
    external_id: str | None
    ref: str | None
    provider: FlowParty
    receiver: FlowParty
    sector_vocabulary: str | None
    sector_code: str | None
    recipient_country: str | None
    recipient_region: str | None
    aid_type: str | None
    earmarking: int | None = strawberry.field(
        description="Grand Bargain: 1 unearmarked, 2 softly, 3 earmarked, 4 tightly earmarked.")
    flow_type: str | None
    finance_type: str | None
    tied_status: str | None
    humanitarian: bool | None
    description: str | None
    source_location: str | None = strawberry.field(
        description="Where in the reported file this flow came from (XPath or row).")
    current: bool

    @classmethod
    def from_row(cls, r: Any) -> Flow:
        return cls(
            id=strawberry.ID(encode_id("Flow", r["id"])), pk=r["id"],
            activity_pk=r["activity_id"], batch_pk=r["batch_id"], kind=r["kind"],
            amount=r["amount"], currency=r["currency"], value_date=r["value_date"],
            transaction_date=r["transaction_date"], amount_usd=r["amount_usd"],
            usd_rate=r["usd_rate"], usd_rate_date=r["usd_rate_date"],
            usd_rate_source=r["usd_rate_source"], reporting_org_ref=r["reporting_org_ref"],
            external_id=r["external_id"], ref=r["ref"],
            provider=FlowParty(ref=r["provider_ref"], name=r["provider_name"],
                               activity_id=r["provider_activity_id"]),
            receiver=FlowParty(ref=r["receiver_ref"], name=r["receiver_name"],
                               activity_id=r["receiver_activity_id"]),
            sector_vocabulary=r["sector_vocabulary"], sector_code=r["sector_code"],
            recipient_country=r["recipient_country"], recipient_region=r["recipient_region"],
            aid_type=r["aid_type"], earmarking=r["earmarking"], flow_type=r["flow_type"],
            finance_type=r["finance_type"], tied_status=r["tied_status"],
            humanitarian=r["humanitarian"], description=r["description"],
            source_location=r["source_location"], current=r["superseded_by"] is None,
        )

    @_relation("activity_by_id", "activity_pk", "_activity")
    def activity(self, info: Info) -> Activity | None:
        return _related(info.context, "get", "activity_by_id", self.activity_pk, _activity)

    @_relation("organisation_by_ref", "reporting_org_ref", "_organization")
    def reporting_org(self, info: Info) -> Organization | None:
        return _related(info.context, "get", "organisation_by_ref", self.reporting_org_ref,
                        _organization)

    @_relation("batch_by_id", "batch_pk", "_batch")
    def batch(self, info: Info) -> Annotated[ImportBatch, strawberry.lazy(
            "fundtrack.api.types")] | None:
        return _related(info.context, "get", "batch_by_id", self.batch_pk, _batch)

    @_relation("classification_by_flow", "pk", "_classification",
               description="The 1325 scope and pillars of this flow, each with the rules "
               "(or hand override) that decided it and why (rules.toml); the pillar filter "
               "reads the same rows. Empty for a superseded flow.")
    def classification(self, info: Info) -> list[FlowClassification]:
        return _related(info.context, "get", "classification_by_flow", self.pk,
                        _classification)


@strawberry.type(description="A classification rule as cited on a flow.")
class ClassificationRule:
    id: str = strawberry.field(description="Rule id in rules.toml, or override:<id>.")
    note: str | None = strawberry.field(description="Why the rule exists (its rationale).")
    low_confidence: bool = strawberry.field(
        description="A free-keyword rule without a code gate: check by hand.")


@strawberry.type(description="One dimension (scope or a pillar) a flow is in or out of.")
class FlowClassification:
    dimension: str = strawberry.field(description='"scope" or "pillar:<name>".')
    is_in: bool
    rules: list[ClassificationRule]


def _classification(rows: list[Any]) -> list[FlowClassification]:
    from fundtrack.accounting.classify import rule_info

    out = []
    for r in rows:
        if r["dimension"].startswith("gender:"):
            continue  # the stored gender value is genderSignificance's, not a 1325 dimension
        cited = []
        for rid in (r["rules"] or "").split():
            note, low = rule_info(rid)
            cited.append(ClassificationRule(id=rid, note=note, low_confidence=low))
        out.append(FlowClassification(dimension=r["dimension"], is_in=bool(r["is_in"]),
                                      rules=cited))
    return out


#: Flow's GraphQL fields -> the ``flow`` columns :meth:`Flow.from_row` reads for them. A page
#: of flows reads only the columns of the fields its client selected (the rest come back as
#: NULL constants, so ``from_row`` stays the one builder): 36 columns decoded for 100 rows
#: cost ~0.7 ms on PostgreSQL, 11 cost ~0.2 ms. A selected field missing here makes the
#: page read every column; ``tests/test_api_columns.py`` checks that every field is here.
FLOW_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id",), "kind": ("kind",), "amount": ("amount",), "currency": ("currency",),
    "valueDate": ("value_date",), "transactionDate": ("transaction_date",),
    "amountUsd": ("amount_usd",), "usdRate": ("usd_rate",), "usdRateDate": ("usd_rate_date",),
    "usdRateSource": ("usd_rate_source",), "reportingOrgRef": ("reporting_org_ref",),
    "externalId": ("external_id",), "ref": ("ref",),
    "provider": ("provider_ref", "provider_name", "provider_activity_id"),
    "receiver": ("receiver_ref", "receiver_name", "receiver_activity_id"),
    "sectorVocabulary": ("sector_vocabulary",), "sectorCode": ("sector_code",),
    "recipientCountry": ("recipient_country",), "recipientRegion": ("recipient_region",),
    "aidType": ("aid_type",), "earmarking": ("earmarking",), "flowType": ("flow_type",),
    "financeType": ("finance_type",), "tiedStatus": ("tied_status",),
    "humanitarian": ("humanitarian",), "description": ("description",),
    "sourceLocation": ("source_location",), "current": ("superseded_by",),
    "activity": ("activity_id",), "reportingOrg": ("reporting_org_ref",), "batch": ("batch_id",),
    "classification": ("id",),
    "__typename": (),
}

#: GraphQL type -> its field-to-column map, for the connections that narrow their page.
PAGE_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {"Flow": FLOW_COLUMNS}


@strawberry.type(description="A budget, planned disbursement or organisation budget line.")
class Budget(Node):
    pk: strawberry.Private[int]
    activity_pk: strawberry.Private[int | None]
    kind: str
    budget_type: str | None
    status: str | None
    period_start: date | None
    period_end: date | None
    value_date: date | None
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None
    organisation_ref: str | None
    provider_ref: str | None
    receiver_ref: str | None
    receiver_name: str | None
    recipient_country: str | None
    recipient_region: str | None
    source_location: str | None

    @classmethod
    def from_row(cls, r: Any) -> Budget:
        return cls(id=strawberry.ID(encode_id("Budget", r["id"])), pk=r["id"],
                   activity_pk=r["activity_id"], kind=r["kind"], budget_type=r["budget_type"],
                   status=r["status"], period_start=r["period_start"],
                   period_end=r["period_end"], value_date=r["value_date"], amount=r["amount"],
                   currency=r["currency"], amount_usd=r["amount_usd"],
                   organisation_ref=r["organisation_ref"], provider_ref=r["provider_ref"],
                   receiver_ref=r["receiver_ref"], receiver_name=r["receiver_name"],
                   recipient_country=r["recipient_country"],
                   recipient_region=r["recipient_region"],
                   source_location=r["source_location"])

    @_relation("activity_by_id", "activity_pk", "_activity")
    def activity(self, info: Info) -> Activity | None:
        return _related(info.context, "get", "activity_by_id", self.activity_pk, _activity)


@strawberry.type(description="A problem found in an imported file, with where it is.")
class BatchIssue:
    severity: str
    code: str
    location: str
    message: str


@strawberry.type(description="Records of one kind in an imported file: found = imported + "
                 "skipped. Kinds: activities, flows (IATI transactions, FTS flows, grants, "
                 "CRS amounts, spreadsheet rows), budgets, organisations.")
class RecordCount:
    kind: str
    found: int
    imported: int
    skipped: int


def record_counts(get: Any) -> list[RecordCount] | None:
    """The reconciliation of a batch row or result (``get(column)``); None before 0012."""
    from fundtrack.ingest.pipeline import KINDS

    if get("activities_found") is None:
        return None
    return [RecordCount(kind=k, found=get(f"{k}_found") or 0,
                        imported=get(f"{k}_imported") or 0, skipped=get(f"{k}_skipped") or 0)
            for k in KINDS if get(f"{k}_found")]


@strawberry.type(description="One imported file: who, when, what, and what was wrong with it.")
class ImportBatch(Node):
    pk: strawberry.Private[int]
    number: int = strawberry.field(description=(
        "The batch number, as `fundtrack import` prints it, `fundtrack revert` takes it and "
        "the import history page lists it (`id` is the API's global id of the same batch)."))
    importer: str
    importer_version: str
    file_name: str
    sha256: str
    size_bytes: int
    imported_by: str | None
    created_at: datetime
    status: str
    reverted_at: datetime | None
    publisher_ref: str | None
    counts: strawberry.scalars.JSON
    reconciliation: list[RecordCount] | None = strawberry.field(description=(
        "For every kind of record in the file: found = imported + skipped (each skip is an "
        "issue with its reason and location). null for files imported before this was kept."))
    skipped: int | None = strawberry.field(description="Records left out, all kinds together.")
    status_text: str = strawberry.field(description=(
        'The status as people read it: "applied, 3 skipped" when records were left out, '
        "never a plain \"applied\"."))
    source_url: str | None = strawberry.field(
        default=None, description="Where `fundtrack sync` fetched the file from (null for uploads).")

    @classmethod
    def from_row(cls, r: Any) -> ImportBatch:
        from fundtrack.ingest.pipeline import status_text

        get = r.get if hasattr(r, "get") else (lambda k: getattr(r, k, None))
        rec = record_counts(get)
        skipped = None if rec is None else sum(c.skipped for c in rec)
        return cls(id=strawberry.ID(encode_id("ImportBatch", r["id"])), pk=r["id"],
                   number=r["id"], importer=r["importer"], importer_version=r["importer_version"],
                   file_name=r["file_name"], sha256=r["sha256"], size_bytes=r["size_bytes"],
                   imported_by=r["imported_by"], created_at=r["created_at"], status=r["status"],
                   reverted_at=r["reverted_at"], publisher_ref=r["publisher_ref"],
                   counts=r["counts"] or {}, reconciliation=rec, skipped=skipped,
                   status_text=status_text(r["status"], skipped), source_url=r.get("source_url"))

    @_relation("issues_by_batch", "pk", "_issues",
               description="Warnings and skipped records, with their location in the file.")
    def issues(self, info: Info) -> list[BatchIssue]:
        return _related(info.context, "get", "issues_by_batch", self.pk, _issues)

    @_relation("publishers_by_batch", "pk", "_publishers",
               description="Every organisation whose reports this batch holds, in full "
               "(publisherRef is the same list joined with commas).")
    def publishers(self, info: Info) -> list[str]:
        return _related(info.context, "get", "publishers_by_batch", self.pk, _publishers)


# Builders from loaded rows (module level, so the request's loaders memoise their results).
def _organization(r: Any) -> Organization | None:
    return Organization.from_row(r) if r else None


def _activity(r: Any) -> Activity | None:
    return Activity.from_row(r) if r else None


def _batch(r: Any) -> ImportBatch | None:
    return ImportBatch.from_row(r) if r else None


def _sectors(rows: list[Any]) -> list[Sector]:
    return [Sector(vocabulary=r["vocabulary"], code=r["code"], percentage=r["percentage"])
            for r in rows]


def _markers(rows: list[Any]) -> list[PolicyMarker]:
    return [PolicyMarker(vocabulary=r["vocabulary"], code=r["code"],
                         significance=r["significance"], vocabulary_uri=r.get("vocabulary_uri"))
            for r in rows]


def _countries(rows: list[Any]) -> list[CountryShare]:
    return [CountryShare(code=r["code"], percentage=r["percentage"]) for r in rows]


def _regions(rows: list[Any]) -> list[RegionShare]:
    return [RegionShare(vocabulary=r["vocabulary"], code=r["code"], percentage=r["percentage"])
            for r in rows]


def _participants(rows: list[Any]) -> list[ParticipatingOrg]:
    return [ParticipatingOrg(ref=r["ref"], name=r["name"], role=r["role"], type=r["type"],
                             activity_id=r["activity_ref"]) for r in rows]


def _publishers(rows: list[Any]) -> list[str]:
    return sorted(r["org_ref"] for r in rows)


def _issues(rows: list[Any]) -> list[BatchIssue]:
    return [BatchIssue(severity=r["severity"], code=r["code"], location=r["location"],
                       message=r["message"]) for r in rows]
