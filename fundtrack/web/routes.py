"""The web front: server-rendered pages, the upload screen, exports and plotly's JS.

Pages read the database with the API's own statements (:mod:`fundtrack.web.data`); the
upload and revert screens call the GraphQL API from the browser (multipart
``importReport`` with the bearer token and the CSRF header), so they obey exactly the
API's access rules. Nothing is fetched from a CDN: plotly's JavaScript is served from
the installed ``plotly`` package, GraphiQL and React from ``static/graphiql/`` (vendored,
see its LICENSES.md), gzip-compressed once and cached by the browser.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, Router

from fundtrack.db.base import current
from fundtrack.db.errors import database_error_message
from fundtrack.db.metadata import metadata
from fundtrack.export import EXTENSIONS, FORMATS, stream
from fundtrack.ledger import tables as m
from fundtrack.query.ids import encode_id
from fundtrack.web import data
from fundtrack.web.filters import (
    GENDER_CHOICES,
    FilterError,
    FlowFilter,
    check_text,
    parse_year,
    pillar_choices,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: Every template a page renders; ``/healthz`` loads each (fundtrack.app).
PAGE_TEMPLATES = ("base.html", "overview.html", "sankey.html", "sankey_donor.html",
                  "activity.html", "card.html", "upload.html", "imports.html", "graphiql.html",
                  "naps.html", "nap.html", "country.html", "league.html",
                  "organization.html")
CACHE_FOREVER = "public, max-age=31536000, immutable"

NAV = (("/", "Overview"), ("/sankey", "Money flows"), ("/activity", "Activities and traces"),
       ("/donor", "Donor report card"), ("/fund", "Fund scorecard"),
       ("/naps", "National Action Plans"), ("/league", "League tables"), ("/upload", "Upload"),
       ("/imports", "Import history"))


def money(v: Any) -> str:
    """USD with thousands separators and no cents (the exact figure is in the title)."""
    if v is None or v == "":
        return "–"
    d = Decimal(str(v))
    return f"{d.quantize(Decimal(1)):,}"


def exact(v: Any) -> str:
    return "" if v is None else format(Decimal(str(v)), "f")


def org_label(ref: str, names: dict[str, str]) -> str:
    """An organisation as people read it: its registry name, else the name as reported
    (an account without a ref is keyed ``name:<reported name>``), else the ref."""
    if names.get(ref):
        return names[ref]
    if ref.startswith("name:"):
        return f"{ref[5:]} (reported name, no identifier)"
    return ref or "(not named)"


def exact_text(v: Any) -> str:
    """An exact amount with thousands separators, every reported digit kept."""
    return "–" if v is None or v == "" else f"{Decimal(str(v)):,}"


def pct(v: Any) -> str:
    """A share as a percentage to 0.1, except that a share that is not exactly 0 or 1
    never prints as "0.0%" or "100.0%" (beside a grade B, "100.0%" reads as a contradiction):
    there it keeps two decimals, rounded away from the boundary's value (99.96%, 0.04%,
    99.99% for 0.99999; 100.01% for 1.0000001)."""
    if v is None:
        return "–"
    d = Decimal(str(v)) * 100
    q = d.quantize(Decimal("0.1"))
    if q in (0, 100) and d != q:
        q = d.quantize(Decimal("0.01"), rounding=ROUND_DOWN if abs(d) < abs(q) else ROUND_UP)
    return f"{q}%"


def reason_sentence(key: str | None, org: str | None = None) -> str:
    """Why money stops, as a sentence (never the stored key): :mod:`fundtrack.derived.trail.reasons`."""
    from fundtrack.derived.trail.reasons import sentence

    return sentence(key, org)


#: Characters that may not appear raw in JSON inside an HTML ``<script>`` element: ``<``
#: (``</script>``, ``<!--`` would end or re-mode the element: a name like
#: ``USAID<!--<script>`` swallowed the rest of the page), ``>`` and ``&`` (for good
#: measure), and U+2028/2029 (line terminators in older JavaScript).
_HTML_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                            "\u2028": "\\u2028", "\u2029": "\\u2029"})


def html_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``; ``JSON.parse``
    gives back exactly ``value``."""
    return json.dumps(value, ensure_ascii=False).translate(_HTML_JSON)


@lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(loader=FileSystemLoader(HERE / "templates"),
                    autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    e.filters.update(money=money, exact=exact, exact_text=exact_text, pct=pct,
                     reason=reason_sentence)
    e.globals.update(org_label=org_label, nav=NAV, static=static_url,
                     gender_choices=GENDER_CHOICES, gid=encode_id,
                     pillar_choices=pillar_choices)
    return e


@cache
def _static_file(name: str) -> tuple[bytes, bytes, str]:
    """(raw, gzipped, short hash) of a static file; plotly's comes from its package."""
    if name == "plotly.min.js":
        import plotly

        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    else:
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            raise FileNotFoundError(name)
    raw = path.read_bytes()
    return raw, gzip.compress(raw, 9, mtime=0), hashlib.sha256(raw).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/static/{name}?v={_static_file(name)[2]}"


TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        raw, gz, _ = await run_in_threadpool(_static_file, name)
    except FileNotFoundError:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {"Cache-Control": CACHE_FOREVER if "v" in request.query_params else "no-cache",
               "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        raw = gz
    return Response(raw, media_type=TYPES.get(Path(name).suffix, "application/octet-stream"),
                    headers=headers)


def _engine(request: Request) -> Engine:
    """The web front only reads: the replica when one is configured (docs/scaling.md)."""
    return getattr(request.app.state, "replica", None) or request.app.state.engine


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    flt = ctx.get("flt")
    params = flt.params() if isinstance(flt, FlowFilter) else {}
    query = ("?" + urlencode(params)) if params else ""
    ctx.setdefault("exports", [(label, f"/export.{EXTENSIONS[fmt]}{query}")
                               for fmt, label in (("csv", "CSV"), ("json", "JSON"),
                                                  ("iati", "IATI 2.03 XML"))])
    ctx.setdefault("export_note", "current selection" if params else "all current flows")
    html = env().get_template(template).render(request=request, path=request.url.path, **ctx)
    return HTMLResponse(html, status_code=status)


def _filter(request: Request) -> tuple[FlowFilter, str | None]:
    try:
        return FlowFilter.parse(request.query_params), None
    except FilterError as exc:
        return FlowFilter(), str(exc)


async def _read(request: Request, fn: Any) -> Any:
    engine = _engine(request)
    return await run_in_threadpool(data.read, engine, fn)


class BadRequest(Exception):
    """A client mistake in the request; answered 400 with this message."""


Handler = Callable[[Request], Awaitable[Response]]


def _error_page(request: Request, status: int, message: str, plain: bool) -> Response:
    if plain:
        return Response(message, status_code=status, media_type="text/plain; charset=utf-8")
    title = "Bad request" if status == 400 else "Service unavailable"
    return render(request, "error.html", status=status, title=title, flt=None, error=message)


def guarded(handler: Handler, plain: bool = False) -> Handler:
    """Client mistakes answer 400 saying what was wrong, a database outage 503 with a page.

    Every query parameter is checked first (no control characters: a NUL makes
    PostgreSQL refuse the statement; no absurd lengths). ``plain``: text answers (exports).
    """
    async def run(request: Request) -> Response:
        try:
            for key, value in request.query_params.multi_items():
                check_text(key, value)
                check_text(f"parameter name {key[:30]!r}", key)
            return await handler(request)
        except (BadRequest, FilterError) as exc:
            return _error_page(request, 400, str(exc), plain)
        except DBAPIError as exc:
            message = database_error_message(exc)
            if message is None:
                raise
            log.warning("web page %s: database error: %s", request.url.path, exc.orig)
            return _error_page(request, 503, message, plain)
    return run


# --- pages ----------------------------------------------------------------------------

async def overview_page(request: Request) -> HTMLResponse:
    flt, error = _filter(request)
    ov = await _read(request, lambda c: data.overview(c, flt))
    kinds = sorted({r["kind"] for r in ov.by_year}, key=lambda k: k.value)
    cells = {(r["year"], r["kind"]): r for r in ov.by_year}
    gender = {}
    for r in ov.by_gender:
        gender.setdefault(r["gender_significance"], {})[r["kind"]] = r
    biggest = max((r["sum_usd"] or 0 for r in ov.by_year), default=0) or 1
    return render(request, "overview.html", status=400 if error else 200, title="Overview",
                  flt=flt, error=error, ov=ov, kinds=kinds, cells=cells, gender=gender,
                  biggest=biggest)


async def sankey_page(request: Request) -> HTMLResponse:
    flt, error = _filter(request)
    basis = request.query_params.get("basis", "cash")
    if basis not in data.SANKEY_BASES:
        basis, error = "cash", f"basis must be one of {', '.join(data.SANKEY_BASES)}"
    by = request.query_params.get("by", "country")
    if by not in data.SANKEY_BY:
        by, error = "country", f"by must be one of {', '.join(data.SANKEY_BY)}"
    years = await _read(request, _years)
    donors = await _read(request, lambda c: data.sankey_donors(c, flt))
    common = {"flt": flt, "error": error, "years": years, "donor_choices": donors,
              "status": 400 if error else 200, "title": "Money flows"}
    if flt.donor:
        dk = await _read(request, lambda c: data.donor_sankey(c, flt, by))
        keys = list(dk.nodes)
        index = {k: i for i, k in enumerate(keys)}
        drawn = [b for b in dk.bands if b.amount_usd > 0]
        figure = {"labels": [dk.nodes[k] for k in keys],
                  "source": [index[b.source] for b in drawn],
                  "target": [index[b.target] for b in drawn],
                  "value": [float(b.amount_usd) for b in drawn],
                  "exact": [exact(b.amount_usd) for b in drawn]}
        where = data.donor_filter(flt).graphql()
        own = replace(data.donor_filter(flt), reporting_org=flt.donor,
                      kinds=(data.FlowKind.DISBURSEMENT,))
        query = urlencode(own.params())
        exports = [(label, f"/export.{EXTENSIONS[fmt]}?{query}")
                   for fmt, label in (("csv", "CSV"), ("json", "JSON"), ("iati", "IATI 2.03 XML"))]
        return render(request, "sankey_donor.html", dk=dk, by=by, bys=data.SANKEY_BY,
                      drawn=drawn, where=where, figure_json=html_json(figure), exports=exports,
                      export_note="the donor's own disbursement reports: the first band set",
                      **common)
    sk = await _read(request, lambda c: data.sankey(c, flt, basis))
    figure = {"labels": sk.nodes, "source": [lk["source"] for lk in sk.links],
              "target": [lk["target"] for lk in sk.links],
              "value": [float(lk["value"]) for lk in sk.links],
              "exact": [exact(lk["value"]) for lk in sk.links]}
    return render(request, "sankey.html", sk=sk, basis=basis, bases=data.SANKEY_BASES,
                  figure_json=html_json(figure), **common)


def _years(conn: Connection) -> list[int]:
    f = m.Flow.__table__
    lo, hi = conn.execute(select(func.min(f.c.value_date), func.max(f.c.value_date)).where(
        current(f))).one()
    if not lo:
        return []
    return list(range(hi.year, lo.year - 1, -1))


def _activity_search(conn: Connection, q: str) -> list[Any]:
    """The first 50 current activities matching ``q`` (the API's ``ActivityWhere.search``)."""
    from fundtrack.query.search import activity_search

    a = m.Activity.__table__
    return list(conn.execute(select(a.c.iati_identifier, a.c.title, a.c.reporting_org_ref).where(
        current(a), activity_search(q)).order_by(a.c.iati_identifier).limit(50)).mappings())


def _activity_detail(conn: Connection, ident: str) -> dict[str, Any] | None:
    from fundtrack.query import explain, nodes
    from fundtrack.query.organizations import PARTICIPATION
    from fundtrack.query.trace import _accounts_of, trace

    a = m.Activity.__table__
    f = m.Flow.__table__
    act = conn.execute(select(a).where(current(a), a.c.iati_identifier == ident)
                       .order_by(a.c.id)).mappings().first()
    if act is None:
        return None
    flows = list(conn.execute(select(f).where(current(f),
                                              f.c.activity_id == act["id"])
                              .order_by(f.c.value_date, f.c.id).limit(500)).mappings())
    p = m.ParticipatingOrg.__table__
    participants = [{**r, "role": PARTICIPATION.get(r["role"] or "", r["role"])}
                    for r in conn.execute(select(p.c.ref, p.c.name, p.c.role).where(
                        p.c.activity_id == act["id"]).order_by(p.c.id)).mappings()]
    out: dict[str, Any] = {"activity": act, "flows": flows, "participants": participants}
    from fundtrack.accounting.stored import cited
    out["classes"] = cited(conn, [r["id"] for r in flows])
    up = trace(conn, activity=ident, direction="UPSTREAM")
    down = trace(conn, activity=ident, direction="DOWNSTREAM")
    out["trace"] = {"upstream": up, "downstream": down}
    balance = explain.activity_balance(conn, ident)
    refs: set[str | None] = {ln.counterpart for ln in balance.lines}
    for res in (up, down):
        refs |= {o.get("organization") for o in res.originators + res.terminals + res.untraced}
    names = nodes.names(conn, {r for r in refs if r})
    out["names"] = names
    out["labels"] = {r: nodes.label(r, names) for r in names}
    out["balance"] = balance
    out["summary"] = _originated_vs_paid(balance, up)
    out["notes_up"] = explain.upstream_notes(balance, names)
    out["warnings"] = explain.double_notes(balance, names)
    ends = explain.downstream_ends(down, _accounts_of(conn, ident, None))
    out["notes_down"] = explain.downstream_notes(balance, ends)
    return out


def _originated_vs_paid(balance: Any, up: Any) -> list[dict[str, Any]]:
    """Per currency: what the activity reports paying, what the trace upstream says
    originated with donors, what it could not trace, and the difference."""
    rows: dict[Any, dict[str, Any]] = {}

    def row(cur: Any) -> dict[str, Any]:
        return rows.setdefault(cur, {"currency": cur, "paid": Decimal(0),
                                     "originated": Decimal(0), "untraced": Decimal(0)})
    for cur, (amount, _usd, _n) in balance.paid.items():
        row(cur)["paid"] += amount
    for o in up.originators:
        row(o["currency"])["originated"] += o["amount"]
    for u in up.untraced:
        row(u["currency"])["untraced"] += u["amount"]
    for r in rows.values():
        r["difference"] = r["originated"] + r["untraced"] - r["paid"]
    return [rows[k] for k in sorted(rows, key=lambda c: c or "")]


async def activity_page(request: Request) -> HTMLResponse:
    ident = request.query_params.get("id", "").strip()
    q = request.query_params.get("q", "").strip()
    found = await _read(request, lambda c: _activity_search(c, q)) if q else []
    detail = await _read(request, lambda c: _activity_detail(c, ident)) if ident else None
    flt = FlowFilter(activity=ident) if ident else FlowFilter()
    status = 404 if ident and detail is None else 200
    return render(request, "activity.html", status=status, title="Activities and traces",
                  flt=flt, ident=ident, q=q, found=found, detail=detail)


async def organization_page(request: Request) -> HTMLResponse:
    """One organisation: its refs, the names it goes by, money in and out, its activities."""
    from fundtrack.query import organizations

    ref = request.query_params.get("ref", "").strip()
    if not ref:
        raise BadRequest("ref is required: /organization?ref=XM-DAC-41141")
    got = await _read(request, lambda c: organizations.page(c, ref))
    if got is None:
        return render(request, "organization.html", status=404, title="Organisation",
                      ref=ref, org=None, flt=None,
                      error=f"No such organisation: {ref!r}. No organisation, pooled fund or "
                            "report in this database names it.")
    return render(request, "organization.html", title=got.name or ref, ref=ref, org=got,
                  flt=None, error=None, directions=list(organizations.Direction))


def _card(kind: str, ref: str, year: int | None, method: str) -> Any:
    """(card or None when nothing names ``ref``, year shown, years with data, name)."""
    def run(conn: Connection) -> Any:
        from fundtrack.accounting import league, reportcard, subject

        years = subject.years_with_data(conn, ref or None)
        shown = year if year is not None else (
            years[0] if years else subject.latest_year(conn, ref or None))
        if not ref:
            return None, shown, years, None
        if not subject.known(conn, ref):
            raise subject.UnknownOrganisation(ref)
        card = (reportcard.donor_card(conn, ref, shown, method) if kind == "donor"
                else reportcard.fund_scorecard(conn, ref, shown))
        return card, shown, years, league.names(conn, {ref}).get(ref)
    return run


def _card_choices(conn: Connection, kind: str) -> list[Any]:
    if kind == "fund":
        t = metadata.tables["fund"]
        return [(r.organisation_ref, r.name) for r in conn.execute(
            select(t.c.organisation_ref, t.c.name).order_by(t.c.name))]
    rows = data.groups(conn, FlowFilter(kinds=(data.FlowKind.DISBURSEMENT,)),
                       [data.FlowDimension.REPORTING_ORG])
    rows.sort(key=lambda r: -(r["sum_usd"] or 0))
    names = data.org_names(conn, {r["reporting_org"] for r in rows[:60]})
    return [(r["reporting_org"], names.get(r["reporting_org"], "")) for r in rows[:60]
            if r["reporting_org"]]


def _parse_year_param(request: Request) -> int | None:
    raw = request.query_params.get("year", "").strip()
    try:
        return parse_year(raw) if raw else None
    except FilterError as exc:
        raise BadRequest(str(exc)) from None


async def card_page(request: Request) -> HTMLResponse:
    """A donor's card or a fund's scorecard; without a year, the latest year with data."""
    from fundtrack.accounting.methods import methods as all_methods
    from fundtrack.accounting.subject import UnknownOrganisation

    kind = "donor" if request.url.path.startswith("/donor") else "fund"
    ref = request.query_params.get("ref", "").strip()
    method = request.query_params.get("method", "principal")
    methods = sorted(all_methods())
    if method not in methods:
        raise BadRequest(f"method must be one of {', '.join(methods)}")
    year = _parse_year_param(request)
    choices = await _read(request, lambda c: _card_choices(c, kind))
    title = "Donor report card" if kind == "donor" else "Fund scorecard"
    try:
        card, year, years, name = await _read(request, _card(kind, ref, year, method))
    except UnknownOrganisation as exc:
        return render(request, "card.html", status=404, title=title, kind=kind, ref=ref,
                      year=year, years=[], method=method, methods=methods, choices=choices,
                      card=None, name=None, flt=FlowFilter(),
                      error=f"No such organisation: {ref!r}. No organisation, pooled fund or "
                            "report in this database names it; pick one from the list.",
                      unknown=str(exc))
    flt = (FlowFilter(year=year, kinds=(data.FlowKind.DISBURSEMENT,), reporting_org=ref)
           if ref else FlowFilter())
    return render(request, "card.html", title=title, kind=kind, ref=ref, year=year,
                  years=years, method=method, methods=methods, choices=choices, card=card,
                  name=name, error=None, flt=flt)


async def league_page(request: Request) -> HTMLResponse:
    """Donors or funds ranked on one benchmark in one year, coverage beside every rank."""
    from fundtrack.accounting import league

    kind = request.query_params.get("kind", "donor")
    if kind not in league.MEASURES:
        raise BadRequest(f"kind must be one of {', '.join(league.MEASURES)}")
    measure = request.query_params.get("measure", "") or league.MEASURES[kind][0]
    if measure not in league.MEASURES[kind]:
        raise BadRequest(f"measure must be one of {', '.join(league.MEASURES[kind])}")
    year = _parse_year_param(request)
    table = await _read(request, lambda c: league.league(c, kind, measure, year))
    titles = {k: t for k, t in _measure_titles(kind)}
    csv_href = "/league.csv?" + urlencode({"kind": kind, "measure": measure})
    return render(request, "league.html", title="League tables", kind=kind, measure=measure,
                  table=table, titles=titles, flt=None, csv_href=csv_href,
                  exports=[("CSV (this measure, every year)", csv_href),
                           ("CSV (every measure, every year)",
                            "/league.csv?" + urlencode({"kind": kind}))],
                  export_note="league table")


def _measure_titles(kind: str) -> list[tuple[str, str]]:
    from fundtrack.accounting.benchmarks import benchmark, has_benchmark
    from fundtrack.accounting.league import MEASURES

    special = {"own_target": "Gender-principal share against the fund's own target",
               "wro_direct_share": "Share of disbursements reaching WROs directly",
               "gender_principal_share": ("Gender-principal share of peace-and-security aid"
                                          if kind == "donor" else
                                          "Gender-principal share of allocations")}
    return [(k, special.get(k) or (benchmark(k).title if has_benchmark(k) else k))
            for k in MEASURES[kind]]


async def league_csv(request: Request) -> Response:
    from fundtrack.accounting import league

    kind = request.query_params.get("kind", "donor")
    if kind not in league.MEASURES:
        raise BadRequest(f"kind must be one of {', '.join(league.MEASURES)}")
    measure = request.query_params.get("measure") or None
    if measure is not None and measure not in league.MEASURES[kind]:
        raise BadRequest(f"measure must be one of {', '.join(league.MEASURES[kind])}")
    text = await _read(request, lambda c: league.to_csv(c, kind, measure))
    name = f"fundtrack-league-{kind}{'-' + measure if measure else ''}.csv"
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def naps_page(request: Request) -> HTMLResponse:
    from fundtrack.accounting.nap import coverage

    plans = await _read(request, coverage)
    return render(request, "naps.html", title="National Action Plans", plans=plans, flt=None)


async def nap_page(request: Request) -> HTMLResponse:
    """A plan's page: its one-page fact sheet (print it) and, on screen, its history."""
    from fundtrack.accounting import factsheet, nap, wps

    code = request.path_params["code"]
    check_text("plan code", code)

    def run(conn: Connection) -> Any:
        plan = factsheet.plan_sheet(conn, code)
        if plan is None:
            return None
        return (plan, wps.history(conn, nap_code=code, limit=200),
                data.org_names(conn, set(plan.funders)), nap)

    found = await _read(request, run)
    if found is None:
        return render(request, "error.html", status=404, title="No such plan", flt=None,
                      error=f"No National Action Plan with code {code!r}: see /naps.")
    plan, history, names, napmod = found
    return render(request, "nap.html", title=f"National Action Plan {plan.code}", plan=plan,
                  history=history, names=names, counting=napmod.COUNTING,
                  matching=napmod.MATCHING, country_name=_country_name(plan.country),
                  today=date.today().isoformat(), flt=None)


def _country_name(code: str) -> str | None:
    from fundtrack.accounting.factsheet import country_name

    return country_name(code)


async def country_page(request: Request) -> HTMLResponse:
    """A country's one-page fact sheet: money placed there (each movement once), its plans."""
    from fundtrack.accounting import factsheet
    from fundtrack.ingest import codelists

    code = request.path_params["code"].upper()
    if code not in codelists.codes("Country"):
        raise BadRequest(f"{code[:20]!r} is not an ISO 3166-1 alpha-2 country code")

    def run(conn: Connection) -> Any:
        sheet = factsheet.country_sheet(conn, code)
        return sheet, data.org_names(conn, {ref for ref, _ in sheet.funders})

    sheet, names = await _read(request, run)
    return render(request, "country.html", title=f"Fact sheet: {sheet.name or code}",
                  sheet=sheet, names=names, today=date.today().isoformat(), flt=None)


def upload_formats() -> list[tuple[str, str]]:
    """(name, title) of every installed importer, as ``fundtrack plugins`` lists them."""
    from fundtrack.plugins import importers

    return [(name, imp.title) for name, imp in sorted(importers().items())]


async def upload_page(request: Request) -> HTMLResponse:
    from importers.spreadsheet import SHIPPED

    mappings = sorted(p.stem for p in SHIPPED.glob("*.toml"))
    return render(request, "upload.html", title="Upload a report", flt=None,
                  formats=upload_formats(), mappings=mappings)


def _batches(conn: Connection, limit: int = 200) -> list[Any]:
    b = m.ImportBatch.__table__
    return list(conn.execute(select(b).order_by(b.c.id.desc()).limit(limit)).mappings())


def _with_reconciliation(row: Any) -> dict[str, Any]:
    """A batch row plus its reconciliation (found = imported + skipped, per kind) and the
    status as people read it ("applied, 3 skipped")."""
    from fundtrack.ingest.pipeline import KINDS, status_text

    b = dict(row)
    known = b.get("activities_found") is not None
    b["kinds"] = [(k, b[f"{k}_found"] or 0, b[f"{k}_imported"] or 0, b[f"{k}_skipped"] or 0)
                  for k in KINDS if known and b.get(f"{k}_found")]
    b["skipped_total"] = sum(k[3] for k in b["kinds"]) if known else None
    b["status_text"] = status_text(b["status"], b["skipped_total"])
    return b


async def imports_page(request: Request) -> HTMLResponse:
    from fundtrack.sync.state import recent_runs

    batches = [_with_reconciliation(r) for r in await _read(request, _batches)]
    sync_runs = await _read(request, recent_runs)
    return render(request, "imports.html", title="Import history", flt=None, batches=batches,
                  sync_runs=sync_runs)


async def export_file(request: Request) -> Response:
    ext = request.path_params["ext"]
    fmt = {v: k for k, v in EXTENSIONS.items()}.get(ext)
    if fmt is None:
        return Response(f"unknown export format {ext!r}", status_code=404, media_type="text/plain")
    try:
        flt = FlowFilter.parse(request.query_params)
    except FilterError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    name = f"fundtrack-flows.{ext}"
    chunks = stream(_engine(request), fmt, flt)
    # The first chunk is made before the answer starts: the query runs then, so a database
    # error is a 503 here rather than a 200 whose stream breaks off.
    first = await run_in_threadpool(next, chunks, "")
    return StreamingResponse(itertools.chain([first], chunks), media_type=FORMATS[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def web_routes() -> Mount:
    """Everything the web front serves, mounted at ``/`` after the API's own routes."""
    return Mount("/", app=Router(routes=[
        Route("/", guarded(overview_page)),
        Route("/sankey", guarded(sankey_page)),
        Route("/activity", guarded(activity_page)),
        Route("/donor", guarded(card_page)),
        Route("/fund", guarded(card_page)),
        Route("/organization", guarded(organization_page)),
        Route("/naps", guarded(naps_page)),
        Route("/nap/{code:path}", guarded(nap_page)),
        Route("/country/{code}", guarded(country_page)),
        Route("/league", guarded(league_page)),
        Route("/league.csv", guarded(league_csv, plain=True)),
        Route("/upload", guarded(upload_page)),
        Route("/imports", guarded(imports_page)),
        Route("/export.{ext}", guarded(export_file, plain=True)),
        Route("/static/{name:path}", static),
    ]))
