"""Open exports of current flows: CSV, JSON and IATI 2.03 activity XML, streamed.

All three select flows with the API's filter compiler (:mod:`fundtrack.web.filters`), read
rows in chunks from one read transaction and yield text as they go, so memory stays flat
however large the result. Rules kept here, in one place:

- CSV: a text cell that a spreadsheet would run as a formula (first character ``= + - @``,
  tab or carriage return) is prefixed with ``'``; amounts are written as plain decimal
  numbers (exact, no thousands separators, never neutralised) so they stay numeric.
- JSON: amounts are decimal strings, as in the GraphQL API (JSON numbers go through
  float in most readers).
- IATI: one ``iati-activity`` per current activity with matching flows (every current
  activity when there is no filter), with its transactions, budgets, markers and
  organisations, so that importing the file into an empty database gives the same counts
  and sums. Flows with no activity (FTS, 360Giving) cannot be IATI transactions: the
  header comment says how many were left out.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from sqlalchemy import Engine, func, select

from fundtrack.db.base import current
from fundtrack.db.metadata import metadata
from fundtrack.ledger import tables as m
from fundtrack.money import to_text
from fundtrack.query.aggregate import FlowDimension, dimension_expr
from fundtrack.web.filters import FlowFilter

FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json",
           "iati": "application/xml"}
EXTENSIONS = {"csv": "csv", "json": "json", "iati": "xml"}
CHUNK = 1000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = ("flow_id", "activity", "reporting_org_ref", "kind", "transaction_type", "value_date",
           "amount", "currency", "amount_usd", "usd_rate", "usd_rate_source", "provider_ref",
           "provider_name", "provider_activity_id", "receiver_ref", "receiver_name",
           "receiver_activity_id", "recipient_country", "recipient_region", "sector_code",
           "aid_type", "earmarking", "gender_significance", "humanitarian", "description",
           "import_batch", "source_location")
MONEY = {"amount", "amount_usd", "usd_rate"}


def neutralise(text: str) -> str:
    """Make a text cell inert in spreadsheets (OWASP CSV injection advice)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _flow_rows(engine: Engine, flt: FlowFilter) -> Iterator[dict[str, Any]]:
    f = m.Flow.__table__
    a = m.Activity.__table__
    with engine.connect().execution_options(readonly=True) as conn:
        gender = dimension_expr(FlowDimension.GENDER_SIGNIFICANCE, conn.dialect.name)
        stmt = (select(f, a.c.iati_identifier.label("activity"),
                       gender.label("gender_significance"))
                .select_from(f.outerjoin(a, a.c.id == f.c.activity_id))
                .where(current(f), flt.clause()).order_by(f.c.id))
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(stmt)
        for row in result.mappings():
            yield dict(row)
        conn.rollback()


def _cell(name: str, row: dict[str, Any]) -> Any:
    if name == "flow_id":
        return row["id"]
    if name == "kind":
        return row["kind"].name
    if name == "transaction_type":
        return row["kind"].value
    if name == "import_batch":
        return row["batch_id"]
    return row.get(name)


def stream_csv(engine: Engine, flt: FlowFilter) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for n, row in enumerate(_flow_rows(engine, flt), 1):
        out = []
        for name in COLUMNS:
            v = _cell(name, row)
            if v is None:
                out.append("")
            elif name in MONEY:
                out.append(to_text(Decimal(v)))
            elif isinstance(v, str):
                out.append(neutralise(v))
            elif isinstance(v, bool):
                out.append("true" if v else "false")
            else:
                out.append(str(v))
        writer.writerow(out)
        if n % 200 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _json_value(name: str, v: Any) -> Any:
    if v is None:
        return None
    if name in MONEY:
        return to_text(Decimal(v))
    if isinstance(v, date | datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return to_text(v)
    return v


def stream_json(engine: Engine, flt: FlowFilter) -> Iterator[str]:
    head = {"generator": "fundtrack", "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "filter": flt.params(), "graphql_where": flt.graphql(),
            "amounts": "decimal strings, exact as reported; amount_usd at the stored rate"}
    yield json.dumps(head)[:-1] + ', "flows": [\n'
    first = True
    for row in _flow_rows(engine, flt):
        obj = {name: _json_value(name, _cell(name, row)) for name in COLUMNS}
        yield ("" if first else ",\n") + json.dumps(obj, ensure_ascii=False)
        first = False
    yield "\n]}\n"


# --- IATI 2.03 -------------------------------------------------------------------------

def _a(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, Decimal):
        value = to_text(value)
    if isinstance(value, date):
        value = value.isoformat()
    return f" {name}={quoteattr(str(value))}"


def _narrative(text: str | None) -> str:
    return f"<narrative>{escape(text)}</narrative>" if text else ""


def _org(tag: str, ref: str | None, name: str | None, type_: str | None = None,
         activity_attr: str | None = None, activity_id: str | None = None,
         role: str | None = None) -> str:
    attrs = _a("ref", ref) + _a("type", type_) + _a("role", role)
    if activity_attr:
        attrs += _a(activity_attr, activity_id)
    body = _narrative(name)
    return f"<{tag}{attrs}>{body}</{tag}>" if body else f"<{tag}{attrs}/>"


def _children(conn: Any, table: str, ids: list[int]) -> dict[int, list[Any]]:
    t = metadata.tables[table]
    out: dict[int, list[Any]] = defaultdict(list)
    for row in conn.execute(select(t).where(t.c.activity_id.in_(ids)).order_by(t.c.id)).mappings():
        out[row["activity_id"]].append(row)
    return out


def _current_children(conn: Any, table: Any, ids: list[int], order: Any) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for row in conn.execute(select(table).where(table.c.activity_id.in_(ids),
                                                current(table))
                            .order_by(order)).mappings():
        out[row["activity_id"]].append(row)
    return out


def _transaction(f: Any) -> str:
    tx_date = f["transaction_date"] or f["value_date"]
    parts = [f"<transaction-type code=\"{f['kind'].value}\"/>"]
    if tx_date:
        parts.append(f"<transaction-date{_a('iso-date', tx_date)}/>")
    parts.append(f"<value{_a('currency', f['currency'])}{_a('value-date', f['value_date'])}>"
                 f"{to_text(Decimal(f['amount']))}</value>")
    if f["description"]:
        parts.append(f"<description>{_narrative(f['description'])}</description>")
    if f["provider_ref"] or f["provider_name"] or f["provider_activity_id"]:
        parts.append(_org("provider-org", f["provider_ref"], f["provider_name"],
                          activity_attr="provider-activity-id",
                          activity_id=f["provider_activity_id"]))
    if f["receiver_ref"] or f["receiver_name"] or f["receiver_activity_id"]:
        parts.append(_org("receiver-org", f["receiver_ref"], f["receiver_name"],
                          activity_attr="receiver-activity-id",
                          activity_id=f["receiver_activity_id"]))
    if f["disbursement_channel"]:
        parts.append(f"<disbursement-channel{_a('code', f['disbursement_channel'])}/>")
    if f["sector_code"]:
        parts.append(f"<sector{_a('vocabulary', f['sector_vocabulary'])}"
                     f"{_a('code', f['sector_code'])}/>")
    if f["recipient_country"]:
        parts.append(f"<recipient-country{_a('code', f['recipient_country'])}/>")
    if f["recipient_region"]:
        parts.append(f"<recipient-region{_a('code', f['recipient_region'])}/>")
    for tag, col in (("flow-type", "flow_type"), ("finance-type", "finance_type")):
        if f[col]:
            parts.append(f"<{tag}{_a('code', f[col])}/>")
    if f["aid_type"]:
        parts.append(f"<aid-type{_a('code', f['aid_type'])} vocabulary=\"1\"/>")
    if f["earmarking"]:
        parts.append(f"<aid-type{_a('code', f['earmarking'])} vocabulary=\"2\"/>")
    if f["tied_status"]:
        parts.append(f"<tied-status{_a('code', f['tied_status'])}/>")
    hum = "" if f["humanitarian"] is None else _a("humanitarian", "1" if f["humanitarian"] else "0")
    return f"<transaction{_a('ref', f['ref'])}{hum}>{''.join(parts)}</transaction>"


def _budget(b: Any) -> str:
    tag = "planned-disbursement" if b["kind"] == "planned_disbursement" else "budget"
    attrs = _a("type", b["budget_type"]) + (_a("status", b["status"]) if tag == "budget" else "")
    parts = []
    if b["period_start"]:
        parts.append(f"<period-start{_a('iso-date', b['period_start'])}/>")
    if b["period_end"]:
        parts.append(f"<period-end{_a('iso-date', b['period_end'])}/>")
    parts.append(f"<value{_a('currency', b['currency'])}{_a('value-date', b['value_date'])}>"
                 f"{to_text(Decimal(b['amount']))}</value>")
    if tag == "planned-disbursement":
        if b["provider_ref"]:
            parts.append(_org("provider-org", b["provider_ref"], None))
        if b["receiver_ref"] or b["receiver_name"]:
            parts.append(_org("receiver-org", b["receiver_ref"], b["receiver_name"]))
    return f"<{tag}{attrs}>{''.join(parts)}</{tag}>"


DATE_TYPES = (("start_planned", "1"), ("start_actual", "2"), ("end_planned", "3"),
              ("end_actual", "4"))


def _activity(a: Any, kids: dict[str, dict[int, list[Any]]], flows: list[Any]) -> str:
    aid = a["id"]
    attrs = (_a("last-updated-datetime", a["last_updated"]) + _a("default-currency",
             a["default_currency"]) + _a("hierarchy", a["hierarchy"])
             + (' humanitarian="1"' if a["humanitarian"] else ""))
    p = [f"<iati-identifier>{escape(a['iati_identifier'])}</iati-identifier>",
         _org("reporting-org", a["reporting_org_ref"], a["reporting_org_name"],
              a["reporting_org_type"])]
    if a["title"]:
        p.append(f"<title>{_narrative(a['title'])}</title>")
    if a["description"]:
        p.append(f"<description type=\"1\">{_narrative(a['description'])}</description>")
    for o in kids["participating_org"].get(aid, []):
        p.append(_org("participating-org", o["ref"], o["name"], o["type"], "activity-id",
                      o["activity_ref"], o["role"]))
    if a["status"]:
        p.append(f"<activity-status{_a('code', a['status'])}/>")
    for col, code in DATE_TYPES:
        if a[col]:
            p.append(f"<activity-date type=\"{code}\"{_a('iso-date', a[col])}/>")
    for c in kids["activity_country"].get(aid, []):
        p.append(f"<recipient-country{_a('code', c['code'])}{_a('percentage', c['percentage'])}/>")
    for r in kids["activity_region"].get(aid, []):
        p.append(f"<recipient-region{_a('code', r['code'])}{_a('vocabulary', r['vocabulary'])}"
                 f"{_a('percentage', r['percentage'])}/>")
    for s in kids["activity_sector"].get(aid, []):
        p.append(f"<sector{_a('vocabulary', s['vocabulary'])}{_a('code', s['code'])}"
                 f"{_a('percentage', s['percentage'])}/>")
    for pm in kids["policy_marker"].get(aid, []):
        p.append(f"<policy-marker{_a('vocabulary', pm['vocabulary'])}"
                 f"{_a('vocabulary-uri', pm.get('vocabulary_uri'))}{_a('code', pm['code'])}"
                 f"{_a('significance', pm['significance'])}/>")
    p.extend(_budget(b) for b in kids["budget"].get(aid, []) if b["kind"] == "budget")
    p.extend(_budget(b) for b in kids["budget"].get(aid, []) if b["kind"] == "planned_disbursement")
    p.extend(_transaction(f) for f in flows)
    for r in kids["related_activity"].get(aid, []):
        p.append(f"<related-activity{_a('ref', r['ref'])}{_a('type', r['type'])}/>")
    return f"<iati-activity{attrs}>{''.join(p)}</iati-activity>\n"


def stream_iati(engine: Engine, flt: FlowFilter) -> Iterator[str]:
    a = m.Activity.__table__
    f = m.Flow.__table__
    b = m.Budget.__table__
    filtered = bool(flt.params())
    with engine.connect().execution_options(readonly=True) as conn:
        flow_ok = flt.clause()
        if filtered:
            wanted = select(f.c.activity_id).where(current(f), flow_ok,
                                                   f.c.activity_id.is_not(None))
            act_where = a.c.id.in_(wanted)
        else:
            act_where = current(a)
        orphans = conn.execute(select(func.count()).select_from(f).where(
            current(f), flow_ok, f.c.activity_id.is_(None))).scalar_one()
        ids = list(conn.execute(select(a.c.id).where(act_where, current(a))
                                .order_by(a.c.id)).scalars())
        now = datetime.now(UTC).isoformat(timespec="seconds")
        yield ('<?xml version="1.0" encoding="UTF-8"?>\n'
               f"<!-- exported by fundtrack {now}; filter: {escape(json.dumps(flt.params()))}; "
               f"{len(ids)} activities; {orphans} matching flows have no activity and are "
               "not in this file -->\n"
               f'<iati-activities version="2.03" generated-datetime="{now}">\n')
        for i in range(0, len(ids), 200):
            chunk = ids[i:i + 200]
            acts = conn.execute(select(a).where(a.c.id.in_(chunk)).order_by(a.c.id)).mappings()
            kids = {name: _children(conn, name, chunk) for name in (
                "participating_org", "activity_country", "activity_region", "activity_sector",
                "policy_marker", "related_activity")}
            kids["budget"] = _current_children(conn, b, chunk, b.c.id)
            flows: dict[int, list[Any]] = defaultdict(list)
            for row in conn.execute(select(f).where(f.c.activity_id.in_(chunk),
                                                    current(f), flow_ok)
                                    .order_by(f.c.id)).mappings():
                flows[row["activity_id"]].append(row)
            yield "".join(_activity(act, kids, flows.get(act["id"], [])) for act in acts)
        conn.rollback()
    yield "</iati-activities>\n"


def stream(engine: Engine, fmt: str, flt: FlowFilter) -> Iterator[str]:
    if fmt == "csv":
        return stream_csv(engine, flt)
    if fmt == "json":
        return stream_json(engine, flt)
    if fmt == "iati":
        return stream_iati(engine, flt)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
