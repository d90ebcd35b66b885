"""Mutations: one ``input`` object each, a payload with ``errors``; access is checked first.

Who may do what (see :mod:`fundtrack.auth.tokens`): anonymous callers may not mutate at all;
a reporter may import reports whose reporting organisation is one of its own and revert
batches that only hold its organisations' reports; an admin may do everything,
including registry edits (organisations, and pooled funds: ``isPooledFund: true``).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import strawberry
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from strawberry.file_uploads import Upload
from strawberry.types import Info

from fundtrack import registry
from fundtrack.api.limits import ApiError
from fundtrack.api.types import BatchIssue, ImportBatch, Organization, RecordCount
from fundtrack.auth.tokens import Viewer
from fundtrack.ingest.issuelog import ISSUES_IN_ANSWER, MAX_STORED_ISSUES
from fundtrack.ingest.pipeline import NotPermitted, batch_publishers, import_file, revert_batch
from fundtrack.ledger import tables as m
from fundtrack.query.ids import decode_int_id


@strawberry.type(description="Why a mutation did not do what was asked.")
class UserError:
    code: str
    message: str
    field: str | None = None


def _require_token(viewer: Viewer, what: str) -> None:
    if viewer.is_anonymous:
        raise ApiError(f"{what} needs an API token (Authorization: Bearer <token>); "
                       "anonymous callers may only read")


def _save_mapping(upload: Any, folder: Path) -> str:
    """Write an uploaded mapping where the spreadsheet importer reads it (a path, as with
    ``fundtrack import --mapping FILE``), under its own base name so errors name it."""
    data = upload.file.read(MAX_MAPPING_BYTES + 1)
    if len(data) > MAX_MAPPING_BYTES:
        raise ApiError(f"the mapping is larger than {MAX_MAPPING_BYTES // 1024} KiB; "
                       "a column mapping is a short TOML file")
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(getattr(upload, "filename", "") or "").name)
    path = folder / (base.strip("._") or "mapping.toml")
    path.write_bytes(data)
    return str(path)


def _require_admin(viewer: Viewer, what: str) -> None:
    _require_token(viewer, what)
    if not viewer.is_admin:
        raise ApiError(f"{what} needs an admin token; this token's role is {viewer.role}")


@strawberry.input
class ImportReportInput:
    file: Upload = strawberry.field(description="The report file (multipart request).")
    format: str | None = strawberry.field(
        default=None, description="Importer name; sniffed from the file if omitted.")
    dry_run: bool = strawberry.field(default=False,
                                     description="Read and validate, write nothing.")
    strict: bool = strawberry.field(default=False, description="Reject the file on any error.")
    mapping: Upload | None = strawberry.field(
        default=None, description="A TOML column mapping for a spreadsheet (docs/mappings.md), "
        "uploaded with it; the format is then `spreadsheet` unless another is named.")


#: A mapping is a short TOML file; anything bigger is not one.
MAX_MAPPING_BYTES = 256 * 1024


@strawberry.type(description="How many issues of one kind an import found.")
class IssueCount:
    severity: str
    code: str
    count: int


@strawberry.type
class ImportReportPayload:
    status: str = strawberry.field(
        description="applied | unchanged | dry-run | rejected | refused")
    status_text: str = strawberry.field(description=(
        'The status as people read it: "applied, 3 skipped" when records were left out.'))
    reconciliation: list[RecordCount] = strawberry.field(description=(
        "For every kind of record in the file: found = imported + skipped (empty when the "
        "file was not read: rejected, refused, unchanged)."))
    message: str
    file_name: str
    sha256: str
    counts: strawberry.scalars.JSON
    issues: list[BatchIssue] = strawberry.field(
        description=f"The first {ISSUES_IN_ANSWER} problems found, with their location in the "
        f"file (the batch stores the first {MAX_STORED_ISSUES}); issueCounts counts them all.")
    issues_total: int = strawberry.field(description="How many problems were found in all.")
    issue_counts: list[IssueCount] = strawberry.field(
        description="Every problem found, counted by severity and code (most frequent first).")
    batch: ImportBatch | None
    errors: list[UserError]


@strawberry.input
class RevertImportInput:
    id: strawberry.ID = strawberry.field(description="The ImportBatch id.")


@strawberry.type
class RevertImportPayload:
    batch: ImportBatch | None
    counts: strawberry.scalars.JSON | None
    errors: list[UserError]


@strawberry.input
class OrganizationInput:
    ref: str
    name: str | None = None
    type: str | None = None
    country: str | None = None
    default_currency: str | None = None
    is_womens_rights_org: bool | None = None
    is_pooled_fund: bool | None = strawberry.field(
        default=None, description="true for a pooled fund (PBF, WPHF, CBPFs ...)")


@strawberry.type
class OrganizationPayload:
    organization: Organization | None
    created: bool
    errors: list[UserError]


def _batch_row(engine: Any, batch_id: int) -> Any:
    with engine.connect().execution_options(readonly=True) as c:
        row = c.execute(select(m.ImportBatch.__table__).where(
            m.ImportBatch.id == batch_id)).mappings().first()
        c.rollback()
        return row


def _publishers(engine: Any, batch_id: int) -> set[str]:
    """The batch's publishers, every one (the ``batch_publisher`` table, never a cut string)."""
    with engine.connect().execution_options(readonly=True) as c:
        try:
            return batch_publishers(c, batch_id)
        finally:
            c.rollback()


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(description="Upload a report file (IATI XML, spreadsheet, ...) "
                         "and import it as one batch: all or nothing.")
    async def import_report(self, info: Info, input: ImportReportInput) -> ImportReportPayload:
        ctx = info.context
        viewer: Viewer = ctx.viewer
        _require_token(viewer, "importReport")
        upload = input.file
        if not callable(getattr(getattr(upload, "file", None), "read", None)):
            # A multipart part without a file name arrives as a string, as does a JSON
            # string variable: say so instead of failing on it.
            got = ("a string: a part with an empty file name, or a plain value"
                   if isinstance(upload, str) else f"a {type(upload).__name__}")
            message = (f"`file` must be a file sent as a multipart part with a file name "
                       f"(got {got}); nothing was imported")
            return ImportReportPayload(status="rejected", status_text="rejected",
                                       reconciliation=[], message=message, file_name="",
                                       sha256="", counts={}, issues=[], issues_total=0,
                                       issue_counts=[], batch=None, errors=[UserError(
                                           code="INVALID", message=message, field="file")])
        name = getattr(upload, "filename", None) or "upload"
        allowed = None if viewer.is_admin else sorted(viewer.orgs)

        def run() -> Any:
            with tempfile.TemporaryDirectory(prefix="fundtrack-mapping-") as tmp:
                options, fmt = None, input.format
                if input.mapping is not None:
                    options = {"mapping": _save_mapping(input.mapping, Path(tmp))}
                    fmt = fmt or "spreadsheet"
                return import_file(ctx.engine, upload.file, filename=name, fmt=fmt,
                                   dry_run=input.dry_run, strict=input.strict,
                                   imported_by=viewer.who,
                                   allowed_publishers=allowed, options=options)

        try:
            result = await run_in_threadpool(run)
        except NotPermitted as exc:
            return ImportReportPayload(status="refused", status_text="refused",
                                       reconciliation=[], message=str(exc), file_name=name,
                                       sha256="", counts={}, issues=[], issues_total=0,
                                       issue_counts=[], batch=None,
                                       errors=[UserError(code="NOT_PERMITTED", message=str(exc),
                                                         field="file")])
        batch = None
        if result.batch_id is not None:
            row = await run_in_threadpool(_batch_row, ctx.engine, result.batch_id)
            batch = ImportBatch.from_row(row) if row else None
        errors = [] if result.ok else [UserError(code="REJECTED", message=result.message,
                                                  field="file")]
        return ImportReportPayload(
            status=result.status, status_text=result.status_text,
            reconciliation=[RecordCount(kind=k, found=n, imported=result.imported.get(k, 0),
                                        skipped=result.skipped.get(k, 0))
                            for k, n in result.found.items() if n],
            message=result.message or result.summary(),
            file_name=result.file_name, sha256=result.sha256, counts=result.counts,
            issues=[BatchIssue(severity=i.severity.value, code=i.code, location=i.location,
                               message=i.message) for i in result.issues[:ISSUES_IN_ANSWER]],
            issues_total=result.issues.total,
            issue_counts=[IssueCount(**k) for k in result.issues.kinds()],
            batch=batch, errors=errors)

    @strawberry.mutation(description="Undo an import batch, restoring what it replaced.")
    async def revert_import(self, info: Info, input: RevertImportInput) -> RevertImportPayload:
        ctx = info.context
        viewer: Viewer = ctx.viewer
        _require_token(viewer, "revertImport")
        batch_id = decode_int_id(input.id, "ImportBatch")
        row = await run_in_threadpool(_batch_row, ctx.engine, batch_id)
        if row is None:
            return RevertImportPayload(batch=None, counts=None, errors=[UserError(
                code="NOT_FOUND", message=f"no import batch {input.id}", field="id")])
        if not viewer.is_admin:
            publishers = await run_in_threadpool(_publishers, ctx.engine, batch_id)
            if not publishers or not publishers <= viewer.orgs:
                return RevertImportPayload(batch=ImportBatch.from_row(row), counts=None, errors=[
                    UserError(code="NOT_PERMITTED", field="id", message=(
                        f"batch holds reports of {', '.join(sorted(publishers)) or 'nobody'}; "
                        f"this token reports for {', '.join(sorted(viewer.orgs))}"))])
        try:
            counts = await run_in_threadpool(revert_batch, ctx.engine, batch_id)
        except (LookupError, ValueError) as exc:
            return RevertImportPayload(batch=ImportBatch.from_row(row), counts=None,
                                       errors=[UserError(code="INVALID", message=str(exc),
                                                         field="id")])
        row = await run_in_threadpool(_batch_row, ctx.engine, batch_id)
        return RevertImportPayload(batch=ImportBatch.from_row(row), counts=counts, errors=[])

    @strawberry.mutation(description="Create or edit a registry organisation or fund "
                         "(admin only). Fields left out are kept.")
    async def upsert_organization(self, info: Info, input: OrganizationInput,
                                  ) -> OrganizationPayload:
        ctx = info.context
        _require_admin(ctx.viewer, "upsertOrganization")
        ref = input.ref.strip()
        if not ref:
            return OrganizationPayload(organization=None, created=False, errors=[
                UserError(code="INVALID", message="ref must not be empty", field="ref")])
        values = {k: getattr(input, k) for k in registry.ORGANISATION_FIELDS
                  if getattr(input, k) is not None}

        def run() -> tuple[Any, bool]:
            with ctx.engine.begin() as conn:
                return registry.upsert_organization(conn, ref, **values)

        row, created = await run_in_threadpool(run)
        return OrganizationPayload(organization=Organization.from_row(row), created=created,
                                   errors=[])
