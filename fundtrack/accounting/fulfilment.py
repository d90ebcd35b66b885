"""Pledge fulfilment per commitment, cumulative over the commitment's life.

A commitment (or pledge) is paid by the disbursements of its own activity, of any date:
a commitment signed in 2020 and paid in 2020, 2021 and 2022 is judged on all three. In an
activity that reports no commitment of its own, disbursements count against the
commitments of its parent activity (IATI related-activity type 1 from the child, or 2
from the parent, reported by the same organisation). Within one activity, commitments
are filled in date order by the activity's disbursements (first in, first out); a
commitment is never filled beyond its amount, so one over-paid commitment cannot hide
another unpaid one. A negative commitment (a decommitment) is no promise: it lowers the
commitments of its activity made before it (the latest first; else the latest of any)
and is counted apart.

A commitment is **settled** when it is paid in full or its activity has ended (status
finalisation, closed or cancelled, or an end date on or before the data's own date: the
activity's ``last-updated-datetime``, else the file's ``generated-datetime``, else the
latest date the organisation reports any flow). Only settled commitments say whether a
promise was kept; the card's coverage is the settled share of the committed USD.
Amounts are USD; commitments without USD are counted apart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from fundtrack.accounting.items import iso_day
from fundtrack.accounting.subject import own_reports, owner
from fundtrack.db.base import current
from fundtrack.ledger import tables as m
from fundtrack.money import SUM_CONTEXT
from fundtrack.records import FlowKind

#: IATI ActivityStatus codes after which nothing more will be paid.
ENDED_STATUSES = ("3", "4", "5")
PROMISE_KINDS = (FlowKind.OUTGOING_COMMITMENT, FlowKind.OUTGOING_PLEDGE)
MAX_PARENT_HOPS = 5


@dataclass
class Commitment:
    flow_id: int
    org: str
    kind: FlowKind
    activity_id: int | None
    activity_identifier: str | None
    value_date: date | None
    amount_usd: Decimal | None
    paid_usd: Decimal = Decimal(0)
    #: Lowered by later decommitments (negative commitments) of the same activity.
    decommitted_usd: Decimal = Decimal(0)
    #: Why the commitment's outcome is final ("paid in full", "activity closed", ...),
    #: or None while it is still running (or cannot be followed).
    settled: str | None = None
    followable: bool = True

    @property
    def year(self) -> int | None:
        return self.value_date.year if self.value_date else None

    @property
    def decommitment(self) -> bool:
        return self.amount_usd is not None and self.amount_usd < 0

    @property
    def effective_usd(self) -> Decimal | None:
        """The promise after decommitments (None without USD)."""
        if self.amount_usd is None:
            return None
        return max(self.amount_usd - self.decommitted_usd, Decimal(0))


@dataclass
class _Act:
    identifier: str
    org: str | None
    status: str | None
    end: date | None
    as_of: date | None


def _activities(conn: Connection, ids: set[int]) -> dict[int, _Act]:
    a = m.Activity.__table__
    b = m.ImportBatch.__table__
    out: dict[int, _Act] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):
        q = (select(a.c.id, a.c.iati_identifier, a.c.reporting_org_ref, a.c.status,
                    a.c.end_actual, a.c.end_planned, a.c.last_updated, b.c.file_generated)
             .join(b, b.c.id == a.c.batch_id).where(a.c.id.in_(ordered[i:i + 500])))
        for r in conn.execute(q):
            out[r.id] = _Act(r.iati_identifier, r.reporting_org_ref, r.status,
                             r.end_actual or r.end_planned,
                             iso_day(r.last_updated) or iso_day(r.file_generated))
    return out


def _parents(conn: Connection, acts: dict[int, _Act]) -> dict[int, int]:
    """child activity id -> parent activity id, both current and of the same reporter."""
    ra = m.RelatedActivity.__table__
    a = m.Activity.__table__
    links: list[tuple[int, str, str]] = []
    ordered = sorted(acts)
    for i in range(0, len(ordered), 500):
        links += [(r.activity_id, r.type, (r.ref or "").strip()) for r in conn.execute(
            select(ra.c.activity_id, ra.c.type, ra.c.ref).where(
                ra.c.activity_id.in_(ordered[i:i + 500]), ra.c.type.in_(("1", "2"))))]
    refs = sorted({ref for _, _, ref in links if ref})
    by_ident: dict[tuple[str | None, str], int] = {}
    for i in range(0, len(refs), 500):
        for r in conn.execute(select(a.c.id, a.c.iati_identifier, a.c.reporting_org_ref)
                              .where(current(a), a.c.iati_identifier.in_(refs[i:i + 500]))):
            by_ident[(r.reporting_org_ref, r.iati_identifier)] = r.id
    out: dict[int, int] = {}
    for me, kind, ref in links:
        other = by_ident.get((acts[me].org, ref))
        if other is None or other == me:
            continue
        if kind == "1":      # I name my parent
            out.setdefault(me, other)
        else:                # I name my child
            out.setdefault(other, me)
    return out


def _rows(conn: Connection, org: str | None, kinds: tuple[FlowKind, ...]) -> list[Any]:
    f = m.Flow.__table__
    q = (select(f.c.id, f.c.kind, f.c.activity_id, f.c.value_date, f.c.amount_usd,
                f.c.reporting_org_ref, f.c.provider_ref, f.c.provider_name, f.c.extra)
         .where(current(f), own_reports(org, kinds)).order_by(f.c.value_date, f.c.id))
    return [r for r in conn.execute(q)
            if owner(r.reporting_org_ref, r.provider_ref, r.provider_name, r.extra)]


def commitments(conn: Connection, org: str | None = None) -> list[Commitment]:
    """Every own commitment and pledge of ``org`` (None: of every organisation), each with
    what its activity (and child activities without commitments) has paid towards it."""
    promises = _rows(conn, org, PROMISE_KINDS)
    if not promises:
        return []
    paid = _rows(conn, org, (FlowKind.DISBURSEMENT,))
    acts = _activities(conn, {r.activity_id for r in promises + paid if r.activity_id})
    parents = _parents(conn, acts)
    latest: dict[str, date] = {}
    for r in promises + paid:
        who = owner(r.reporting_org_ref, r.provider_ref, r.provider_name, r.extra) or ""
        if r.value_date and (who not in latest or r.value_date > latest[who]):
            latest[who] = r.value_date

    out: list[Commitment] = []
    by_group: dict[tuple[int, FlowKind], list[Commitment]] = defaultdict(list)
    for r in promises:
        who = owner(r.reporting_org_ref, r.provider_ref, r.provider_name, r.extra) or ""
        act = acts.get(r.activity_id) if r.activity_id else None
        c = Commitment(r.id, who, r.kind, r.activity_id, act.identifier if act else None,
                       r.value_date, r.amount_usd, followable=act is not None)
        out.append(c)
        if act is not None and c.amount_usd is not None:
            by_group[(r.activity_id, r.kind)].append(c)

    # each disbursement goes to its own activity's commitments, else its nearest ancestor's
    pot: dict[tuple[int, FlowKind], Decimal] = defaultdict(Decimal)
    for r in paid:
        if r.activity_id is None or r.amount_usd is None:
            continue
        for kind in PROMISE_KINDS:
            target: int | None = r.activity_id
            for _ in range(MAX_PARENT_HOPS):
                if target is None or (target, kind) in by_group:
                    break
                target = parents.get(target)
            if target is not None and (target, kind) in by_group:
                pot[(target, kind)] = SUM_CONTEXT.add(pot[(target, kind)], r.amount_usd)

    for key, group in by_group.items():
        left = pot.get(key, Decimal(0))
        act = acts[key[0]]
        ended = _ended(act, latest.get(group[0].org))
        ordered = sorted(group, key=lambda c: (c.value_date or date.min, c.flow_id))
        _decommit(ordered)
        for c in ordered:
            if c.decommitment:
                continue
            want = c.effective_usd or Decimal(0)
            take = min(max(left, Decimal(0)), want)
            c.paid_usd = take
            left = SUM_CONTEXT.subtract(left, take)
            if take >= want:
                c.settled = "paid in full"
            elif ended:
                c.settled = ended
    return out


def _decommit(ordered: list[Commitment]) -> None:
    """Apply each negative commitment to the positive ones before it, latest first (if
    none comes before it, to the latest of all)."""
    for n, neg in enumerate(ordered):
        if not neg.decommitment:
            continue
        todo = -neg.amount_usd  # type: ignore[operator]
        before = [c for c in ordered[:n] if not c.decommitment]
        pool = before or [c for c in ordered if not c.decommitment]
        for c in reversed(pool):
            room = c.effective_usd or Decimal(0)
            cut = min(room, todo)
            c.decommitted_usd = SUM_CONTEXT.add(c.decommitted_usd, cut)
            todo = SUM_CONTEXT.subtract(todo, cut)
            if not todo:
                break


def _ended(act: _Act, latest: date | None) -> str | None:
    if act.status in ENDED_STATUSES:
        return {"3": "activity in finalisation", "4": "activity closed",
                "5": "activity cancelled"}[act.status]
    as_of = act.as_of or latest
    if act.end is not None and as_of is not None and act.end <= as_of:
        return f"activity ended {act.end.isoformat()} (data as of {as_of.isoformat()})"
    return None


@dataclass
class Fulfilment:
    """Pledge fulfilment of the commitments dated in one year."""

    kind: FlowKind
    count: int = 0
    committed_usd: Decimal = Decimal(0)
    paid_usd: Decimal = Decimal(0)
    settled_usd: Decimal = Decimal(0)
    settled_count: int = 0
    followable_usd: Decimal = Decimal(0)
    without_usd: int = 0
    not_followable: int = 0
    decommitments: int = 0
    decommitted_usd: Decimal = Decimal(0)

    @property
    def value(self) -> Decimal | None:
        return self.paid_usd / self.followable_usd if self.followable_usd else None

    @property
    def coverage(self) -> Decimal | None:
        return self.settled_usd / self.committed_usd if self.committed_usd else None


def of_year(items: list[Commitment], year: int) -> Fulfilment:
    """The year's pledges when there are any, else its commitments (an organisation that
    pledges and commits the same money would be counted twice otherwise)."""
    mine = [c for c in items if c.year == year]
    kind = (FlowKind.OUTGOING_PLEDGE if any(c.kind == FlowKind.OUTGOING_PLEDGE for c in mine)
            else FlowKind.OUTGOING_COMMITMENT)
    out = Fulfilment(kind)
    for c in mine:
        if c.kind != kind:
            continue
        if c.decommitment:
            out.decommitments += 1
            continue
        out.count += 1
        amount = c.effective_usd
        if amount is None:
            out.without_usd += 1
            continue
        out.decommitted_usd = SUM_CONTEXT.add(out.decommitted_usd, c.decommitted_usd)
        out.committed_usd = SUM_CONTEXT.add(out.committed_usd, amount)
        if not c.followable:
            out.not_followable += 1
            continue
        out.followable_usd = SUM_CONTEXT.add(out.followable_usd, amount)
        out.paid_usd = SUM_CONTEXT.add(out.paid_usd, c.paid_usd)
        if c.settled:
            out.settled_count += 1
            out.settled_usd = SUM_CONTEXT.add(out.settled_usd, amount)
    return out
