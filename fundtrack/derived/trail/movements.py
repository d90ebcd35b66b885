"""Double counting: one canonical movement per piece of cash, whoever reported it.

A donor's disbursement and the recipient's incoming funds for the same money become one
movement (the disbursement is canonical, the incoming funds its mirror; both rows stay
with their provenance). They are paired when

1. *linked*: one names the other's activity (provider-/receiver-activity-id), the
   organisations agree, and the amounts agree within the tolerance; or else
2. *amount-date*: same provider and receiver organisation, amounts equal within the
   tolerance, value dates within the window (:class:`~fundtrack.derived.trail.config.TrailConfig`);
3. *lump*: after that, one report equal (within the tolerance) to the sum of 2-6 reports
   on the other side, all within the window: one movement per report of the "many" side
   (:func:`_lumps`).

Pairing is greedy over content-sorted flows (closest date, then closest amount; lumps
largest first), so the result does not depend on the order in which files were imported.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
import zlib
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, String, Table, delete, or_, select
from sqlalchemy import update as sa_update

from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.db.bulk import Rebuilds, bulk_insert, copy_dicts, drop_for_load, new_ids
from fundtrack.derived.trail.config import TrailConfig
from fundtrack.derived.trail.tables import Movement, TrailLink
from fundtrack.ledger import tables as m
from fundtrack.money import to_text
from fundtrack.records import FlowKind

CASH = (FlowKind.INCOMING_FUNDS, FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE)


@dataclass(slots=True)
class CashFlow:
    id: int
    kind: FlowKind
    src: tuple[str, str]
    dst: tuple[str, str]
    in_activity: bool
    amount: Decimal
    currency: str | None
    amount_usd: Decimal | None
    value_date: date | None
    earmarking: int | None
    country: str | None
    sector: str | None
    key: str
    #: Who pays and who is paid, by canonical organisation, whatever the report's
    #: viewpoint (an activity's own disbursement names its provider too).
    payer: str = ""
    payee: str = ""
    #: Reported by an aggregator (FTS) that republishes what others report.
    aggregated: bool = False


def org_key(ref: str | None, name: str | None) -> str:
    """An organisation's account name: its ref, else its reported name, else ''."""
    if ref and ref.strip():
        return ref.strip()
    if name and name.strip():
        return "name:" + " ".join(name.lower().split())[:190]
    return ""


def canonical_reporters(conn: Connection, refs: list[str] | None = None) -> dict[str, str]:
    """{reported ref: canonical ref} of the refs resolved alone (reporters; issue 15); all
    of them, or those among ``refs`` (by the party index)."""
    from fundtrack.identity.tables import CanonicalOrg, PartyResolution

    pr, co = PartyResolution.__table__, CanonicalOrg.__table__
    q = (select(pr.c.ref, co.c.ref).join(co, co.c.id == pr.c.org_id)
         .where(pr.c.name_key == "", pr.c.ref != ""))
    if refs is not None:
        q = q.where(pr.c.ref.in_(refs))
    return {ref: canon for ref, canon in conn.execute(q)}


def reported_activities(conn: Connection) -> dict[str, str]:
    """{iati-identifier: reporting org (canonical)} of current activities (smallest org
    ref if several)."""
    a = m.Activity.__table__
    canon = canonical_reporters(conn)
    out: dict[str, str] = {}
    for ident, org in conn.execute(select(a.c.iati_identifier, a.c.reporting_org_ref)
                                   .where(current(a))):
        org = canon.get(org, org)
        if ident not in out or org < out[ident]:
            out[ident] = org
    return out


class ActivityOrgs(dict[str, str]):
    """The same mapping as :func:`reported_activities`, loaded only for the identifiers
    asked for (by index): an incremental update never reads every activity."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn
        self.asked: set[str] = set()
        #: :func:`canonical_reporters` of the reporters met so far (every reporter of a
        #: large registry is tens of thousands of rows: read only those needed)
        self.canon: dict[str, str] = {}
        self.canon_asked: set[str] = set()

    def ensure(self, idents: Iterable[str | None]) -> None:
        a = m.Activity.__table__
        todo = sorted({i.strip() for i in idents if i and i.strip()} - self.asked)
        self.asked.update(todo)
        rows = [r for k in range(0, len(todo), 500) for r in self.conn.execute(
            select(a.c.iati_identifier, a.c.reporting_org_ref).where(
                current(a), a.c.iati_identifier.in_(todo[k:k + 500])))]
        refs = sorted({org for _, org in rows if org} - self.canon_asked)
        self.canon_asked.update(refs)
        for k in range(0, len(refs), 500):
            self.canon.update(canonical_reporters(self.conn, refs[k:k + 500]))
        for ident, org in rows:
            org = self.canon.get(org, org)
            if ident not in self or org < self[ident]:
                self[ident] = org


#: Days :func:`pair` counts between two flows when either is undated: a matching window
#: this wide or wider takes every flow of a group as within it.
UNDATED_DAYS = 10**6
#: The widths of a movement's organisation and activity columns: rows are cut to them,
#: and anything compared with stored rows is cut the same way.
ORG_WIDTH = cast(int, cast(String, Movement.__table__.c.src_org.type).length)
ACTIVITY_WIDTH = cast(int, cast(String, Movement.__table__.c.src_activity.type).length)


#: The columns :func:`_cash_flow` reads, in its order.
_FLOW_COLS = ("id", "kind", "amount", "currency", "amount_usd", "value_date", "provider_ref",
              "provider_name", "provider_activity_id", "receiver_ref", "receiver_name",
              "receiver_activity_id", "reporting_org_ref", "external_id", "source_location",
              "earmarking", "recipient_country", "sector_code")
_KINDS = {k.name: k for k in FlowKind}


def load_cash_flows(conn: Connection, acts: dict[str, str], where: Any = None,
                    order_limit: int | None = None) -> list[CashFlow]:
    """Current cash flows (all, or those matching ``where``) as plain records, their
    parties named by canonical organisation (``flow_party``, issue 15). ``order_limit``:
    the first that many by id (a chunk of a streamed read)."""
    from fundtrack.identity.tables import CanonicalOrg, FlowParty

    f, a = m.Flow.__table__, m.Activity.__table__
    fp = FlowParty.__table__
    pc, rc, ec = (CanonicalOrg.__table__.alias(n) for n in ("pc", "rc", "ec"))
    if where is None and conn.dialect.name == "postgresql" and not isinstance(acts, ActivityOrgs):
        return _all_cash_flows_pg(conn, acts)
    q = (select(*(f.c[c] for c in _FLOW_COLS), a.c.iati_identifier,
                a.c.reporting_org_ref.label("act_org"), pc.c.ref, rc.c.ref, ec.c.ref)
         .select_from(f.outerjoin(a, a.c.id == f.c.activity_id)
                      .outerjoin(fp, fp.c.flow_id == f.c.id)
                      .outerjoin(pc, pc.c.id == fp.c.provider_org_id)
                      .outerjoin(rc, rc.c.id == fp.c.receiver_org_id)
                      .outerjoin(ec, ec.c.id == fp.c.reporter_org_id))
         .where(current(f), f.c.kind.in_(CASH)))
    if where is not None:
        q = q.where(where)
    if order_limit is not None:
        q = q.order_by(f.c.id).limit(order_limit)
    if isinstance(acts, ActivityOrgs):  # look up only the activities these flows name
        rows = conn.execute(q).all()
        acts.ensure(x for r in rows for x in (r.provider_activity_id, r.receiver_activity_id))
        return [_cash_flow(r, acts) for r in rows]
    return [_cash_flow(r, acts) for r in conn.execute(q.execution_options(yield_per=50_000))]


def _cash_flows_sql() -> str:
    """:func:`load_cash_flows`' query as the driver's SQL (current cash flows)."""
    cols = ", ".join(f"f.{c}" for c in _FLOW_COLS)
    kinds = ", ".join(f"'{k.name}'" for k in CASH)
    return (f"SELECT {cols}, a.iati_identifier, a.reporting_org_ref, pc.ref, rc.ref, ec.ref "
            f"FROM flow f LEFT JOIN activity a ON a.id = f.activity_id "
            f"LEFT JOIN flow_party fp ON fp.flow_id = f.id "
            f"LEFT JOIN canonical_org pc ON pc.id = fp.provider_org_id "
            f"LEFT JOIN canonical_org rc ON rc.id = fp.receiver_org_id "
            f"LEFT JOIN canonical_org ec ON ec.id = fp.reporter_org_id "
            f"WHERE f.superseded_by IS NULL AND f.kind IN ({kinds})")


def _cash_flows_by_id_pg(conn: Connection, acts: ActivityOrgs, ids: list[int]
                         ) -> list[CashFlow]:
    """The current cash flows among ``ids``, in one query on the driver's cursor (tens of
    thousands of rows for a batch into big pairs: no SQLAlchemy row processing)."""
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(_cash_flows_sql() + " AND f.id = ANY(%s)", (ids,))
        rows = cur.fetchall()
    p_act, r_act = _FLOW_COLS.index("provider_activity_id"), _FLOW_COLS.index(
        "receiver_activity_id")
    acts.ensure(x for r in rows for x in (r[p_act], r[r_act]))
    return [_cash_flow(r, acts) for r in rows]


def _all_cash_flows_pg(conn: Connection, acts: dict[str, str]) -> list[CashFlow]:
    """Every current cash flow, read as plain tuples on the driver's cursor (a million rows:
    no SQLAlchemy row or type processing per row)."""
    sql = _cash_flows_sql()
    raw = conn.connection.dbapi_connection
    with raw.cursor(name="cash_flows") as cur:  # type: ignore[union-attr]
        cur.itersize = 50_000
        cur.execute(sql)
        return [_cash_flow(r, acts) for r in cur]


def _side(ref: str | None, name: str | None, act_id: str | None,
          acts: dict[str, str]) -> tuple[str, str]:
    act_id = (act_id or "").strip()
    if act_id and act_id in acts:
        return acts[act_id], act_id
    return org_key(ref, name), act_id


def _cash_flow(r: Any, acts: dict[str, str]) -> CashFlow:
    """A row of :data:`_FLOW_COLS` + (activity identifier, its reporter) as a record."""
    (fid, kind, amount, currency, usd, value_date, p_ref, p_name, p_act, r_ref, r_name, r_act,
     reporter, external_id, location, earmarking, country, sector, ident, act_org,
     p_canon, r_canon, rep_canon) = r
    kind = _KINDS.get(kind, kind)  # the driver's cursor gives the enum's name
    # the canonical organisation when the identity step resolved the party (issue 15)
    provider = _side(p_canon or p_ref, p_name, p_act, acts)
    receiver = _side(r_canon or r_ref, r_name, r_act, acts)
    in_activity = ident is not None
    if in_activity:
        own = ((rep_canon if act_org is None or act_org == reporter else acts.get(ident))
               or act_org or reporter or "", ident)
        if kind is FlowKind.INCOMING_FUNDS:
            src, dst = provider, own
        else:
            src, dst = own, receiver
    else:
        src, dst = provider, receiver
    if kind is FlowKind.EXPENDITURE:
        dst = (dst[0], "")
    key = "|".join((reporter or "", ident or "", external_id or "", str(value_date or ""),
                    str(amount), currency or "", location or ""))
    return CashFlow(fid, kind, src, dst, in_activity, amount, currency, usd, value_date,
                    earmarking, country, sector, key, provider[0] or src[0],
                    receiver[0] or dst[0], (reporter or "") in _aggregators())


def _aggregators() -> tuple[str, ...]:
    from fundtrack.accounting.subject import AGGREGATORS

    return tuple(AGGREGATORS)


def _close(d: CashFlow, f: CashFlow, tol: Decimal) -> Decimal | None:
    """Relative difference of two amounts if comparable, else None."""
    if d.currency and d.currency == f.currency:
        a, b = d.amount, f.amount
    elif d.amount_usd is not None and f.amount_usd is not None:
        a, b = d.amount_usd, f.amount_usd
    else:
        return None
    big = max(abs(a), abs(b))
    if big == 0:
        return Decimal(0)
    diff = abs(a - b) / big
    return diff if diff <= tol else None


def _linked(d: CashFlow, f: CashFlow) -> bool:
    return bool((d.src[1] and d.src == f.src) or (f.dst[1] and d.dst == f.dst))


@dataclass(slots=True)
class Match:
    """One movement made of two reports: ``canonical`` (the disbursement) counted for
    ``amount``/``amount_usd``, ``mirror`` (the incoming funds) the other report of it."""

    canonical: CashFlow
    mirror: CashFlow
    method: str
    amount: Decimal
    amount_usd: Decimal | None


def pair(flows: list[CashFlow], cfg: TrailConfig) -> list[Match]:
    """The matches (disbursement, incoming funds) that are one movement of money:
    one-to-one first (linked, then amount-date), then lumps (:func:`_lumps`), then
    :func:`cross_source` on what is left."""
    pairs = pair_groups(flows, cfg)
    used = {p.canonical.id for p in pairs} | {p.mirror.id for p in pairs}
    pairs.extend(cross_source([fl for fl in flows if fl.id not in used], cfg))
    return pairs


def pair_groups(flows: list[CashFlow], cfg: TrailConfig) -> list[Match]:
    """:func:`pair` but for :func:`cross_source`: each (src org, dst org) group on its own,
    so the flows may come a few whole groups at a time (:func:`rebuild` streams them)."""
    groups: dict[tuple[str, str], tuple[list[CashFlow], list[CashFlow]]] = defaultdict(
        lambda: ([], []))
    for fl in flows:
        if fl.kind is FlowKind.DISBURSEMENT:
            groups[(fl.src[0], fl.dst[0])][0].append(fl)
        elif fl.kind is FlowKind.INCOMING_FUNDS:
            groups[(fl.src[0], fl.dst[0])][1].append(fl)
    pairs: list[Match] = []
    for gkey in sorted(groups):
        ds, fs = groups[gkey]
        if not ds or not fs or not gkey[0] or not gkey[1]:
            continue
        ds.sort(key=lambda x: x.key)
        fs.sort(key=lambda x: x.key)
        taken: set[int] = set()
        paired: set[int] = set()
        for method in ("linked", "amount-date"):
            for d in ds:
                if d.id in paired:
                    continue
                best = None
                for f in fs:
                    if f.id in taken:
                        continue
                    linked = _linked(d, f)
                    if method == "linked" and not linked:
                        continue
                    diff = _close(d, f, cfg.match_tolerance)
                    if diff is None:
                        continue
                    days = (abs((d.value_date - f.value_date).days)
                            if d.value_date and f.value_date else UNDATED_DAYS)
                    if method == "amount-date" and days > cfg.match_window_days:
                        continue
                    score = (days, diff, f.key)
                    if best is None or score < best[0]:
                        best = (score, f)
                if best is not None:
                    f = best[1]
                    taken.add(f.id)
                    paired.add(d.id)
                    pairs.append(Match(d, f, method, d.amount, d.amount_usd))
        if len(paired) < len(ds) and len(taken) < len(fs):  # leftovers on both sides
            pairs.extend(_lumps([d for d in ds if d.id not in paired],
                                [f for f in fs if f.id not in taken], cfg))
    return pairs


def pairable(fl: CashFlow) -> bool:
    """Whether :func:`pair`'s one-to-one and lump passes can match this flow at all (a
    disbursement or incoming funds whose group names both organisations). Every other
    flow is a movement of its own there; only :func:`cross_source` (disbursements, by
    payer and payee) may still pair it."""
    return fl.kind in (FlowKind.DISBURSEMENT, FlowKind.INCOMING_FUNDS) and bool(
        fl.src[0] and fl.dst[0])


def _around(when: date, window: timedelta) -> tuple[date, date]:
    """The first and last day within ``window`` of ``when`` (calendar bounds kept: a
    window of centuries must not overflow the date)."""
    lo = date.min if when - date.min <= window else when - window
    hi = date.max if date.max - when <= window else when + window
    return lo, hi


def clusters(flows: list[CashFlow], cfg: TrailConfig) -> list[list[CashFlow]]:
    """The flows split into clusters that :func:`pair` (without :func:`cross_source`, i.e.
    no aggregator's flow among them) pairs independently: ``pair`` of any union of
    clusters gives exactly the matches of ``pair`` of all the flows that fall in them.

    A disbursement and incoming funds are joined when ``pair`` could ever compare them:
    same group (src org, dst org), both :func:`pairable`, and either dated within
    ``match_window_days`` of each other (the amount-date pass; ``_lumps`` too: it only
    takes records of the other side dated within the window of the record it matches) or
    linked (the linked pass, whatever the dates: same src account naming an activity, or
    same dst account naming one, as ``_linked``). A cluster is a connected set of these
    joins (union-find); a flow that is not pairable is a cluster alone. Amounts are not
    looked at, which only makes clusters larger than they need be.

    Why pairing a cluster alone gives its matches in the whole group: each greedy step
    in ``pair`` decides for one record (a disbursement ``d`` in the linked or amount-date
    pass, a record ``t`` in ``_lumps``) from the records it may compare with, all in its
    cluster, and from which of them are taken, which only steps of records of the same
    cluster (those compared with them) decided. The steps run in one order (``ds`` and
    ``fs`` by content key, lump records by amount then key, candidates by date then key)
    and restricting it to a cluster keeps that order, so by induction over the steps each
    decision in a cluster sees the same candidates, the same taken ones and the same
    ``_nearest`` walk (every record within the window of ``t`` is in its cluster), hence
    is the same. ``_lumps`` runs in a group only when both sides have leftovers; a cluster
    with leftovers on both sides implies it, and a cluster without cannot form a lump, so
    the per-cluster condition gives the same lumps. (Records with equal content keys are
    ordered as given, in the whole as in a cluster.) ``cross_source`` joins flows across
    groups and is not covered: callers handle aggregators' flows apart.
    """
    if cfg.match_window_days >= UNDATED_DAYS:  # undated flows are within the window
        return [flows]
    parent = list(range(len(flows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    by_group: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(
        lambda: ([], []))
    for i, fl in enumerate(flows):
        if pairable(fl):
            by_group[(fl.src[0], fl.dst[0])][fl.kind is FlowKind.INCOMING_FUNDS].append(i)
    window = timedelta(days=cfg.match_window_days)
    for ds, fs in by_group.values():
        # dated within the window: each disbursement with the incoming funds in its
        # window (a range of them by date; the range's own links made once each)
        dated = sorted((i for i in fs if flows[i].value_date is not None),
                       key=lambda i: flows[i].value_date)  # type: ignore[arg-type,return-value]
        days = [cast(date, flows[i].value_date) for i in dated]
        skip = list(range(len(dated)))  # skip[j]: first j' >= j not yet joined to j' + 1

        def unjoined(j: int, skip: list[int] = skip) -> int:
            while skip[j] != j:
                skip[j] = skip[skip[j]]
                j = skip[j]
            return j

        for i in ds:
            when = flows[i].value_date
            if when is None:
                continue
            earliest, latest = _around(when, window)
            lo, hi = bisect_left(days, earliest), bisect_right(days, latest)
            if lo == hi:
                continue
            join(i, dated[lo])
            j = unjoined(lo)
            while j < hi - 1:
                join(dated[j], dated[j + 1])
                skip[j] = j + 1
                j = unjoined(j + 1)
        # linked, whatever the dates: a disbursement and incoming funds with the same src
        # account naming an activity, or the same dst account naming one
        accounts: dict[tuple[int, tuple[str, str]], tuple[list[int], list[int]]] = (
            defaultdict(lambda: ([], [])))
        for k, members in ((0, ds), (1, fs)):
            for i in members:
                for side, acct in ((0, flows[i].src), (1, flows[i].dst)):
                    if acct[1]:
                        accounts[(side, acct)][k].append(i)
        for both in accounts.values():
            if both[0] and both[1]:
                first = both[0][0]
                for i in both[0][1:] + both[1]:
                    join(first, i)
    out: dict[int, list[CashFlow]] = defaultdict(list)
    for i, fl in enumerate(flows):
        out[find(i)].append(fl)
    return list(out.values())


#: The least window of :func:`cross_source` (days).
CROSS_SOURCE_WINDOW_DAYS = 366


def cross_source(flows: list[CashFlow], cfg: TrailConfig) -> list[Match]:
    """The same disbursement reported by its publisher and republished by an aggregator
    (FTS): same canonical payer and payee (issue 15), amounts equal within the tolerance,
    dates within the window; one to one, then one aggregator report to 2-6 tranches of
    one activity (or the reverse) like :func:`_lumps`. The publisher's own report is canonical, the
    aggregator's the mirror. Run on the disbursements no other rule paired. The window
    is at least :data:`CROSS_SOURCE_WINDOW_DAYS`: FTS dates a grant once, at its decision,
    where the publisher reports each tranche as paid (the Afghanistan Humanitarian Fund's
    USD 499,916 grant to Afghan Women Rights Organization: FTS 2020-12-11, IATI tranches
    2020-12-22 and 2021-04-23)."""
    narrow = cfg
    cfg = replace(cfg, match_window_days=max(cfg.match_window_days, CROSS_SOURCE_WINDOW_DAYS))
    groups: dict[tuple[str, str], tuple[list[CashFlow], list[CashFlow]]] = defaultdict(
        lambda: ([], []))
    for fl in flows:
        if fl.kind is FlowKind.DISBURSEMENT and fl.payer and fl.payee:
            groups[(fl.payer, fl.payee)][fl.aggregated].append(fl)
    out: list[Match] = []
    for gkey in sorted(groups):
        own, agg = groups[gkey]
        if not own or not agg:
            continue
        own.sort(key=lambda x: x.key)
        agg.sort(key=lambda x: x.key)
        taken: set[int] = set()
        paired: set[int] = set()
        for d in own:
            best = None
            for f in agg:
                if f.id in taken:
                    continue
                diff = _close(d, f, cfg.match_tolerance)
                if diff is None or d.value_date is None or f.value_date is None:
                    continue
                days = abs((d.value_date - f.value_date).days)
                # beyond the usual window only the very same amount
                if days > cfg.match_window_days or (days > narrow.match_window_days and diff):
                    continue
                score = (days, diff, f.key)
                if best is None or score < best[0]:
                    best = (score, f)
            if best is not None:
                taken.add(best[1].id)
                paired.add(d.id)
                out.append(Match(d, best[1], "cross-source", d.amount, d.amount_usd))
        # tranches: the publisher's reports of ONE activity against the aggregator's
        by_activity: dict[str, list[CashFlow]] = defaultdict(list)
        for d in own:
            if d.id not in paired:
                by_activity[d.src[1] if d.in_activity else ""].append(d)
        for act in sorted(by_activity):
            # one aggregator report = several tranches of the activity (wide window);
            # then either way round within the usual window
            for window, singles in ((cfg, True), (narrow, None)):
                if window is cfg and not act:
                    continue
                left = [f for f in agg if f.id not in taken]
                mine = [d for d in by_activity[act] if d.id not in paired]
                if not left or not mine:
                    break
                found = _lumps(mine, left, window, mirror_side=lambda x: x.aggregated,
                               method="cross-source", singles=singles)
                taken.update(x.mirror.id for x in found)
                paired.update(x.canonical.id for x in found)
                out.extend(found)
    return out


# Lump matching: bounds of the subset search (per record on the "one" side)
LUMP_MAX_PARTS = 6         # at most this many records on the "many" side
LUMP_MAX_CANDIDATES = 16   # the records closest in date are tried, no others
LUMP_MAX_STEPS = 5_000     # search nodes; the best sum found within them wins


def _lumps(ds: list[CashFlow], fs: list[CashFlow], cfg: TrailConfig,
           mirror_side: Any = None, method: str = "lump", singles: bool | None = None
           ) -> list[Match]:
    """One report on one side matched to several on the other (same provider and receiver).

    Run on what one-to-one pairing left in a group. Each leftover record, largest first
    (USD, then amount, then content key), is matched to the set of 2..``LUMP_MAX_PARTS``
    leftover records of the other side whose sum equals it within the tolerance, all
    dated within the window of it, none naming an activity the record contradicts. Of
    the sets that fit, the closest sum wins, then the fewest records, then the closest
    dates, then the smallest content keys: content only, so import order never matters.
    A disbursement matched to several incoming funds is split among them in proportion
    (largest remainder, exact); several disbursements matched to one incoming funds each
    keep their amount. ``mirror_side`` says which records are the mirrors (default: the
    incoming funds); ``singles``, when set, which side the "one" record may be on.
    """
    def side(x: CashFlow) -> bool:
        return bool(mirror_side(x)) if mirror_side else x.kind is FlowKind.INCOMING_FUNDS

    left = [x for x in ds + fs if x.amount > 0 and x.value_date is not None]
    sides: dict[bool, list[CashFlow]] = {False: [], True: []}
    for x in left:
        sides[side(x)].append(x)
    if not all(sides.values()):
        return []
    for recs in sides.values():
        recs.sort(key=lambda x: (x.value_date, x.key))
    days = {k: [x.value_date for x in recs] for k, recs in sides.items()}
    window = timedelta(days=cfg.match_window_days)
    left.sort(key=lambda x: (x.amount_usd is None, -(x.amount_usd or 0), -x.amount, x.key))
    used: set[int] = set()
    out: list[Match] = []
    for t in left:
        if t.id in used or (singles is not None and side(t) is not singles):
            continue
        kind = not side(t)
        others = _nearest(t, sides[kind], days[kind], window, used)
        if len(others) < 2:
            continue
        found = _best_subset(t, others, cfg.match_tolerance)
        if found is None:
            continue
        used.add(t.id)
        used.update(o.id for o in found[0])
        out.extend(_lump_matches(t, found[0], found[1], side(t), method))
    return out


def _nearest(t: CashFlow, recs: list[CashFlow], days: list[date], window: timedelta,
             used: set[int]) -> list[CashFlow]:
    """Up to ``LUMP_MAX_CANDIDATES`` usable records of ``recs`` (sorted by date, key)
    closest in date to ``t``, within the window: walked outwards from t's date, so the
    cost does not grow with the size of the group."""
    when: date = t.value_date  # type: ignore[assignment]
    first, last = bisect_left(days, when - window), bisect_right(days, when + window)
    j = bisect_left(days, when)
    i = j - 1
    out: list[CashFlow] = []
    while len(out) < LUMP_MAX_CANDIDATES and (i >= first or j < last):
        if j >= last or (i >= first and when - days[i] <= days[j] - when):
            o, i = recs[i], i - 1
        else:
            o, j = recs[j], j + 1
        if o.id not in used and _consistent(t, o):
            out.append(o)
    return out


def _consistent(a: CashFlow, b: CashFlow) -> bool:
    """Neither names an activity at either end that the other contradicts."""
    return not ((a.src[1] and b.src[1] and a.src != b.src)
                or (a.dst[1] and b.dst[1] and a.dst != b.dst))


def _best_subset(t: CashFlow, others: list[CashFlow], tol: Decimal
                 ) -> tuple[list[CashFlow], bool] | None:
    """(records, compared in USD) whose sum matches ``t`` best, or None."""
    same = [o for o in others if t.currency and o.currency == t.currency]
    tries: list[tuple[list[CashFlow], bool]] = [(same, False)]
    if t.amount_usd is not None and len(same) < len(others):
        tries.append(([o for o in others if o.amount_usd is not None], True))
    for cands, usd in tries:
        if len(cands) < 2:
            continue
        target = t.amount_usd if usd else t.amount
        assert target is not None
        got = _search(t, cands, target, tol, usd)
        if got is not None:
            return got, usd
    return None


def _search(t: CashFlow, cands: list[CashFlow], target: Decimal, tol: Decimal, usd: bool
            ) -> list[CashFlow] | None:
    """Bounded depth-first search over ``cands`` (largest first) for the best-fitting set.

    A branch ends as soon as its slots left, filled with the largest values left, cannot
    reach the target, or its sum passes it; at most ``LUMP_MAX_STEPS`` nodes are visited.
    """
    def val(o: CashFlow) -> Decimal:
        v = o.amount_usd if usd else o.amount
        assert v is not None
        return v

    items = sorted((o for o in cands if val(o) > 0), key=lambda o: (-val(o), o.key))
    vals = [val(o) for o in items]
    lo, hi = target * (1 - tol), (target / (1 - tol) if tol < 1 else target * 10**9)
    prefix = [Decimal(0)]
    for v in vals:
        prefix.append(prefix[-1] + v)
    n = len(vals)
    best: list[Any] = [None, None]  # score, records
    steps = [0]
    chosen: list[int] = []

    def visit(start: int, total: Decimal) -> None:
        slots = LUMP_MAX_PARTS - len(chosen)
        for i in range(start, n):
            if steps[0] >= LUMP_MAX_STEPS:
                return
            steps[0] += 1
            if total + prefix[min(n, i + slots)] - prefix[i] < lo:
                return  # the largest values left cannot reach the target
            s = total + vals[i]
            if s > hi:
                continue  # too big; smaller ones follow
            chosen.append(i)
            if len(chosen) >= 2 and s >= lo:
                recs = [items[k] for k in chosen]
                diff = abs(s - target) / max(s, target)
                days = sum(abs((r.value_date - t.value_date).days) for r in recs)  # type: ignore[operator]
                score = (diff, len(recs), days, sorted(r.key for r in recs))
                if diff <= tol and (best[0] is None or score < best[0]):
                    best[0], best[1] = score, recs
            if slots > 1:
                visit(i + 1, s)
            chosen.pop()

    visit(0, Decimal(0))
    return best[1]


def _lump_matches(t: CashFlow, parts: list[CashFlow], usd: bool, t_is_mirror: bool,
                  method: str = "lump") -> list[Match]:
    parts = sorted(parts, key=lambda o: o.key)
    if t_is_mirror:  # several tranches, one receipt (or one aggregator report)
        return [Match(d, t, method, d.amount, d.amount_usd) for d in parts]
    weights = [(o.amount_usd if usd else o.amount) or Decimal(0) for o in parts]
    amounts = split_exact(t.amount, weights)
    usds = (split_exact(t.amount_usd, weights) if t.amount_usd is not None
            else [None] * len(parts))
    return [Match(t, f, method, a, u) for f, a, u in zip(parts, amounts, usds, strict=True)]


def split_exact(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """``total`` split in proportion to ``weights`` (positive), to the cent or the total's
    finer unit: floors, then the units left to the largest remainders (earliest first on
    ties), so the parts sum exactly to ``total``."""
    e = min(-2, int(total.normalize().as_tuple().exponent))  # type: ignore[arg-type]
    units = int(total.scaleb(-e))
    we = min(int(w.normalize().as_tuple().exponent) for w in weights)  # type: ignore[arg-type]
    ws = [int(w.scaleb(-we)) for w in weights]
    whole = sum(ws)
    floors = [units * w // whole for w in ws]
    rest = units - sum(floors)
    order = sorted(range(len(ws)), key=lambda i: (-(units * ws[i] % whole), i))
    for i in order[:rest]:
        floors[i] += 1
    return [Decimal(u).scaleb(e) for u in floors]


def _specific(a: tuple[str, str], b: tuple[str, str]) -> tuple[str, str]:
    return a if a[1] or not b[1] else b


def build_rows(flows: list[CashFlow], cfg: TrailConfig) -> list[dict[str, Any]]:
    """Movement rows (without ids) for these cash flows."""
    pairs = pair(flows, cfg)
    rows = []
    for p in pairs:
        rows.append(_row(p.canonical, p.mirror, p.method, _specific(p.canonical.src, p.mirror.src),
                         _specific(p.mirror.dst, p.canonical.dst), p.amount, p.amount_usd))
    matched = {p.canonical.id for p in pairs} | {p.mirror.id for p in pairs}
    for fl in flows:
        if fl.id in matched:
            continue
        rows.append(_row(fl, None, "single", fl.src, fl.dst, fl.amount, fl.amount_usd))
    return rows


def _stored(g: tuple[str, str]) -> tuple[str, str]:
    """A group (src org, dst org) as the movement table stores it (its columns' widths)."""
    return g[0][:ORG_WIDTH], g[1][:ORG_WIDTH]


def _row(c: CashFlow, mirror: CashFlow | None, method: str, src: tuple[str, str],
         dst: tuple[str, str], amount: Decimal, amount_usd: Decimal | None) -> dict[str, Any]:
    other = mirror or c
    return {
        "flow_id": c.id, "mirror_flow_id": mirror.id if mirror else None, "method": method,
        "kind": "expenditure" if c.kind is FlowKind.EXPENDITURE else "transfer",
        "src_org": src[0][:ORG_WIDTH], "src_activity": src[1][:ACTIVITY_WIDTH],
        "dst_org": dst[0][:ORG_WIDTH], "dst_activity": dst[1][:ACTIVITY_WIDTH],
        "amount": amount, "currency": c.currency, "amount_usd": amount_usd,
        "value_date": c.value_date, "earmarking": c.earmarking or other.earmarking,
        "recipient_country": c.country or other.country, "sector_code": c.sector or other.sector,
        # a lump is several movements of one report: each keeps a key of its own
        "sort_key": c.key + "|" + other.key if method in ("lump", "cross-source") else c.key,
    }


#: Flows a full rebuild holds in its spill buffers before writing them out (all buckets).
SPILL_BUFFER = 100_000
#: The rebuild's (src org, dst org) groups are spread over this many buckets: a bucket's
#: flows are all that is held at once while pairing (about 1/BUCKETS of the paired kinds).
BUCKETS = 256
#: Movement rows written per chunk.
WRITE_CHUNK = 50_000


class _Spill:
    """Disbursements and incoming funds, kept on disk by bucket of their (src org, dst org)
    group, each with its place in the read (``seq``) so a bucket is paired in the order
    :func:`build_rows` would see its flows (a stable sort on equal content keys)."""

    def __init__(self, buckets: int) -> None:
        self.n = buckets
        self.buf: list[list[tuple]] = [[] for _ in range(buckets)]
        self.held = 0
        self.dir: tempfile.TemporaryDirectory[str] | None = None
        self.files: dict[int, Any] = {}

    def add(self, seq: int, fl: CashFlow) -> None:
        # a stable hash (not Python's, salted per process): the same buckets every run
        b = zlib.crc32(f"{fl.src[0]}\x00{fl.dst[0]}".encode()) % self.n
        self.buf[b].append((seq, fl.id, fl.kind, fl.src, fl.dst, fl.in_activity, fl.amount,
                            fl.currency, fl.amount_usd, fl.value_date, fl.earmarking,
                            fl.country, fl.sector, fl.key, fl.payer, fl.payee, fl.aggregated))
        self.held += 1
        if self.held >= SPILL_BUFFER:
            self.flush()

    def flush(self) -> None:
        if self.dir is None:
            self.dir = tempfile.TemporaryDirectory(prefix="fundtrack-movements-")
        for b, recs in enumerate(self.buf):
            if recs:
                fh = self.files.get(b)
                if fh is None:
                    fh = self.files[b] = open(os.path.join(self.dir.name, str(b)), "w+b")  # noqa: SIM115
                pickle.dump(recs, fh, pickle.HIGHEST_PROTOCOL)
                self.buf[b] = []
        self.held = 0

    def buckets(self) -> Iterator[list[tuple[int, CashFlow]]]:
        """Each bucket's flows as (seq, flow), in read order; the files are removed after."""
        try:
            for b in range(self.n):
                recs: list[tuple] = []
                fh = self.files.get(b)
                if fh is not None:
                    fh.seek(0)
                    while True:
                        try:
                            recs.extend(pickle.load(fh))
                        except EOFError:
                            break
                    fh.close()
                recs.extend(self.buf[b])
                self.buf[b] = []
                if recs:
                    yield [(r[0], CashFlow(*r[1:])) for r in recs]
        finally:
            for fh in self.files.values():
                fh.close()
            if self.dir is not None:
                self.dir.cleanup()


class _Writer:
    """Movement rows out in chunks (ids from the table's sequence), each chunk also kept
    as the attribution engine's records when ``keep`` is asked for."""

    def __init__(self, conn: Connection, keep: list[Any] | None, cfg: TrailConfig) -> None:
        self.conn = conn
        self.keep = keep
        self.cfg = cfg
        self.shared: dict[Any, Any] = {}  # equal accounts and codes: one object each
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self.doubles = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        write(self.conn, rows)
        self.count += len(rows)
        self.doubles += sum(1 for r in rows if r["mirror_flow_id"])
        if self.keep is not None:
            from fundtrack.derived.trail.attribution import moves_from_rows

            # keys are ranked once the table is whole (:meth:`rank_kept`)
            self.keep.extend(moves_from_rows(rows, self.cfg, self.shared, keys=False))

    def rank_kept(self) -> None:
        if self.keep:
            from fundtrack.derived.trail.attribution import rank_keys

            rank_keys(self.conn, self.keep)


def _match_row(p: Match) -> dict[str, Any]:
    return _row(p.canonical, p.mirror, p.method, _specific(p.canonical.src, p.mirror.src),
                _specific(p.mirror.dst, p.canonical.dst), p.amount, p.amount_usd)


def _single_row(fl: CashFlow) -> dict[str, Any]:
    return _row(fl, None, "single", fl.src, fl.dst, fl.amount, fl.amount_usd)


def rebuild(conn: Connection, cfg: TrailConfig | None = None,
            keep: list[Any] | None = None, pending: list[Rebuilds] | None = None,
            buckets: int = BUCKETS, stats: dict[str, int] | None = None) -> dict[str, Any]:
    """Rebuild every movement from the current ledger, streamed: the same rows as
    :func:`build_rows` over every cash flow (ids aside), without holding them all.

    One read of the cash flows: expenditure (never paired) is written as it comes; the
    disbursements and incoming funds go to disk by bucket of their (src org, dst org)
    group (:class:`_Spill`), and each bucket is then paired on its own (:func:`pair_groups`:
    a group's flows are all in one bucket). :func:`cross_source` pairs across groups (by
    payer and payee): the disbursements left unpaired whose (payer, payee) an aggregator's
    disbursement also names are held back and paired at the end (none when no aggregator
    reports). Held at once: the spill buffer, one bucket, those held back.

    ``keep``: receives the movements written as the attribution engine's records
    (:class:`~fundtrack.derived.trail.engine.Move`), so the attribution that follows need
    not read them back (their keys are ranks:
    :func:`~fundtrack.derived.trail.attribution.rank_keys`); ``pending``: receives the
    table's index builds instead of running them; ``stats``: receives ``flows`` (cash
    flows read) and ``peak_held`` (most disbursements and incoming funds held in memory at
    once, spill buffer included) and ``held_back`` (those kept for :func:`cross_source`)."""
    cfg = cfg or TrailConfig()
    # attribution first: on SQLite its rows go with the movements they point at.
    dialect.empty(conn, "attribution", "movement")
    t0 = time.perf_counter()
    acts = reported_activities(conn)
    builds = drop_for_load(conn, Movement.__table__)
    out = _Writer(conn, keep, cfg)
    spill = _Spill(max(1, buckets))
    agg_keys: set[tuple[str, str]] = set()  # (payer, payee) an aggregator's report names
    n_flows = peak = 0
    for seq, fl in enumerate(_stream_cash_flows(conn, acts)):
        n_flows += 1
        if fl.kind is FlowKind.EXPENDITURE:
            out.add(_single_row(fl))
            continue
        if fl.aggregated and fl.kind is FlowKind.DISBURSEMENT and fl.payer and fl.payee:
            agg_keys.add((fl.payer, fl.payee))
        spill.add(seq, fl)
        peak = max(peak, spill.held)
    out.flush()
    t1 = time.perf_counter()
    held_back: list[tuple[int, CashFlow]] = []
    for bucket in spill.buckets():
        peak = max(peak, len(bucket) + len(held_back))
        pairs = pair_groups([fl for _, fl in bucket], cfg)
        used = {p.canonical.id for p in pairs} | {p.mirror.id for p in pairs}
        for p in pairs:
            out.add(_match_row(p))
        for s, fl in bucket:
            if fl.id in used:
                continue
            if agg_keys and fl.kind is FlowKind.DISBURSEMENT and (fl.payer, fl.payee) in agg_keys:
                held_back.append((s, fl))
            else:
                out.add(_single_row(fl))
        del bucket, pairs
    held_back.sort(key=itemgetter(0))
    n_held = len(held_back)
    rest = [fl for _, fl in held_back]
    del held_back
    crossed = cross_source(rest, cfg)
    used = {p.canonical.id for p in crossed} | {p.mirror.id for p in crossed}
    for p in crossed:
        out.add(_match_row(p))
    for fl in rest:
        if fl.id not in used:
            out.add(_single_row(fl))
    del rest, crossed
    out.flush()
    out.rank_kept()
    t2 = time.perf_counter()
    if pending is not None:  # the caller starts them when it has Python work to overlap
        pending.append(builds)
    else:
        builds.run()
    if stats is not None:
        stats.update(flows=n_flows, peak_held=peak, held_back=n_held)
    return {"movements": out.count, "double_counted": out.doubles,
            "seconds_movements_load_and_spill": round(t1 - t0, 3),
            "seconds_movements_pair_and_write": round(t2 - t1, 3),
            "seconds_movements_indexes": round(time.perf_counter() - t2, 3)}


def _stream_cash_flows(conn: Connection, acts: dict[str, str]) -> Iterator[CashFlow]:
    """Every current cash flow, one at a time (PostgreSQL: a server-side cursor of plain
    tuples; SQLite: chunks by primary key), so writing may go on between them."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        with raw.cursor(name="cash_flows_stream") as cur:  # type: ignore[union-attr]
            cur.itersize = 20_000
            cur.execute(_cash_flows_sql())
            for r in cur:
                yield _cash_flow(r, acts)
        return
    f = m.Flow.__table__
    last = 0
    while True:
        chunk = load_cash_flows(conn, acts, f.c.id > last, order_limit=20_000)
        if not chunk:
            return
        last = max(fl.id for fl in chunk)
        yield from chunk


def write(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give the rows ids and store them (PostgreSQL: one COPY stream of text lines)."""
    for r, i in zip(rows, new_ids(conn, "movement", len(rows)), strict=True):
        r["id"] = i
    if conn.dialect.name == "postgresql" and rows:
        copy_dicts(conn, "movement", rows, MOVEMENT_COLS)
        return
    for i in range(0, len(rows), 50_000):
        bulk_insert(conn, Movement.__table__, rows[i:i + 50_000])


MOVEMENT_COLS = [c.name for c in Movement.__table__.columns]


def _has_aggregated(conn: Connection) -> bool:
    """Whether any cash flow, current or replaced, is an aggregator's report (one index
    probe): only then can a movement be, or have been, cross-source."""
    f = m.Flow.__table__
    return conn.execute(select(f.c.id).where(
        f.c.reporting_org_ref.in_(sorted(_aggregators())),
        f.c.kind.in_(CASH)).limit(1)).first() is not None


def _group_movements(conn: Connection, groups: list[tuple[str, str]], receivers: list[str]
                     ) -> list[Any]:
    """The movements (every column) of these (src org, dst org) groups and those ending at
    these ``receivers``, by the movement table's indexes: their flows are those of each
    group as of the last update, a superset of those it holds now but for the flows this
    batch moved there (the caller's seed).

    A movement of two reports sits in their common group, and rows are rebuilt per group,
    but for :func:`cross_source`: it pairs a publisher's report with an aggregator's of the
    same payer and payee, and a payer is not a group's src org (the publisher's report sits
    under its reporter, FTS's under the payer it names). Both share the receiver, so when
    aggregators report at all the caller passes every receiver of its groups, and all the
    movements into it are read (bound: the movements into each receiver, by its index)."""
    t = Movement.__table__
    by_src: dict[str, list[str]] = defaultdict(list)
    for s, d in groups:
        by_src[s].append(d)
    wheres: list[Any] = []
    for s in sorted(by_src):
        dsts = by_src[s]
        wheres += [(t.c.src_org == s) & t.c.dst_org.in_(dsts[i:i + 500])
                   for i in range(0, len(dsts), 500)]
    wheres += [t.c.dst_org.in_(receivers[i:i + 500]) for i in range(0, len(receivers), 500)]
    return [r for where in wheres for r in conn.execute(select(t).where(where))]


#: Date ranges of one side's fresh flows asked of the database in :func:`_joinable_groups`
#: before they are taken as one range from the first to the last (a superset: exact still).
_MAX_RANGES = 20


def _joinable_groups(conn: Connection, groups: list[tuple[str, str]],
                     fresh: dict[tuple[str, str], list[CashFlow]], cfg: TrailConfig
                     ) -> set[tuple[str, str]]:
    """Of these groups, those where an earlier flow may join a flow of the batch in one
    :func:`clusters` cluster; the others' clusters that hold the batch's flows hold only
    them, and the groups need not be read (an upload into a pair of 100,000 earlier
    flows none of which it can pair with reads none of them).

    Asked of the movement table, one probe a group: an earlier current flow of the
    group is a movement of it alone (``single``) or one of a pair's. Either of a pair
    counts as joinable (a pair's mirror's date and accounts are not in its row). A single
    one joins a fresh flow of the other kind (disbursement, incoming funds) dated within
    ``match_window_days`` of it, or naming the same source or destination activity (the
    link join; the group's organisations are the same by definition). The dates are
    asked as at most :data:`_MAX_RANGES` merged ranges, beyond that as one (a superset of
    the joins only ever reads more). Spending and other kinds never join.
    """
    t, f = Movement.__table__, m.Flow.__table__
    window = timedelta(days=cfg.match_window_days)
    out: set[tuple[str, str]] = set()
    for g in groups:
        wheres: list[Any] = [t.c.mirror_flow_id.is_not(None)]
        for kind, other in ((FlowKind.DISBURSEMENT, FlowKind.INCOMING_FUNDS),
                            (FlowKind.INCOMING_FUNDS, FlowKind.DISBURSEMENT)):
            mine = [fl for fl in fresh[g] if fl.kind is kind]
            if not mine:
                continue
            joins: list[Any] = []
            ranges: list[list[date]] = []
            for when in sorted({fl.value_date for fl in mine if fl.value_date is not None}):
                lo, hi = _around(when, window)
                if ranges and lo <= ranges[-1][1]:
                    ranges[-1][1] = hi
                else:
                    ranges.append([lo, hi])
            if len(ranges) > _MAX_RANGES:
                ranges = [[ranges[0][0], ranges[-1][1]]]
            joins += [t.c.value_date.between(lo, hi) for lo, hi in ranges]
            srcs = sorted({fl.src[1][:ACTIVITY_WIDTH] for fl in mine if fl.src[1]})
            dsts = sorted({fl.dst[1][:ACTIVITY_WIDTH] for fl in mine if fl.dst[1]})
            if srcs:
                joins.append(t.c.src_activity.in_(srcs))
            if dsts:
                joins.append(t.c.dst_activity.in_(dsts))
            if joins:
                wheres.append((f.c.kind == other) & or_(*joins))
        src, dst = _stored(g)
        q = (select(t.c.id).select_from(t.join(f, f.c.id == t.c.flow_id))
             .where(t.c.src_org == src, t.c.dst_org == dst, or_(*wheres))
             .limit(1))
        if conn.execute(q).first() is not None:
            out.add(g)
    return out


def _load_by_ids(conn: Connection, acts: dict[str, str], ids: Iterable[int]
                 ) -> list[CashFlow]:
    """The current cash flows among these ids (by primary key)."""
    f = m.Flow.__table__
    wanted = sorted(ids)
    if conn.dialect.name == "postgresql" and isinstance(acts, ActivityOrgs):
        return _cash_flows_by_id_pg(conn, acts, wanted) if wanted else []
    out: list[CashFlow] = []
    for i in range(0, len(wanted), 1000):
        out.extend(load_cash_flows(conn, acts, f.c.id.in_(wanted[i:i + 1000])))
    return out


def _old_movements(conn: Connection, flow_ids: set[int]) -> list[Any]:
    t = Movement.__table__
    ids = sorted(flow_ids)
    rows: dict[int, Any] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for r in conn.execute(select(t)  # every column: an unchanged movement is kept
                              .where(t.c.flow_id.in_(chunk) | t.c.mirror_flow_id.in_(chunk))):
            rows[r.id] = r
    return list(rows.values())


def update(conn: Connection, batch_id: int, cfg: TrailConfig | None = None,
           extra: Iterable[int] = ()) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Incremental: rebuild the movements of the organisation pairs a batch touched.

    Only the flows of those pairs are loaded, by the movement table's (src org, dst org)
    indexes and the flows' ids, not every flow of their organisations: the cost follows
    the pairs, not the organisations (a donor paying one supplier among 600k payments to
    it reads that pair only). This relies on the movements being those of a rebuild
    before the batch (every update keeps them so; an interrupted one leaves its steps
    stale, and the next start rebuilds). A pair whose receiver nobody named is never paired
    (:func:`pair`, :func:`cross_source`): only its flows the batch touched are rebuilt.
    Earlier flows naming the batch's activities are found through their links
    (``trail_link``, updated before this step). ``extra``: ids of earlier flows whose
    canonical provider or receiver the identity step changed; their pairs (old and new)
    are rebuilt too. Returns counts and the accounts whose money may have changed (for
    attribution).

    Within the pairs read, only what the batch can change is re-paired: spending (and,
    without aggregators, any flow :func:`pair` skips) is a movement alone, so its pair is
    not read for it; without aggregators only the :func:`clusters` of a pair that hold a
    flow of the batch (or a pair an earlier flow left or changed in, whole) are re-paired,
    the others keep their movements (:func:`_touched_clusters`); a pair holding the batch's
    flows alone that no earlier flow can join is not read at all (:func:`_joinable_groups`).
    """
    cfg = cfg or TrailConfig()
    f, a, t = m.Flow.__table__, m.Activity.__table__, Movement.__table__
    lt = TrailLink.__table__
    acts = ActivityOrgs(conn)
    gone_ids = set(conn.execute(select(f.c.id).where(f.c.superseded_by == batch_id)).scalars())
    idents = sorted(set(conn.execute(select(a.c.iati_identifier).where(
        (a.c.batch_id == batch_id) | (a.c.superseded_by == batch_id))).scalars()))
    seed: dict[int, CashFlow] = {fl.id: fl for fl in load_cash_flows(
        conn, acts, f.c.batch_id == batch_id)}
    fresh = set(seed)  # the batch's own flows: new rows, no movement yet
    extra_ids = sorted(set(extra))
    for i in range(0, len(extra_ids), 500):
        for fl in load_cash_flows(conn, acts, f.c.id.in_(extra_ids[i:i + 500])):
            seed[fl.id] = fl
    for i in range(0, len(idents), 500):
        chunk = idents[i:i + 500]
        cur_acts = sorted(conn.execute(select(a.c.id).where(a.c.iati_identifier.in_(chunk),
                                                            current(a))).scalars())
        # the flows naming them, by the link index (no index on the flow's activity-id
        # columns: that was a scan of every flow): the links step ran first and holds a
        # link per current flow's provider- and receiver-activity-id, as reported. The
        # ids as lists: an OR with a subquery is planned as a join of every flow
        naming = sorted(set(conn.execute(select(lt.c.flow_id).where(
            lt.c.kind.in_(("provider-activity", "receiver-activity")),
            lt.c.target_ref.in_(chunk))).scalars()))
        wheres: list[Any] = [f.c.id.in_(naming[k:k + 1000])
                             for k in range(0, len(naming), 1000)]
        wheres += [f.c.activity_id.in_(cur_acts[k:k + 1000])
                   for k in range(0, len(cur_acts), 1000)]
        for where in wheres:
            for fl in load_cash_flows(conn, acts, where):
                seed[fl.id] = fl
    groups: set[tuple[str, str]] = set()
    by_group: dict[tuple[str, str], dict[int, CashFlow]] = defaultdict(dict)
    alone: dict[int, CashFlow] = {}  # flows nothing can pair: no group read for them
    known: set[int] = set()
    cross = _has_aggregated(conn)

    def isolated(fl: CashFlow) -> bool:
        """A flow no pass can pair with another: spending always (neither ``pair`` nor
        ``cross_source`` takes it), and without aggregators every flow ``pair`` skips
        (:func:`pairable`). Its movement is its own; its group is not read for it."""
        return fl.kind is FlowKind.EXPENDITURE or (not cross and not pairable(fl))

    def take(flows: Iterable[CashFlow]) -> bool:
        """File flows under their current group (a group new here is rebuilt too)."""
        grew = False
        for fl in flows:
            known.add(fl.id)
            if isolated(fl):
                alone[fl.id] = fl
                continue
            g = (fl.src[0], fl.dst[0])
            by_group[g][fl.id] = fl
            if g not in groups:
                groups.add(g)
                grew = True
        return grew

    take(seed.values())

    def fetch(ids: set[int]) -> list[CashFlow]:
        """The current cash flows among ``ids`` not fetched before."""
        todo = ids - known - gone_ids
        known.update(todo)
        return _load_by_ids(conn, acts, todo)

    loaded: set[tuple[str, str]] = set()
    dead: dict[int, Any] = {}
    scanned: set[str] = set()  # receivers whose every movement is read (cross-source)
    covered: set[int] = set()  # flows whose every movement is read with their group's
    asked: set[int] = set()  # flows whose movements were looked up by id
    # groups of the batch's flows alone that no earlier flow can join (_joinable_groups):
    # not read. One goes back to being read if an earlier flow of it turns up.
    thin: set[tuple[str, str]] = set()
    read_back: set[tuple[str, str]] = set()
    bounded = not cross and cfg.match_window_days < UNDATED_DAYS
    while True:
        # every flow of a group that can pair (its receiver named), found through the
        # movements of the group: the table holds each current flow once, under its
        # group (cross-source: every group of the receiver; see _group_movements)
        todo = sorted(g for g in groups if g[1] and g not in loaded)
        loaded.update(todo)
        if bounded:
            alone_new = [g for g in todo if g not in thin and g not in read_back
                         and by_group[g].keys() <= fresh]
            joinable = _joinable_groups(conn, alone_new, {
                g: list(by_group[g].values()) for g in alone_new}, cfg)
            thin.update(g for g in alone_new if g not in joinable)
            todo = [g for g in todo if g not in thin]
        receivers = sorted({g[1] for g in todo} - scanned) if cross else []
        scanned.update(receivers)
        # a group's movements hold every movement of its flows (with ``cross``, their
        # cross-source ones end at a receiver read whole): none is looked up again
        got = _group_movements(conn, todo, receivers)
        covered.update(i for r in got for i in (r.flow_id, r.mirror_flow_id) if i is not None)
        grew = take(fetch(covered))
        members = {i for g in groups for i in by_group.get(g, {})} | set(alone)
        wanted: set[int] = set()
        lookup = (members | gone_ids) - covered - asked
        asked.update(lookup)
        for r in got + _old_movements(conn, lookup):
            if r.id in dead:
                continue
            dead[r.id] = r
            wanted.update(i for i in (r.flow_id, r.mirror_flow_id) if i is not None)
            g = (r.src_org, r.dst_org)
            # an expenditure's movement is its flow's alone (a flow's kind never
            # changes); without aggregators a group naming no one on a side pairs nothing
            if g not in groups and r.kind != "expenditure" and (cross or all(g)):
                groups.add(g)
                grew = True
        # the current flows of every replaced movement are rebuilt with it
        grew = take(fetch(wanted)) or grew
        dead_groups = {(r.src_org, r.dst_org) for r in dead.values()} if thin else set()
        back = {g for g in thin if by_group[g].keys() - fresh
                or _stored(g) in dead_groups}
        if back:  # an earlier flow of the group is in play after all: read it whole
            thin -= back
            read_back |= back
            loaded -= back
            grew = True
        if not grew:
            break
    members_flows = [fl for g in sorted(groups) for fl in by_group.get(g, {}).values()]
    members_flows += alone.values()
    if not cross:  # only the clusters the batch touched (:func:`clusters`)
        members_flows, dead = _touched_clusters(members_flows, dead, fresh, set(seed),
                                                gone_ids, cfg)
    rebuilt = build_rows(members_flows, cfg)
    rows, relinked = _keep_unchanged(rebuilt, dead)
    dead_ids = sorted(dead)
    for i in range(0, len(dead_ids), 1000):
        conn.execute(delete(t).where(t.c.id.in_(dead_ids[i:i + 1000])))
    mt = cast(Table, t)
    for mid, flow_id, mirror_id in relinked:
        conn.execute(sa_update(mt).where(mt.c.id == mid).values(flow_id=flow_id,
                                                              mirror_flow_id=mirror_id))
    write(conn, rows)
    # the accounts whose movements changed: both ends of a transfer, the spender of an
    # expenditure (spending is no input to whoever it names as receiver)
    touched: set[tuple[str, str]] = set()
    for r in dead.values():
        touched.add((r.src_org, r.src_activity))
        if r.kind != "expenditure":
            touched.add((r.dst_org, r.dst_activity))
    for row in rows:
        touched.add((row["src_org"], row["src_activity"]))
        if row["kind"] != "expenditure":
            touched.add((row["dst_org"], row["dst_activity"]))
    ident_set = set(idents)
    for fl in seed.values():
        if fl.src[1] in ident_set:
            touched.add(fl.src)
    return {"movements": len(rebuilt), "movements_replaced": len(dead)}, touched


def _touched_clusters(flows: list[CashFlow], dead: dict[int, Any], fresh: set[int],
                      seeds: set[int], gone: set[int], cfg: TrailConfig
                      ) -> tuple[list[CashFlow], dict[int, Any]]:
    """Of the current flows and old movements an update read (no aggregator's flow
    anywhere; every group read whole but those holding the batch's flows alone that no
    earlier flow can join, :func:`_joinable_groups`), the flows to re-pair and the movements they
    replace: the :func:`clusters` holding a flow of the batch (``fresh``: new rows,
    no movement yet), the whole group of every earlier flow that changed or went
    (``gone``, or among ``seeds`` with another group than its old movements': its old
    neighbours are not known one by one, only its old group, from its old movement), and
    onward every cluster a replaced movement reaches.

    An earlier flow among ``seeds`` (one naming an activity of the batch, or whose party
    the identity step moved) in the group of its old movements is unchanged for pairing:
    without aggregators, what ``pair`` reads of a flow is its own row but for the two
    organisations, i.e. its group (sides naming an activity take its reporter, which
    may now be known; a party may now be another organisation).

    Exact: a cluster left out holds no flow of the batch and no changed one, so its flows
    and the joins among them are as before the batch; no flow outside it joins it now
    (it is a whole cluster of the current flows of its group) nor did before (a changed
    flow's old group is rebuilt whole), so it was a cluster before too, with the same
    flows, and its movements (a rebuild's, the update's premise) are the matches ``pair``
    gives it alone, those a rebuild gives it now. Every movement of a flow re-paired goes;
    every current flow of a movement that goes is re-paired.
    """
    def gkey(fl: CashFlow) -> tuple[str, str]:
        return _stored((fl.src[0], fl.dst[0]))

    def ids(r: Any) -> set[int]:
        return {r.flow_id} if r.mirror_flow_id is None else {r.flow_id, r.mirror_flow_id}

    old_group: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for r in dead.values():
        for i in ids(r) & seeds:
            old_group[i].add((r.src_org, r.dst_org))
    changed = gone | {fl.id for fl in flows if fl.id in seeds and fl.id not in fresh
                      and old_group.get(fl.id) != {gkey(fl)}}
    whole = {gkey(fl) for fl in flows if fl.id in changed}
    whole.update((r.src_org, r.dst_org) for r in dead.values() if ids(r) & changed)
    redo: set[int] = set()
    cluster_of: dict[int, list[CashFlow]] = {}
    for c in clusters([fl for fl in flows if gkey(fl) not in whole], cfg):
        if any(fl.id in fresh or fl.id in changed for fl in c):
            redo.update(fl.id for fl in c)
        else:
            for fl in c:
                cluster_of[fl.id] = c
    redo.update(fl.id for fl in flows if gkey(fl) in whole)
    out = {}
    grew = True
    while grew:  # a movement that goes takes every cluster it touches with it
        grew = False
        for k, r in dead.items():
            if k in out or not ids(r) & (redo | changed):
                continue
            out[k] = r
            for i in ids(r) - redo:
                if i in cluster_of:
                    redo.update(fl.id for fl in cluster_of[i])
                    grew = True
    return [fl for fl in flows if fl.id in redo], out


_COMPARED = itemgetter(*(c for c in MOVEMENT_COLS
                         if c not in ("id", "flow_id", "mirror_flow_id", "amount", "amount_usd")))


def _content(row: Any) -> tuple:
    """A movement's columns but its id and flows, amounts as stored (canonical text)."""
    usd = row["amount_usd"]
    return (*_COMPARED(row), to_text(row["amount"]), None if usd is None else to_text(usd))


def _keep_unchanged(rebuilt: list[dict[str, Any]], dead: dict[int, Any]
                    ) -> tuple[list[dict[str, Any]], list[tuple[int, int, int | None]]]:
    """Match rebuilt movements to the old ones of their groups. A movement rebuilt as it
    was stays, with its id and its parts (the rule reads neither ids nor flows); one that
    differs only in its flows (a re-imported report, same money) is pointed at the new
    flows. Matched old movements leave ``dead``. Returns (the rows to insert, the
    (id, flow, mirror flow) to point anew)."""
    by_content: dict[tuple, list[Any]] = defaultdict(list)
    for r in dead.values():
        by_content[_content(r._mapping)].append(r)
    unmatched: list[dict[str, Any]] = []
    relink: list[tuple[dict[str, Any], tuple]] = []
    for row in rebuilt:  # the same flows first: a movement that did not change at all
        key = _content(row)
        olds = by_content.get(key)
        hit = next((r for r in olds or () if r.flow_id == row["flow_id"]
                    and r.mirror_flow_id == row["mirror_flow_id"]), None)
        if hit is not None:
            olds.remove(hit)  # type: ignore[union-attr]
            del dead[hit.id]
        else:
            relink.append((row, key))
    relinked = []
    for row, key in relink:
        olds = by_content.get(key)
        if olds:
            hit = olds.pop()
            del dead[hit.id]
            relinked.append((hit.id, row["flow_id"], row["mirror_flow_id"]))
        else:
            unmatched.append(row)
    return unmatched, relinked
