"""Writing to the ledger: bulk loading a batch, the set-based merge, and revert.

This module knows tables, not file formats. :class:`LedgerWriter` turns canonical
records into rows and writes them in bulk inside the caller's transaction: PostgreSQL
gets ``COPY``, SQLite multi-row ``INSERT``. :func:`supersede` then marks, in a handful
of set-based statements, the rows of earlier batches that this batch replaces.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    select,
    update,
)
from sqlalchemy.orm import aliased

from fundtrack.config import get_settings
from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.db.bulk import ID_BLOCK, bulk_insert, converters, max_id, new_ids
from fundtrack.db.metadata import metadata
from fundtrack.ledger import tables as m
from fundtrack.ledger.fx import to_usd
from fundtrack.records import (
    ActivityRecord,
    BudgetRecord,
    FlowRecord,
    Issue,
    OrganisationRecord,
    OrgRef,
    Severity,
)

FLUSH_ROWS = 4_000
MAX_REF = 200


#: Key of the PostgreSQL advisory lock that serialises writers to the ledger.
LEDGER_LOCK_KEY = 1325_2000


def lock_ledger(conn: Connection) -> None:
    """Serialise ledger writers (imports, reverts, recomputes) until the transaction ends.

    Without it two concurrent uploads of the same file could both pass the sha256 check,
    and two versions of one activity could both stay current. PostgreSQL: a transaction-
    scoped advisory lock (readers are never blocked). SQLite: the ``BEGIN IMMEDIATE`` that
    starts every write transaction already holds the database's write lock.

    Writers also leave the API's statement timeout (set per connection for queries) for
    ``FUNDTRACK_WRITE_STATEMENT_TIMEOUT_MS`` (default none) until the transaction ends, so
    an upload through the API is not cancelled half-way through refreshing derived tables,
    nor while it waits here for another writer.
    """
    dialect.writers_lock(conn, LEDGER_LOCK_KEY, get_settings().write_statement_timeout_ms)


def _ref(org: OrgRef | None) -> str | None:
    if org is None or not org.ref:
        return None
    return org.ref.strip()[:MAX_REF] or None


#: Kinds of file-local ids (:class:`RowBuilder`) that the writer maps to primary keys.
ACTIVITY, FLOW = "activity", "flow"


@dataclass(frozen=True)
class RowSpec:
    """How one table's rows travel: ``refs`` columns hold file-local ids of ``ACTIVITY``
    or ``FLOW`` rows (mapped to primary keys by the writer), then ``batch_id`` and
    ``superseded_by`` if ``batched`` (filled in by the writer), then ``cols`` as built."""

    table: Table
    refs: tuple[tuple[str, str], ...]
    batched: bool
    cols: tuple[str, ...]


_A = m.Activity.__table__
SPECS: tuple[RowSpec, ...] = (
    RowSpec(_A, (("id", ACTIVITY),), True, (
        "iati_identifier", "reporting_org_ref", "reporting_org_name", "reporting_org_type",
        "title", "description", "status", "start_planned", "start_actual", "end_planned",
        "end_actual", "default_currency", "humanitarian", "hierarchy", "last_updated",
        "iati_version", "source_location")),
    RowSpec(m.ActivityCountry.__table__, (("activity_id", ACTIVITY),), False,
            ("code", "percentage")),
    RowSpec(m.ActivityRegion.__table__, (("activity_id", ACTIVITY),), False,
            ("vocabulary", "code", "percentage")),
    RowSpec(m.ActivitySector.__table__, (("activity_id", ACTIVITY),), False,
            ("vocabulary", "code", "percentage")),
    RowSpec(m.PolicyMarker.__table__, (("activity_id", ACTIVITY),), False,
            ("vocabulary", "code", "significance", "vocabulary_uri")),
    RowSpec(m.ParticipatingOrg.__table__, (("activity_id", ACTIVITY),), False,
            ("ref", "name", "role", "type", "activity_ref")),
    RowSpec(m.RelatedActivity.__table__, (("activity_id", ACTIVITY),), False, ("type", "ref")),
    RowSpec(m.ActivityTag.__table__, (("activity_id", ACTIVITY),), False, ("vocabulary", "code")),
    RowSpec(m.Flow.__table__, (("id", FLOW), ("activity_id", ACTIVITY)), True, (
        "reporting_org_ref", "external_id", "ref", "kind", "amount", "currency", "value_date",
        "transaction_date", "amount_usd", "usd_rate", "usd_rate_date", "usd_rate_source",
        "provider_ref", "provider_name", "provider_activity_id", "receiver_ref",
        "receiver_name", "receiver_activity_id", "sector_vocabulary", "sector_code",
        "recipient_country", "recipient_region", "aid_type", "earmarking", "flow_type",
        "finance_type", "tied_status", "disbursement_channel", "humanitarian", "description",
        "extra", "source_location")),
    RowSpec(m.FlowPolicyMarker.__table__, (("flow_id", FLOW),), False,
            ("vocabulary", "code", "significance", "vocabulary_uri")),
    RowSpec(m.FlowParent.__table__, (("flow_id", FLOW),), False, ("parent_external_id",)),
    RowSpec(m.Budget.__table__, (("activity_id", ACTIVITY),), True, (
        "organisation_ref", "kind", "budget_type", "status", "period_start", "period_end",
        "value_date", "amount", "currency", "amount_usd", "usd_rate", "usd_rate_date",
        "usd_rate_source", "provider_ref", "receiver_ref", "receiver_name",
        "recipient_country", "recipient_region", "source_location")),
)
_ACT, _COUNTRY, _REGION, _SECTOR, _PM, _PORG, _RELATED, _TAG, _FLOW, _FPM, _FPARENT, _BUDGET = (
    s.table.name for s in SPECS)


@dataclass
class RowChunk:
    """Rows of one file ready to insert (table name -> value tuples, :data:`SPECS` order),
    and how many file-local activity and flow ids the file has handed out so far."""

    rows: dict[str, list[tuple[Any, ...]]]
    activities: int
    flows: int


class RowBuilder:
    """Turns one file's canonical records into rows: pure, no database.

    Runs in the parse process of a many-file import (so the writer only inserts), or
    beside the writer for a single file. Primary keys are not known here: rows carry
    file-local ids (0, 1, ...) that :class:`LedgerWriter` maps. Values are already what
    the driver stores (``sqlite``: text for Decimal and dates, as :func:`bulk_insert` does).
    Also collects what the batch's end needs: organisations named and described, counts,
    flows left without a USD rate.
    """

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self.rows: dict[str, list[tuple[Any, ...]]] = {s.table.name: [] for s in SPECS}
        self.pending = 0
        self.activities = 0
        self.flows = 0
        self.counts: dict[str, int] = Counter(activities=0, flows=0, budgets=0,
                                              flows_without_usd=0)
        self.orgs: dict[str, dict[str, Any]] = {}
        self.org_records: dict[str, OrganisationRecord] = {}
        self.described_orgs: set[str] = set()
        self.no_rate: Counter[str] = Counter()
        #: Flows without a value date: no ECB rate can be looked up (not the ECB's fault).
        self.undated: Counter[str] = Counter()
        self.convs = {s.table.name: _conversions(s, sqlite) for s in SPECS}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "convs": None}  # functions: rebuilt on the other side

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.convs = {s.table.name: _conversions(s, self.sqlite) for s in SPECS}

    def _add(self, table: str, row: tuple[Any, ...]) -> None:
        convs = self.convs[table]
        if convs:
            values = list(row)
            for i, conv in convs:
                value = values[i]
                if value is not None:  # every converter keeps None as it is
                    values[i] = conv(value)
            row = tuple(values)
        self.rows[table].append(row)
        self.pending += 1

    def take(self) -> RowChunk:
        """The rows built since the last call (and the ids handed out so far)."""
        rows = {name: r for name, r in self.rows.items() if r}
        self.rows = {s.table.name: [] for s in SPECS}
        self.pending = 0
        return RowChunk(rows, self.activities, self.flows)

    def _org(self, org: OrgRef | None) -> None:
        ref = _ref(org)
        if ref is None or org is None:
            return
        known = self.orgs.get(ref)
        if known is None:
            self.orgs[ref] = {"ref": ref, "name": org.name, "type": org.type}
        else:
            known["name"] = known["name"] or org.name
            known["type"] = known["type"] or org.type

    def add_activity(self, a: ActivityRecord) -> None:
        aid = self.activities
        self.activities += 1
        self._org(a.reporting_org)
        self._add(_ACT, (
            aid, a.identifier[:300], _ref(a.reporting_org) or "", a.reporting_org.name,
            a.reporting_org.type, a.title, a.description, a.status, a.start_planned,
            a.start_actual, a.end_planned, a.end_actual, a.default_currency, a.humanitarian,
            a.hierarchy, (a.last_updated or "")[:40] or None, (a.version or "")[:10] or None,
            a.location))
        for c in a.recipient_countries:
            self._add(_COUNTRY, (aid, c.code[:10], c.percentage))
        for r in a.recipient_regions:
            self._add(_REGION, (aid, r.vocabulary, r.code[:20], r.percentage))
        for s in a.sectors:
            self._add(_SECTOR, (aid, s.vocabulary, s.code[:60], s.percentage))
        for p in a.policy_markers:
            self._add(_PM, (aid, p.vocabulary[:10], p.code[:200],
                            (p.significance or None) and p.significance[:10],
                            (p.vocabulary_uri or None) and p.vocabulary_uri[:300]))
        for o in a.participating_orgs:
            self._org(o)
            self._add(_PORG, (aid, _ref(o), o.name, o.role, o.type,
                              (o.activity_id or "")[:300] or None))
        for tag in a.tags:
            self._add(_TAG, (aid, tag.vocabulary, tag.code[:100]))
        for rtype, ref in a.related_activities:
            self._add(_RELATED, (aid, rtype or None, ref[:300]))
        self.counts["activities"] += 1
        for f in a.flows:
            self.add_flow(f, aid, a.reporting_org)
        for b in a.budgets:
            self.add_budget(b, aid, None)

    def add_flow(self, f: FlowRecord, activity_id: int | None,
                 reporting_org: OrgRef | None = None) -> None:
        """``activity_id``: the file-local id of its activity, None outside one."""
        reporting_org = reporting_org or f.reporting_org
        self._org(reporting_org)
        self._org(f.provider)
        self._org(f.receiver)
        conv = to_usd(f.amount, f.currency, f.value_date, f.usd_rate, f.usd_amount)
        if conv is None:
            self.counts["flows_without_usd"] += 1
            if f.value_date is None and f.usd_rate is None and f.usd_amount is None:
                self.undated[f.currency or "(none)"] += 1
            else:
                self.no_rate[f.currency or "(none)"] += 1
        fid = self.flows
        self.flows += 1
        self._add(_FLOW, (
            fid, activity_id, _ref(reporting_org), (f.external_id or "")[:200] or None, f.ref,
            f.kind, f.amount, f.currency, f.value_date, f.transaction_date,
            conv.amount_usd if conv else None, conv.rate if conv else None,
            conv.rate_date if conv else None, conv.source if conv else None,
            _ref(f.provider), f.provider.name, (f.provider.activity_id or "")[:300] or None,
            _ref(f.receiver), f.receiver.name, (f.receiver.activity_id or "")[:300] or None,
            f.sector.vocabulary if f.sector else None, f.sector.code[:60] if f.sector else None,
            f.recipient_country, f.recipient_region, f.aid_type, f.earmarking, f.flow_type,
            f.finance_type, f.tied_status, f.disbursement_channel, f.humanitarian,
            f.description, f.extra or None, f.location))
        for pm in f.policy_markers:
            self._add(_FPM, (fid, pm.vocabulary[:10], pm.code[:200],
                             (pm.significance or None) and pm.significance[:10],
                             (pm.vocabulary_uri or None) and pm.vocabulary_uri[:300]))
        for parent in f.parent_external_ids:
            self._add(_FPARENT, (fid, parent[:200]))
        self.counts["flows"] += 1

    def add_budget(self, b: BudgetRecord, activity_id: int | None, org_ref: str | None) -> None:
        conv = to_usd(b.amount, b.currency, b.value_date or b.period_start)
        self._add(_BUDGET, (
            activity_id, org_ref, b.kind, b.budget_type, b.status, b.period_start,
            b.period_end, b.value_date, b.amount, b.currency,
            conv.amount_usd if conv else None, conv.rate if conv else None,
            conv.rate_date if conv else None, conv.source if conv else None,
            _ref(b.provider), _ref(b.receiver), b.receiver.name if b.receiver else None,
            b.recipient_country, b.recipient_region, b.location))
        self.counts["budgets"] += 1

    def add_organisation(self, o: OrganisationRecord) -> None:
        ref = o.ref.strip()[:MAX_REF]
        self.org_records[ref] = o
        self.described_orgs.add(ref)
        self._org(OrgRef(ref=ref, name=o.name, type=o.type))
        self._org(o.reporting_org)
        for b in o.budgets:
            self.add_budget(b, None, ref)

    def rate_issues(self) -> list[Issue]:
        """Once per currency: the flows left without USD (after the last record)."""
        issues = []
        for currency, n in sorted(self.no_rate.items()):
            issues.append(Issue(
                Severity.WARNING,
                f"{n} flow(s) in {currency} have no USD rate (no rate in the report and no ECB "
                "reference rate for that currency and date); their USD amount is left empty",
                "", "no-usd-rate"))
        for currency, n in sorted(self.undated.items()):
            issues.append(Issue(
                Severity.WARNING,
                f"{n} flow(s) in {currency} have no value date, so no exchange rate could be "
                "looked up (and the report gives none); their USD amount is left empty",
                "", "no-usd-rate"))
        self.no_rate.clear()
        self.undated.clear()
        return issues


def _conversions(spec: RowSpec, sqlite: bool) -> list[tuple[int, Any]]:
    """(position in the row, converter) for the values the driver cannot take as they are
    (the same converters as :func:`bulk_insert`)."""
    names = [c for c, _ in spec.refs] + list(spec.cols)
    return [(i, conv) for i, conv in enumerate(converters(spec.table, names, sqlite)) if conv]


class LedgerWriter:
    """Writes one batch's rows (:class:`RowChunk`) in bulk, in the caller's transaction.

    Maps file-local ids to primary keys (SQLite: ``max(id)+1`` on, in the statement itself;
    PostgreSQL: blocks of the table's sequence). Writes run on one background thread while
    the caller reads or builds the next chunk (both drivers release the GIL while the
    server works). At most one write is in flight; a lock keeps the connection to one
    thread at a time. Call :meth:`close` in all cases before the transaction ends.
    """

    def __init__(self, conn: Connection, batch_id: int) -> None:
        self.conn = conn
        self.batch_id = batch_id
        if conn.dialect.name not in ("sqlite", "postgresql"):
            # checked before the first row: the inserts below are written for these two
            raise ValueError(f"fundtrack writes its ledger on SQLite or PostgreSQL, "
                             f"not {conn.dialect.name}")
        self.sqlite = conn.dialect.name == "sqlite"
        self.lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self.in_flight: Future[None] | None = None
        #: Primary keys of the file-local ids handed out so far, per kind.
        self.ids: dict[str, list[int]] = {ACTIVITY: [], FLOW: []}
        self.base: dict[str, int] = {}

    def _cover(self, kind: str, n: int) -> None:
        """Make sure the first ``n`` file-local ids of ``kind`` have primary keys."""
        if self.sqlite:
            if n and kind not in self.base:
                with self.lock:
                    self.base[kind] = max_id(self.conn, kind) + 1
            return
        ids = self.ids[kind]
        if len(ids) < n:
            # what the chunk needs, and as many more as the file had (up to ID_BLOCK): a
            # sequence value costs the server ~7 us, and a fixed ID_BLOCK per kind and file
            # drew 20 times the ids a D-Portal page uses (1.3 s of 7.7 for 200 pages)
            with self.lock:
                ids.extend(new_ids(self.conn, kind,
                                   n - len(ids) + min(len(ids), ID_BLOCK)))

    def write(self, chunk: RowChunk) -> None:
        """Hand a chunk to the writer thread (after the previous write is done)."""
        self.wait()
        if not chunk.rows:
            return
        self._cover(ACTIVITY, chunk.activities)
        self._cover(FLOW, chunk.flows)
        self.in_flight = self.executor.submit(self._write, chunk.rows)

    def _write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        with self.lock:
            for spec in SPECS:
                chunk = rows.get(spec.table.name)
                if chunk:
                    self._insert(spec, chunk)

    def _insert(self, spec: RowSpec, rows: list[tuple[Any, ...]]) -> None:
        cols = [c for c, _ in spec.refs] + (["batch_id", "superseded_by"] if spec.batched
                                            else []) + list(spec.cols)
        raw = self.conn.connection.dbapi_connection
        k = len(spec.refs)
        if self.sqlite:
            # the ids and the batch as literals in the statement: no Python work per row
            marks = [f"?+{self.base.get(kind, 0)}" for _, kind in spec.refs]
            marks += [str(int(self.batch_id)), "NULL"] if spec.batched else []
            marks += ["?"] * len(spec.cols)
            cur = raw.cursor()  # type: ignore[union-attr]
            try:
                cur.executemany(f"INSERT INTO {spec.table.name} ({', '.join(cols)}) "
                                f"VALUES ({', '.join(marks)})", rows)
            finally:
                cur.close()
            return
        maps = [self.ids[kind] for _, kind in spec.refs]
        head = (self.batch_id, None) if spec.batched else ()
        values = [(*[None if r[j] is None else maps[j][r[j]] for j in range(k)], *head, *r[k:])
                  for r in rows]
        with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                f"COPY {spec.table.name} ({', '.join(cols)}) FROM STDIN") as copy:
            for v in values:
                copy.write_row(v)

    def wait(self) -> None:
        """Block until the write in flight is done; re-raise its error."""
        if self.in_flight is not None:
            future, self.in_flight = self.in_flight, None
            future.result()

    def close(self) -> None:
        """Stop the writer thread; safe to call twice and after an error."""
        try:
            if self.in_flight is not None:
                self.in_flight.exception()
        finally:
            self.in_flight = None
            self.executor.shutdown(wait=True)

    def upsert_organisations(self, built: RowBuilder) -> int:
        """Add organisations first seen in this batch; update those it describes itself."""
        org = m.Organisation.__table__
        refs = sorted(built.orgs)
        existing: set[str] = set()
        for i in range(0, len(refs), 500):
            chunk = refs[i:i + 500]
            existing.update(self.conn.execute(select(org.c.ref).where(org.c.ref.in_(chunk)))
                            .scalars())
        new_rows = [
            {"ref": r, "name": built.orgs[r]["name"], "type": (built.orgs[r]["type"] or "")[:10]
             or None, "is_womens_rights_org": False, "is_pooled_fund": False}
            for r in refs if r not in existing
        ]
        bulk_insert(self.conn, org, new_rows)
        # What the registry held before, so a revert can put it back (or remove what
        # this batch added).
        changes = [{"batch_id": self.batch_id, "org_ref": r, "existed": False, "name": None,
                    "type": None, "default_currency": None, "prior_batch_id": None}
                   for r in refs if r not in existing]
        described = sorted(set(built.org_records) & existing)
        for i in range(0, len(described), 500):
            for row in self.conn.execute(
                    select(org.c.ref, org.c.name, org.c.type, org.c.default_currency,
                           org.c.batch_id).where(org.c.ref.in_(described[i:i + 500]))):
                changes.append({"batch_id": self.batch_id, "org_ref": row.ref, "existed": True,
                                "name": row.name, "type": row.type,
                                "default_currency": row.default_currency,
                                "prior_batch_id": row.batch_id})
        bulk_insert(self.conn, m.BatchOrgChange.__table__, changes)
        for ref, rec in built.org_records.items():
            values = {"batch_id": self.batch_id}
            if rec.name:
                values["name"] = rec.name
            if rec.type:
                values["type"] = rec.type[:10]
            if rec.default_currency:
                values["default_currency"] = rec.default_currency[:3]
            self.conn.execute(update(org).where(org.c.ref == ref).values(**values))
        built.counts["new_organisations"] = len(new_rows)
        return len(built.org_records)


@lru_cache(maxsize=1)
def _supersede_statements() -> tuple[Any, ...]:
    """The statements of :func:`supersede`, built once (``:batch`` is the new batch):
    building their aliases cost ~5 ms a file."""
    act, flow, budget = m.Activity.__table__, m.Flow.__table__, m.Budget.__table__
    batch = bindparam("batch")
    # Driven from this batch's rows (index on batch_id, then the key index), not from every
    # current row of the ledger: the cost follows the file, not the database.
    new, old = act.alias("new"), act.alias("old")
    activities = update(act).where(act.c.id.in_(
        select(old.c.id).join(new, (new.c.reporting_org_ref == old.c.reporting_org_ref)
                              & (new.c.iati_identifier == old.c.iati_identifier))
        .where(new.c.batch_id == batch, old.c.batch_id != batch, current(old))
    )).values(superseded_by=batch)
    gone = select(act.c.id).where(act.c.superseded_by == batch)
    flows = update(flow).where(current(flow), flow.c.activity_id.in_(gone)
                               ).values(superseded_by=batch)
    budgets = update(budget).where(current(budget), budget.c.activity_id.in_(gone)
                                   ).values(superseded_by=batch)
    newf, oldf = flow.alias("newf"), flow.alias("oldf")
    loose = update(flow).where(flow.c.id.in_(
        select(oldf.c.id).join(newf, (newf.c.reporting_org_ref == oldf.c.reporting_org_ref)
                               & (newf.c.external_id == oldf.c.external_id))
        .where(newf.c.batch_id == batch, oldf.c.batch_id != batch, current(oldf),
               oldf.c.activity_id.is_(None), oldf.c.external_id.is_not(None))
    )).values(superseded_by=batch)
    return activities, flows, budgets, loose


def supersede(conn: Connection, batch_id: int, described_orgs: set[str]) -> dict[str, int]:
    """Mark rows of earlier batches that this batch replaces. Set-based, a few statements.

    An activity is replaced by a later one with the same reporting organisation and
    iati-identifier; its flows and budgets go with it. Flows outside activities are
    replaced by ones with the same publisher and external id; organisation-level budgets
    by a newer description of the same organisation.
    """
    budget = m.Budget.__table__
    activities, flows, budgets, loose = _supersede_statements()
    params = {"batch": batch_id}
    replaced = conn.execute(activities, params).rowcount
    replaced_flows = 0
    if replaced:  # else no activity has this batch in superseded_by: nothing goes with one
        replaced_flows = conn.execute(flows, params).rowcount
        conn.execute(budgets, params)
    replaced_flows += conn.execute(loose, params).rowcount
    if described_orgs:
        conn.execute(update(budget).where(
            current(budget), budget.c.batch_id != batch_id,
            budget.c.activity_id.is_(None), budget.c.organisation_ref.in_(sorted(described_orgs)),
        ).values(superseded_by=batch_id))
    return {"replaced_activities": replaced, "replaced_flows": replaced_flows}


def revert(conn: Connection, batch_id: int) -> dict[str, int]:
    """Delete a batch's rows and bring back the rows it had replaced (if still wanted)."""
    act, flow, budget = m.Activity.__table__, m.Flow.__table__, m.Budget.__table__
    deleted_flows = conn.execute(delete(flow).where(flow.c.batch_id == batch_id)).rowcount
    conn.execute(delete(budget).where(budget.c.batch_id == batch_id))
    for child in (m.ActivityCountry, m.ActivityRegion, m.ActivitySector, m.PolicyMarker,
                  m.ParticipatingOrg, m.RelatedActivity, m.ActivityTag):
        t = child.__table__
        conn.execute(delete(t).where(
            t.c.activity_id.in_(select(act.c.id).where(act.c.batch_id == batch_id))))
    deleted_acts = conn.execute(delete(act).where(act.c.batch_id == batch_id)).rowcount
    cur = aliased(m.Activity)
    restored = conn.execute(update(act).where(
        act.c.superseded_by == batch_id,
        ~exists().where(current(cur),
                        cur.iati_identifier == act.c.iati_identifier,
                        cur.reporting_org_ref == act.c.reporting_org_ref),
    ).values(superseded_by=None)).rowcount
    live = select(act.c.id).where(current(act))
    conn.execute(update(flow).where(flow.c.superseded_by == batch_id,
                                    flow.c.activity_id.in_(live)).values(superseded_by=None))
    curf = aliased(m.Flow)
    conn.execute(update(flow).where(
        flow.c.superseded_by == batch_id, flow.c.activity_id.is_(None),
        ~exists().where(and_(current(curf),
                             curf.external_id == flow.c.external_id,
                             curf.reporting_org_ref == flow.c.reporting_org_ref)),
    ).values(superseded_by=None))
    conn.execute(update(budget).where(budget.c.superseded_by == batch_id,
                                      budget.c.activity_id.in_(live)).values(superseded_by=None))
    conn.execute(update(budget).where(budget.c.superseded_by == batch_id,
                                      budget.c.activity_id.is_(None)).values(superseded_by=None))
    conn.execute(update(m.ImportBatch.__table__).where(m.ImportBatch.id == batch_id).values(
        status="reverted", reverted_at=datetime.now(UTC)))
    registry = revert_registry(conn, batch_id)
    return {"deleted_activities": deleted_acts, "deleted_flows": deleted_flows,
            "restored_activities": restored, **registry}


#: Columns that name an organisation: one still named anywhere keeps its registry entry.
ORG_REF_COLUMNS = (("activity", "reporting_org_ref"), ("participating_org", "ref"),
                   ("flow", "reporting_org_ref"), ("flow", "provider_ref"),
                   ("flow", "receiver_ref"), ("budget", "organisation_ref"),
                   ("budget", "provider_ref"), ("budget", "receiver_ref"),
                   ("fund", "organisation_ref"))


def revert_registry(conn: Connection, batch_id: int) -> dict[str, int]:
    """Put back the registry fields (name, type, currency) of organisations the batch
    described, and remove organisations it added that nothing names any more.

    Run after the batch's rows are deleted and its status is ``reverted``. An organisation
    a later batch has described since keeps that description. When the description before
    this batch came from a batch that is itself reverted, the one before that is used.
    """
    org, ch = m.Organisation.__table__, m.BatchOrgChange.__table__
    batch = m.ImportBatch.__table__
    reverted = set(conn.execute(select(batch.c.id).where(batch.c.status == "reverted")).scalars())
    restored = 0
    gone: list[str] = []
    rows = conn.execute(select(ch).where(ch.c.batch_id == batch_id).order_by(ch.c.id)).all()
    described_by = {}
    refs = [r.org_ref for r in rows]
    for i in range(0, len(refs), 500):
        described_by.update(conn.execute(select(org.c.ref, org.c.batch_id)
                                    .where(org.c.ref.in_(refs[i:i + 500]))).all())
    for row in rows:
        if row.org_ref not in described_by or described_by[row.org_ref] not in (batch_id, None):
            continue  # gone already, or a later batch describes it now
        if described_by[row.org_ref] is None and row.existed:
            continue  # only named, not described, by this batch: nothing to put back
        prior = row
        while prior.existed and prior.prior_batch_id in reverted:
            earlier = conn.execute(select(ch).where(ch.c.batch_id == prior.prior_batch_id,
                                                    ch.c.org_ref == row.org_ref)).first()
            if earlier is None:
                break
            prior = earlier
        if prior.existed:
            conn.execute(update(org).where(org.c.ref == row.org_ref).values(
                name=prior.name, type=prior.type, default_currency=prior.default_currency,
                batch_id=prior.prior_batch_id))
            restored += 1
        else:
            if described_by[row.org_ref] is not None:
                # it did not exist before its description: if something still names it,
                # it stays, but without the reverted description
                conn.execute(update(org).where(org.c.ref == row.org_ref).values(
                    name=None, type=None, default_currency=None, batch_id=None))
                restored += 1
            gone.append(row.org_ref)
    removed = 0
    tables = metadata.tables
    for i in range(0, len(gone), 500):
        chunk = gone[i:i + 500]
        # kept when an admin edited it, or when any row (current or replaced) names it
        stmt = delete(org).where(org.c.ref.in_(chunk), org.c.is_pooled_fund.is_(False),
                                 org.c.is_womens_rights_org.is_(False), org.c.country.is_(None))
        for t, c in ORG_REF_COLUMNS:
            if t in tables:
                col = tables[t].c[c]
                stmt = stmt.where(~org.c.ref.in_(select(col).where(col.in_(chunk))))
        removed += conn.execute(stmt).rowcount
    return {"restored_organisations": restored, "removed_organisations": removed}
