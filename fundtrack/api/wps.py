"""WPS data over GraphQL: admin mutations for National Action Plans, their lines and
domestic budget lines, stipulations and fund targets, a CSV import, the change history
and the country fact sheet.

Validation and writes are :mod:`fundtrack.accounting.wps` (shared with the CLI and the
CSV import); a field at fault comes back as a ``UserError`` naming it. Amounts and
shares are strings (exact decimals, never floats); years are integers; a plan's period
is a year (``"2018"``) or a date.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.file_uploads import Upload
from strawberry.types import Info

from fundtrack.accounting import factsheet, wps, wps_csv
from fundtrack.accounting.wps import Actor, Invalid
from fundtrack.api.accounting import NationalActionPlan, _nap
from fundtrack.api.limits import ApiError
from fundtrack.api.mutations import UserError, _require_admin
from fundtrack.auth.tokens import Viewer


@strawberry.type(description="What a WPS mutation did.")
class WpsPayload:
    status: str | None = strawberry.field(
        description="created | updated | unchanged | deleted (null when refused)")
    record: strawberry.scalars.JSON | None = strawberry.field(
        description="The record as stored (amounts as exact decimal strings); for a "
                    "delete, as it was.")
    errors: list[UserError]


@strawberry.input(description="A National Action Plan; an existing code is edited "
                  "(fields left out are kept).")
class NationalActionPlanInput:
    code: str
    country: str | None = None
    title: str | None = None
    period_start: str | None = strawberry.field(
        default=None, description="A year (1 January) or a date, e.g. 2018 or 2018-01-01.")
    period_end: str | None = strawberry.field(
        default=None, description="A year (31 December) or a date.")
    source: str | None = None


@strawberry.input(description="A costed line of a plan; an existing code is edited.")
class NapLineInput:
    nap_code: str
    code: str
    pillar: str | None = strawberry.field(
        default=None, description="participation | protection | prevention | "
        "relief-and-recovery | cross-cutting")
    title: str | None = None
    costed_amount: str | None = strawberry.field(
        default=None, description="The cost as the plan states it (exact decimal).")
    costed_currency: str | None = None
    costed_usd: str | None = strawberry.field(
        default=None, description="The USD figure; if left out, the amount in USD, or "
        "converted at the ECB rate of the plan's first day.")
    sectors: list[str] | None = strawberry.field(
        default=None, description="DAC 5-digit sector codes that link movements to the line.")
    sector_ranges: list[str] | None = strawberry.field(
        default=None, description='Ranges of sector codes, e.g. "15210-15261".')
    tags: list[str] | None = strawberry.field(
        default=None, description="Donors' own codes (sector vocabularies 98/99, keywords).")
    keywords: list[str] | None = strawberry.field(
        default=None, description="Words that must also appear (never alone).")
    source: str | None = None


@strawberry.input(description="A domestic budget line of a plan, by code and year.")
class NapBudgetLineInput:
    nap_code: str
    code: str
    year: int
    amount: str | None = None
    currency: str | None = None
    amount_usd: str | None = None
    institution: str | None = None
    line_code: str | None = strawberry.field(
        default=None, description="The costed line this allocation is for, if one.")
    source: str | None = None


@strawberry.input(description="A donor's condition on its money leaving a recipient.")
class StipulationInput:
    id: int | None = strawberry.field(
        default=None, description="Edit this stipulation; without it, one with the same "
        "donor, recipient, year, kind and target is edited, else one is created.")
    donor_ref: str | None = None
    recipient_ref: str | None = None
    year: int | None = None
    kind: str | None = strawberry.field(
        default=None, description="gender-principal | wro | pillar | country")
    target: str | None = None
    min_share: str | None = strawberry.field(default=None, description="0..1, e.g. 0.15")
    source: str | None = None


@strawberry.input(description="A pooled fund's own target for its gender-principal share.")
class FundTargetInput:
    fund_ref: str
    gender_principal_share: str | None = None
    source: str | None = None


@strawberry.type(description="One change to WPS data: who, when, before and after.")
class WpsChange:
    id: int
    at: str
    actor: str
    action: str
    entity: str
    entity_key: str
    via: str | None
    before: strawberry.scalars.JSON | None
    after: strawberry.scalars.JSON | None


@strawberry.type
class WpsImportPayload:
    status: str = strawberry.field(description="applied | dry-run | rejected")
    summary: str
    counts: strawberry.scalars.JSON
    errors: list[UserError] = strawberry.field(
        description="Every problem: field = the column, message starts with file and row.")


@strawberry.type
class FactSheetYear:
    year: int
    movements: int
    usd: str
    in_scope_usd: str
    gender_principal_usd: str
    without_usd: int


@strawberry.type
class FactSheetFunder:
    ref: str
    usd: str


@strawberry.type(description="A country on one page: money placed there (each movement "
                 "once) by year, who sent it, and its National Action Plans.")
class CountryFactSheet:
    country: str
    name: str | None
    counting: str
    movements: int
    without_usd: int
    total_usd: str
    in_scope_usd: str
    gender_principal_usd: str
    years: list[FactSheetYear]
    funders: list[FactSheetFunder]
    others_usd: str
    plans: list[NationalActionPlan]


def _actor(viewer: Viewer) -> Actor:
    return Actor(viewer.who, "api")


def _json(row: Any) -> Any:
    return wps._json(row)


def _errors(exc: Invalid) -> list[UserError]:
    return [UserError(code="INVALID", message=e.message, field=e.field) for e in exc.errors]


def _given(obj: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names if getattr(obj, n) is not None}


async def _write(info: Info, what: str, fn: Callable[[Any, Actor], tuple[Any, str]],
                 ) -> WpsPayload:
    ctx = info.context
    _require_admin(ctx.viewer, what)
    actor = _actor(ctx.viewer)

    def run() -> WpsPayload:
        try:
            with ctx.engine.begin() as conn:
                row, status = fn(conn, actor)
        except Invalid as exc:
            return WpsPayload(status=None, record=None, errors=_errors(exc))
        return WpsPayload(status=status, record=_json(row), errors=[])

    return await run_in_threadpool(run)


def _deleted(fn: Callable[[Any, Actor], Any]) -> Callable[[Any, Actor], tuple[Any, str]]:
    return lambda conn, actor: (fn(conn, actor), "deleted")


@strawberry.type
class WpsMutation:
    @strawberry.mutation(description="Create or edit a National Action Plan (admin only).")
    async def save_national_action_plan(self, info: Info, input: NationalActionPlanInput,
                                        ) -> WpsPayload:
        values = _given(input, "code", "country", "title", "period_start", "period_end",
                        "source")
        return await _write(info, "saveNationalActionPlan",
                            lambda c, a: wps.save_nap(c, values, a))

    @strawberry.mutation(description="Delete a plan with its lines (admin only; the "
                         "history keeps them).")
    async def delete_national_action_plan(self, info: Info, code: str) -> WpsPayload:
        return await _write(info, "deleteNationalActionPlan",
                            _deleted(lambda c, a: wps.delete_nap(c, code, a)))

    @strawberry.mutation(description="Create or edit a costed line of a plan (admin only).")
    async def save_nap_line(self, info: Info, input: NapLineInput) -> WpsPayload:
        values = _given(input, "code", "pillar", "title", "costed_amount", "costed_currency",
                        "costed_usd", "sectors", "sector_ranges", "tags", "keywords", "source")
        return await _write(info, "saveNapLine",
                            lambda c, a: wps.save_line(c, input.nap_code, values, a))

    @strawberry.mutation(description="Delete a costed line of a plan (admin only).")
    async def delete_nap_line(self, info: Info, nap_code: str, code: str) -> WpsPayload:
        return await _write(info, "deleteNapLine",
                            _deleted(lambda c, a: wps.delete_line(c, nap_code, code, a)))

    @strawberry.mutation(description="Create or edit a domestic budget line (admin only).")
    async def save_nap_budget_line(self, info: Info, input: NapBudgetLineInput) -> WpsPayload:
        values = _given(input, "code", "year", "amount", "currency", "amount_usd",
                        "institution", "line_code", "source")
        return await _write(info, "saveNapBudgetLine",
                            lambda c, a: wps.save_budget_line(c, input.nap_code, values, a))

    @strawberry.mutation(description="Delete a domestic budget line (admin only).")
    async def delete_nap_budget_line(self, info: Info, nap_code: str, code: str, year: int,
                                     ) -> WpsPayload:
        return await _write(info, "deleteNapBudgetLine", _deleted(
            lambda c, a: wps.delete_budget_line(c, nap_code, code, year, a)))

    @strawberry.mutation(description="Create or edit a stipulation (admin only).")
    async def save_stipulation(self, info: Info, input: StipulationInput) -> WpsPayload:
        values = _given(input, "donor_ref", "recipient_ref", "year", "kind", "target",
                        "min_share", "source")
        return await _write(info, "saveStipulation",
                            lambda c, a: wps.save_stipulation(c, values, a, input.id))

    @strawberry.mutation(description="Delete a stipulation (admin only).")
    async def delete_stipulation(self, info: Info, id: int) -> WpsPayload:
        return await _write(info, "deleteStipulation",
                            _deleted(lambda c, a: wps.delete_stipulation(c, id, a)))

    @strawberry.mutation(description="Set a pooled fund's own gender-principal target "
                         "(admin only).")
    async def save_fund_target(self, info: Info, input: FundTargetInput) -> WpsPayload:
        values = _given(input, "fund_ref", "gender_principal_share", "source")
        return await _write(info, "saveFundTarget",
                            lambda c, a: wps.save_fund_target(c, values, a))

    @strawberry.mutation(description="Remove a fund's own target (admin only).")
    async def delete_fund_target(self, info: Info, fund_ref: str) -> WpsPayload:
        return await _write(info, "deleteFundTarget",
                            _deleted(lambda c, a: wps.delete_fund_target(c, fund_ref, a)))

    @strawberry.mutation(description="Import WPS CSV files (docs/wps-data.md), all or "
                         "nothing (admin only).")
    async def import_wps_csv(self, info: Info, files: list[Upload], dry_run: bool = False,
                             ) -> WpsImportPayload:
        ctx = info.context
        _require_admin(ctx.viewer, "importWpsCsv")
        actor = _actor(ctx.viewer)
        blobs = []
        for up in files:
            if not callable(getattr(getattr(up, "file", None), "read", None)):
                raise ApiError("`files` must be files sent as multipart parts")
            blobs.append((getattr(up, "filename", None) or "upload.csv",
                          cast(Any, up).file.read(wps_csv.MAX_BYTES + 1)))

        def run() -> WpsImportPayload:
            conn = ctx.engine.connect()
            try:
                with conn.begin() as tx:
                    try:
                        s = wps_csv.import_csv(conn, blobs, actor)
                    except wps_csv.Rejected as exc:
                        tx.rollback()
                        return WpsImportPayload(
                            status="rejected", summary=str(exc), counts=cast(Any, {}),
                            errors=[UserError(code="INVALID", message=str(e), field=e.field)
                                    for e in exc.errors])
                    if dry_run:
                        tx.rollback()
                    return WpsImportPayload(status="dry-run" if dry_run else "applied",
                                            summary=s.text(), counts=cast(Any, dict(s.counts)), errors=[])
            finally:
                conn.close()

        return await run_in_threadpool(run)


def _change(r: dict[str, Any]) -> WpsChange:
    return WpsChange(id=r["id"], at=r["at"].isoformat() if r["at"] else "", actor=r["actor"],
                     action=r["action"], entity=r["entity"], entity_key=r["entity_key"],
                     via=r["via"], before=r["before"], after=r["after"])


def _sheet(s: factsheet.CountrySheet) -> CountryFactSheet:
    return CountryFactSheet(
        country=s.country, name=s.name, counting=s.counting, movements=s.movements,
        without_usd=s.without_usd, total_usd=str(s.totals["usd"]),
        in_scope_usd=str(s.totals["in_scope_usd"]),
        gender_principal_usd=str(s.totals["gender_principal_usd"]),
        years=[FactSheetYear(year=y.year, movements=y.movements, usd=str(y.usd),
                             in_scope_usd=str(y.in_scope_usd),
                             gender_principal_usd=str(y.gender_principal_usd),
                             without_usd=y.without_usd) for y in s.years],
        funders=[FactSheetFunder(ref=k, usd=str(v)) for k, v in s.funders],
        others_usd=str(s.others_usd), plans=[_nap(p) for p in s.plans])


@strawberry.type
class WpsQuery:
    @strawberry.field(description="Changes to WPS data, newest first: of one kind of "
                      "record (nap, nap_line, nap_budget_line, stipulation, fund_target), "
                      "of one plan (with its lines), or of one record key.")
    async def wps_changes(self, info: Info, entity: str | None = None,
                          nap_code: str | None = None, key: str | None = None,
                          first: int = 100) -> list[WpsChange]:
        if not 1 <= first <= 1000:
            raise ApiError("first must be between 1 and 1000")
        rows = await info.context.db(lambda c: wps.history(
            c, entity=entity, nap_code=nap_code, key=key, limit=first))
        return [_change(r) for r in rows]

    @strawberry.field(description="Stipulations as entered (reportCard checks them).")
    async def stipulations(self, info: Info, donor: str | None = None,
                           ) -> strawberry.scalars.JSON:
        rows = await info.context.db(lambda c: wps.stipulations(c, donor))
        return cast(Any, [_json(r) for r in rows])

    @strawberry.field(description="Pooled funds' own gender-principal targets.")
    async def fund_targets(self, info: Info) -> strawberry.scalars.JSON:
        return cast(Any, [_json(r) for r in await info.context.db(wps.fund_targets)])

    @strawberry.field(description="A country on one page (the printable /country/<code> "
                      "sheet shows exactly these figures).")
    async def country_fact_sheet(self, info: Info, country: str) -> CountryFactSheet:
        from fundtrack.ingest import codelists

        if country.upper() not in codelists.codes("Country"):
            raise ApiError(f"{country[:20]!r} is not an ISO 3166-1 alpha-2 country code")
        return _sheet(await info.context.db(lambda c: factsheet.country_sheet(c, country)))
