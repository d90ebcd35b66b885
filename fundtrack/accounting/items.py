"""The unit every 1325 figure counts: a current flow with what the rules need to know.

Loaded in batches (one query per child table per chunk of activities), so a report card
over thousands of flows costs a handful of statements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select

from fundtrack.accounting.config import load
from fundtrack.accounting.markers import Marker, activity_marker, effective_marker
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.records import FlowKind

CHUNK = 500


@dataclass
class Item:
    flow_id: int
    activity_id: int | None
    activity_identifier: str | None
    kind: FlowKind
    reporting_org_ref: str | None
    provider_ref: str | None
    receiver_ref: str | None
    receiver_activity_id: str | None
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None
    value_date: date | None
    earmarking: int | None
    countries: list[str]
    sectors: list[str]          # DAC 5-digit codes (vocabulary 1 or 2)
    tags: list[str]             # donors' own codes (vocab 98/99) and flow keywords
    text: str                   # title, description and flow description, for keywords
    extra: dict[str, Any]
    marker: Marker = field(default=None)  # type: ignore[assignment]
    batch_created: Any = None
    provider_name: str | None = None
    #: The date the publisher says this record was published by, and which date it is
    #: (:func:`publisher_date`); never the date fundtrack imported the file.
    published: date | None = None
    published_basis: str | None = None


def load_items(conn: Connection, where: ColumnElement[bool] | None = None) -> list[Item]:
    """Current flows matching ``where`` (on the flow table), with activity context.

    Only the columns an :class:`Item` holds are read, as plain tuples: the classification
    of every flow (``stored.rebuild``) spent a third of its time here on columns it never
    used (rates, dates, names) and on mapping rows by name.
    """
    f = m.Flow.__table__
    a = m.Activity.__table__
    b = m.ImportBatch.__table__
    q = (select(f.c.id, f.c.activity_id, a.c.iati_identifier, f.c.kind, f.c.reporting_org_ref,
                f.c.provider_ref, f.c.receiver_ref, f.c.receiver_activity_id, f.c.amount,
                f.c.currency, f.c.amount_usd, f.c.value_date, f.c.earmarking,
                f.c.sector_code, f.c.sector_vocabulary, f.c.recipient_country, f.c.extra,
                a.c.title, a.c.description, f.c.description, b.c.created_at,
                f.c.provider_name, a.c.last_updated, b.c.file_generated)
         .select_from(f.outerjoin(a, a.c.id == f.c.activity_id).join(b, b.c.id == f.c.batch_id))
         .where(current(f)))
    if where is not None:
        q = q.where(where)
    rows = conn.execute(q.order_by(f.c.id)).all()
    ctx = activity_context(conn, {r[1] for r in rows if r[1]})
    own_markers = flow_markers(conn, [r[0] for r in rows])
    cfg = load("markers")
    no_ctx: dict[str, Any] = {}
    items = []
    for (fid, act_id, ident, kind, reporter, provider, receiver, receiver_act, amount,
         currency, amount_usd, value_date, earmarking, sector_code, sector_vocab, country,
         extra, title, a_description, description, batch_created, provider_name,
         a_last_updated, file_generated) in rows:
        c = ctx.get(act_id, no_ctx)
        extra = extra or {}
        sectors, tags, text = rule_fields(sector_code, sector_vocab, extra, title,
                                          a_description, description, c)
        countries = [country] if country else list(c.get("countries", []))
        it = Item(
            flow_id=fid, activity_id=act_id, activity_identifier=ident, kind=kind,
            reporting_org_ref=reporter, provider_ref=provider, receiver_ref=receiver,
            receiver_activity_id=receiver_act, amount=amount, currency=currency,
            amount_usd=amount_usd, value_date=value_date, earmarking=earmarking,
            countries=countries, sectors=sectors, tags=tags, text=text, extra=extra,
            batch_created=batch_created, provider_name=provider_name)
        it.published, it.published_basis = publisher_date(extra, a_last_updated, file_generated)
        it.marker = effective_marker(extra, c.get("marker"), own_markers.get(fid), cfg)
        items.append(it)
    return items


def rule_fields(sector_code: str | None, sector_vocab: str | None, extra: dict[str, Any],
                title: str | None, a_description: str | None, description: str | None,
                ctx: dict[str, Any]) -> tuple[list[str], list[str], str]:
    """(sectors, tags, text) of a flow, as :class:`Item` holds them: the flow's own DAC
    code, else its activity's; donors' own codes and flow keywords; title, activity and
    flow description (joined by ``classify.TEXT_JOIN``)."""
    sectors = [sector_code] if sector_code and (sector_vocab or "1") in (
        "1", "2") else list(ctx.get("sectors", []))
    tags = list(ctx.get("tags", []))
    if sector_code and sector_vocab in ("98", "99"):
        tags.append(sector_code)
    if extra.get("keywords"):
        tags += [k.strip() for k in str(extra["keywords"]).split(";") if k.strip()]
    text = " \n ".join(t for t in (title, a_description, description) if t)
    return sectors, tags, text


@dataclass(slots=True)
class RuleInput:
    """What the 1325 rules, hand overrides and the stored gender value read of a flow: the
    fields of its :class:`Item` they use, loaded without the rest (amounts, dates, kinds,
    publication dates) when no plugin classifier needs the whole item."""

    flow_id: int
    activity_identifier: str | None
    sectors: list[str]
    tags: list[str]
    text: str
    extra: dict[str, Any]
    marker: Marker = field(default=None)  # type: ignore[assignment]


def load_rule_inputs(conn: Connection, where: ColumnElement[bool] | None = None
                     ) -> list[RuleInput]:
    """:func:`load_items`'s flows (same rows, same order), with only what the rules read:
    ``stored.rebuild`` spent most of its time loading items otherwise."""
    f = m.Flow.__table__
    a = m.Activity.__table__
    b = m.ImportBatch.__table__
    q = (select(f.c.id, f.c.activity_id, a.c.iati_identifier, f.c.sector_code,
                f.c.sector_vocabulary, f.c.extra, a.c.title, a.c.description, f.c.description)
         .select_from(f.outerjoin(a, a.c.id == f.c.activity_id).join(b, b.c.id == f.c.batch_id))
         .where(current(f)))
    if where is not None:
        q = q.where(where)
    rows = conn.execute(q.order_by(f.c.id)).all()
    ctx = activity_context(conn, {r[1] for r in rows if r[1]}, countries=False)
    own_markers = flow_markers(conn, [r[0] for r in rows])
    cfg = load("markers")
    no_ctx: dict[str, Any] = {}
    out = []
    for (fid, act_id, ident, sector_code, sector_vocab, extra, title, a_description,
         description) in rows:
        c = ctx.get(act_id, no_ctx)
        extra = extra or {}
        sectors, tags, text = rule_fields(sector_code, sector_vocab, extra, title,
                                          a_description, description, c)
        out.append(RuleInput(fid, ident, sectors, tags, text, extra, effective_marker(
            extra, c.get("marker"), own_markers.get(fid), cfg)))
    return out


#: Where a record's publication date comes from, first found wins. FTS says when a flow
#: was first reported (exact); IATI says when the activity was last updated and when the
#: file was generated (upper bounds: the transaction was published on or before).
PUBLISHER_DATES = (
    ("first_reported_date", "FTS firstReportedDate (first reported)"),
    ("updated_at", "FTS updatedAt (last updated: an upper bound)"),
)
IATI_ACTIVITY_DATE = "IATI activity last-updated-datetime (an upper bound)"
IATI_FILE_DATE = "IATI file generated-datetime (an upper bound)"


def iso_day(value: Any) -> date | None:
    """The calendar day of an ISO date or date-time string (None if it is not one)."""
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def publisher_date(extra: dict[str, Any], activity_last_updated: str | None,
                   file_generated: str | None) -> tuple[date | None, str | None]:
    """(date, basis): the publisher's own statement of when this record was published:
    FTS firstReportedDate, else FTS updatedAt; IATI last-updated-datetime of the activity,
    else the file's generated-datetime. None when the publisher gives none (e.g. D-Portal
    re-serialisations drop both IATI dates)."""
    for key, basis in PUBLISHER_DATES:
        day = iso_day(extra.get(key))
        if day is not None:
            return day, basis
    for value, basis in ((activity_last_updated, IATI_ACTIVITY_DATE),
                         (file_generated, IATI_FILE_DATE)):
        day = iso_day(value)
        if day is not None:
            return day, basis
    return None, None


def earliest_publication(conn: Connection, items: list[Item]) -> None:
    """Date each IATI item by the earliest version of the same transaction the ledger
    holds (same activity and reporter; same kind, value date, amount and currency, in an
    earlier, superseded version): an activity re-published later does not make a
    transaction it already held look late. With one snapshot nothing changes."""
    f, a, b = m.Flow.__table__, m.Activity.__table__, m.ImportBatch.__table__
    by_act: dict[tuple[str | None, str], list[Item]] = defaultdict(list)
    for it in items:
        if it.activity_identifier:
            by_act[(it.reporting_org_ref, it.activity_identifier)].append(it)
    idents = sorted({k[1] for k in by_act})
    for i in range(0, len(idents), CHUNK):
        q = (select(a.c.iati_identifier, a.c.reporting_org_ref, a.c.last_updated,
                    b.c.file_generated, f.c.kind, f.c.value_date, f.c.amount, f.c.currency)
             .select_from(f.join(a, a.c.id == f.c.activity_id).join(b, b.c.id == f.c.batch_id))
             .where(f.c.superseded_by.is_not(None), a.c.superseded_by.is_not(None),
                    a.c.iati_identifier.in_(idents[i:i + CHUNK])))
        for r in conn.execute(q):
            day, basis = publisher_date({}, r.last_updated, r.file_generated)
            if day is None:
                continue
            for it in by_act.get((r.reporting_org_ref, r.iati_identifier), []):
                if ((it.kind, it.value_date, it.amount, it.currency)
                        == (r.kind, r.value_date, r.amount, r.currency)
                        and (it.published is None or day < it.published)):
                    it.published = day
                    it.published_basis = f"{basis}, earlier version"


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ids = sorted(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


def flow_markers(conn: Connection, flow_ids: list[int]) -> dict[int, list[tuple]]:
    """Policy markers reported on the flows themselves (CRS rows), by flow id."""
    fm = m.FlowPolicyMarker.__table__
    out: dict[int, list[tuple]] = defaultdict(list)
    for ids in _chunks(flow_ids):
        for r in conn.execute(select(fm.c.flow_id, fm.c.vocabulary, fm.c.code, fm.c.significance,
                                     fm.c.vocabulary_uri)
                              .where(fm.c.flow_id.in_(ids)).order_by(fm.c.id)):
            out[r.flow_id].append((r.vocabulary, r.code, r.significance, r.vocabulary_uri))
    return out


def activity_context(conn: Connection, activity_ids: set[int], countries: bool = True
                     ) -> dict[int, dict[str, Any]]:
    """Markers, DAC sectors, own tags and countries of activities, by activity id
    (``countries=False``: without countries, which the 1325 rules do not read)."""
    pm, s, c = m.PolicyMarker.__table__, m.ActivitySector.__table__, m.ActivityCountry.__table__
    markers: dict[int, list] = defaultdict(list)
    out: dict[int, dict[str, Any]] = {i: {"sectors": [], "tags": [], "countries": []}
                                      for i in activity_ids}
    for ids in _chunks(activity_ids):
        for r in conn.execute(select(pm.c.activity_id, pm.c.vocabulary, pm.c.code,
                                     pm.c.significance, pm.c.vocabulary_uri)
                              .where(pm.c.activity_id.in_(ids)).order_by(pm.c.id)):
            markers[r.activity_id].append((r.vocabulary, r.code, r.significance,
                                           r.vocabulary_uri))
        for r in conn.execute(select(s.c.activity_id, s.c.vocabulary, s.c.code)
                              .where(s.c.activity_id.in_(ids)).order_by(s.c.id)):
            v = r.vocabulary or "1"
            if v in ("1", "2"):
                out[r.activity_id]["sectors"].append(r.code)
            elif v in ("98", "99"):
                out[r.activity_id]["tags"].append(r.code)
        for r in (conn.execute(select(c.c.activity_id, c.c.code)
                               .where(c.c.activity_id.in_(ids)).order_by(c.c.id))
                  if countries else ()):
            out[r.activity_id]["countries"].append(r.code)
        tag = m.ActivityTag.__table__
        for r in conn.execute(select(tag.c.activity_id, tag.c.code)
                              .where(tag.c.activity_id.in_(ids)).order_by(tag.c.id)):
            out[r.activity_id]["tags"].append(r.code)
    cfg = load("markers")
    for i in activity_ids:
        out[i]["marker"] = activity_marker(markers.get(i, []), cfg=cfg)
    return out


def year_between(col: Any, year: int) -> ColumnElement[bool]:
    """``col`` falls in calendar ``year`` (works on both databases, uses the index)."""
    return and_(col >= date(year, 1, 1), col <= date(year, 12, 31))
