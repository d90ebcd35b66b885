"""A donor's money as a Sankey, from the donor's own reports onward.

Three sets of bands, in USD:

1. **What the donor reports disbursing**: the canonical movements of the donor's own
   disbursement reports under the filter (year, gender marker, ...), each counted once
   (a disbursement paired with its receiver's report is one movement; a lump split among
   several receipts sums exactly to it). Grouped by receiving organisation. Its
   per-currency total equals the donor's reported disbursements to the cent.
2. **What the receivers report passing on** of that money: the attribution rule
   (docs/methodology.md) applied below the receivers, with the donor's disbursements to
   each receiver labelled by that receiver; a receiver's band is the part of its own
   reported payments (to other organisations) and expenditure that carries its label.
   Money a receiver got from elsewhere, including reports of the donor's money that the
   donor itself did not report, is other money. What a receiver does not report passing
   on or spending is drawn as its own band, **not reported passed on or spent**.
3. **Countries or sectors** of the money in set 2, by name: the flow's own recipient
   country (DAC sector), else its activity's only one, as ``flowsAggregate`` groups
   them; several or none is said so.

Reports by receivers of money from the donor that could not be paired with a
disbursement the donor reports are not in set 1 (they may describe the same money
again); they are counted beside the diagram.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from fundtrack.db.base import current
from fundtrack.derived.trail.attribution import downstream_sql, load_moves, moves_around, source_reasons
from fundtrack.derived.trail.config import TrailConfig
from fundtrack.derived.trail.engine import ORIGINATOR, Part, attribute
from fundtrack.derived.trail.tables import Movement
from fundtrack.ingest.codelists import country_name, sector_name
from fundtrack.ledger import tables as m
from fundtrack.query import nodes
from fundtrack.query.aggregate import FlowDimension, joins
from fundtrack.records import FlowKind

#: Below this share of the donor's money covered by receivers' reports, the page says so.
LOW_COVERAGE = Decimal("0.5")
BY = ("country", "sector")
SPENT = "spent"          # node key: expenditure the receivers report
UNTRACED = "untraced"    # node key: the remainder, not reported passed on or spent
REST_RECEIVERS = "recv:(others)"
REST_ONWARD = "next:(others)"
OTHER = "\x00other"
CENT = Decimal("0.01")


@dataclass
class Band:
    """One band: ``stage`` 1 donor -> receiver, 2 receiver -> onward / spent / untraced,
    3 onward or spent -> country or sector. ``amount_usd`` draws it; ``amounts`` is the
    same money exactly in the reports' currencies."""

    stage: int
    source: str
    target: str
    amount_usd: Decimal = Decimal(0)
    amounts: dict[str | None, Decimal] = field(default_factory=dict)
    count: int = 0
    without_usd: int = 0

    def add(self, amount: Decimal, currency: str | None, usd: Decimal | None) -> None:
        self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount
        if usd is None:
            self.without_usd += 1
        else:
            self.amount_usd += usd
        self.count += 1


@dataclass
class DonorSankey:
    donor: str
    by: str
    nodes: dict[str, str] = field(default_factory=dict)     # key -> label
    bands: list[Band] = field(default_factory=list)
    disbursed: dict[str | None, Decimal] = field(default_factory=dict)  # stage 1, exact
    disbursed_usd: Decimal = Decimal(0)
    disbursements: int = 0                  # the donor's disbursement reports (flows)
    paired: int = 0                         # of them, paired with the receiver's report
    without_usd: int = 0                    # stage-1 movements with no USD: not drawn
    passed_on_usd: Decimal = Decimal(0)     # stage 2 to other organisations
    spent_usd: Decimal = Decimal(0)         # stage 2 reported expenditure
    untraced_usd: Decimal = Decimal(0)      # the remainder band
    not_drawn: list[Band] = field(default_factory=list)  # net negative receivers
    receiver_only: list[Band] = field(default_factory=list)  # receivers' unpaired reports
    receiver_only_usd: Decimal = Decimal(0)
    receiver_only_count: int = 0
    own_rate: int = 0  # onward parts in another currency than the donor paid: own-date USD

    @property
    def coverage(self) -> Decimal | None:
        """Share of the drawn first band set that the receivers' reports carry on."""
        if self.disbursed_usd <= 0:
            return None
        drawn = sum((b.amount_usd for b in self.bands if b.stage == 1), Decimal(0))
        if drawn <= 0:
            return None
        return ((self.passed_on_usd + self.spent_usd) / drawn).quantize(Decimal("0.000001"))

    @property
    def low_coverage(self) -> bool:
        c = self.coverage
        return c is not None and c < LOW_COVERAGE

    def stage(self, n: int) -> list[Band]:
        return [b for b in self.bands if b.stage == n]


def receiver_key(ref: str | None) -> str:
    return "recv:" + nodes.identity(ref)


def onward_key(ref: str | None) -> str:
    return "next:" + nodes.identity(ref)


def _place_key(by: str, code: str | None) -> str:
    return f"{by}:{code or ''}"


def donor_sankey(conn: Connection, donor: str, where: Any = None, by: str = "country",
                 limit: int = 40) -> DonorSankey:
    """The donor's bands (see the module docstring). ``where``: a condition on ``flow``
    (the API's ``flow_where`` of the page's filter, without donor and kind) that selects
    the donor's disbursement reports; ``limit``: the largest receivers drawn one by one,
    the rest gathered in one node."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    t, f = Movement.__table__, m.Flow.__table__
    refs = nodes.variants(conn, donor)
    sk = DonorSankey(donor=donor, by=by)
    conds = [current(f), f.c.kind == FlowKind.DISBURSEMENT, f.c.reporting_org_ref.in_(refs)]
    if where is not None:
        conds.append(where)
    sk.disbursements = conn.execute(select(func.count()).select_from(f).where(*conds)
                                    ).scalar_one()
    rows = conn.execute(select(t.c.id, t.c.dst_org, t.c.amount, t.c.currency, t.c.amount_usd,
                               t.c.mirror_flow_id, t.c.flow_id)
                        .select_from(t.join(f, f.c.id == t.c.flow_id)).where(*conds)
                        .order_by(t.c.id)).all()
    sk.paired = len({r.flow_id for r in rows if r.mirror_flow_id is not None})
    spelled: dict[str, str] = {}       # identity -> a spelling the reports use

    def spell(ref: str) -> str:
        key = nodes.identity(ref)
        if key not in spelled or ref < spelled[key]:
            spelled[key] = ref
        return key

    first: dict[str, Band] = {}
    label_of: dict[int, str] = {}      # stage-1 movement -> receiver identity
    followed: dict[tuple[str, str | None], list[Decimal]] = {}  # (receiver, cur) -> amt, usd
    for r in rows:
        key = spell(r.dst_org)
        band = first.setdefault(key, Band(1, "donor", receiver_key(r.dst_org)))
        band.add(r.amount, r.currency, r.amount_usd)
        sk.disbursed[r.currency] = sk.disbursed.get(r.currency, Decimal(0)) + r.amount
        if r.amount_usd is not None:
            sk.disbursed_usd += r.amount_usd
        if r.amount > 0 and r.amount_usd is not None:
            label_of[r.id] = key
            paid = followed.setdefault((key, r.currency), [Decimal(0), Decimal(0)])
            paid[0] += r.amount
            paid[1] += r.amount_usd
    sk.without_usd = sum(b.without_usd for b in first.values())
    drawn = sorted((b for b in first.values() if b.amount_usd > 0),
                   key=lambda b: (-b.amount_usd, b.target))
    sk.not_drawn = sorted((b for b in first.values() if b.amount_usd <= 0),
                          key=lambda b: b.target)
    sk.bands.extend(drawn)
    for ref in _receiver_only(conn, sk, refs, where):
        spell(ref)

    # Stage 2: follow the stage-1 money, labelled by receiver, through the rule.
    parts, moves = _follow(conn, label_of)
    second: dict[tuple[str, str], Band] = {}
    third: dict[tuple[str, str], Band] = {}
    onward_moves: dict[int, list[tuple[str, Part]]] = defaultdict(list)
    for mid, ps in parts.items():
        mv = moves[mid]
        src = nodes.identity(mv.src[0])
        for p in ps:
            if p.origin[0] != ORIGINATOR or p.origin[1] != src or not p.amount:
                continue
            if mv.terminal:
                target = SPENT
            elif nodes.identity(mv.dst[0]) != src:
                target = onward_key(mv.dst[0])
                spell(mv.dst[0])
            else:
                continue  # inside the receiver (its own activities): not passed on yet
            onward_moves[mid].append((target, p))
    flows = {mid: fid for mid, fid in conn.execute(
        select(t.c.id, t.c.flow_id).where(t.c.id.in_(sorted(onward_moves))))} \
        if onward_moves else {}
    places = _places(conn, by, sorted(set(flows.values())))
    for mid, items in onward_moves.items():
        mv = moves[mid]
        fid = flows.get(mid)
        place = places.get(fid) if fid is not None else None
        for target, p in items:
            src_key = receiver_key(mv.src[0])
            rate = followed.get((nodes.identity(mv.src[0]), mv.currency))
            usd = _valued(p, rate)
            if rate is None:
                sk.own_rate += 1
            b = second.setdefault((src_key, target), Band(2, src_key, target))
            b.add(p.amount, mv.currency, usd)
            c = third.setdefault((target, place or ""), Band(3, target, _place_key(by, place)))
            c.add(p.amount, mv.currency, usd)
    onward_by_receiver: dict[str, Decimal] = defaultdict(Decimal)
    for b in second.values():
        onward_by_receiver[b.source] += b.amount_usd
        if b.target == SPENT:
            sk.spent_usd += b.amount_usd
        else:
            sk.passed_on_usd += b.amount_usd
    for b in drawn:
        rest = _cents(b.amount_usd - onward_by_receiver.get(b.target, Decimal(0)))
        if rest > 0:
            u = Band(2, b.target, UNTRACED, amount_usd=rest, count=b.count)
            second[(b.target, UNTRACED)] = u
            sk.untraced_usd += rest
    for b in [*second.values(), *third.values()]:  # valued exactly, shown in cents
        b.amount_usd = _cents(b.amount_usd)
    sk.passed_on_usd, sk.spent_usd = _cents(sk.passed_on_usd), _cents(sk.spent_usd)
    sk.bands.extend(sorted(second.values(), key=lambda b: (-b.amount_usd, b.source, b.target)))
    sk.bands.extend(sorted((b for b in third.values() if b.amount_usd > 0),
                           key=lambda b: (-b.amount_usd, b.source, b.target)))
    _gather(sk, limit)
    _name(conn, sk, spelled)
    return sk


def _cents(v: Decimal) -> Decimal:
    return v.quantize(CENT, ROUND_HALF_EVEN)


def _valued(p: Part, paid: list[Decimal] | None) -> Decimal | None:
    """A part of the donor's money in USD at the rate of the donor's payments to the
    receiver in that currency (so a receiver's bands add up to what it got), else in USD
    at its own movement's rate (another currency on the way)."""
    if paid is None or not paid[0]:
        return p.amount_usd
    return p.amount * paid[1] / paid[0]


def _receiver_only(conn: Connection, sk: DonorSankey, refs: list[str], where: Any
                   ) -> set[str]:
    """Receivers' reports of money from the donor that no donor report was paired with;
    returns the receivers' refs."""
    t, f = Movement.__table__, m.Flow.__table__
    conds = [t.c.src_org.in_(refs), f.c.reporting_org_ref.not_in(refs),
             f.c.kind == FlowKind.INCOMING_FUNDS, current(f)]
    if where is not None:
        conds.append(where)
    by: dict[str, Band] = {}
    seen: set[str] = set()
    for r in conn.execute(select(t.c.dst_org, t.c.amount, t.c.currency, t.c.amount_usd)
                          .select_from(t.join(f, f.c.id == t.c.flow_id)).where(*conds)
                          .order_by(t.c.id)):
        key = nodes.identity(r.dst_org)
        seen.add(r.dst_org)
        by.setdefault(key, Band(0, "donor", receiver_key(r.dst_org))).add(
            r.amount, r.currency, r.amount_usd)
    sk.receiver_only = sorted(by.values(), key=lambda b: (-b.amount_usd, b.target))
    sk.receiver_only_usd = sum((b.amount_usd for b in by.values()), Decimal(0))
    sk.receiver_only_count = sum(b.count for b in by.values())
    return seen


def _follow(conn: Connection, label_of: dict[int, str]) -> tuple[dict[int, list[Part]], dict]:
    """The attribution rule below the receivers, the stage-1 money labelled by receiver
    (``(ORIGINATOR, receiver identity)``); all other money entering is ``OTHER``."""
    if not label_of:
        return {}, {}
    cfg = TrailConfig()
    ids = sorted(label_of)
    first = []
    for i in range(0, len(ids), 1000):
        first += load_moves(conn, cfg, Movement.__table__.c.id.in_(ids[i:i + 1000]))
    fixed = {mv.id: [Part((ORIGINATOR, label_of[mv.id]), mv.amount, mv.amount_usd, 0)]
             for mv in first}
    start = {mv.dst for mv in first if not mv.terminal}
    closure = downstream_sql(conn, start)
    moves = {mv.id: mv for mv in moves_around(conn, cfg, closure)}
    for mv in first:
        moves.setdefault(mv.id, mv)
    for mv in moves.values():
        if mv.id in fixed or mv.terminal or mv.dst not in closure:
            continue
        if mv.src not in closure:
            fixed[mv.id] = [Part((ORIGINATOR, OTHER), mv.amount, mv.amount_usd, 0)]
    reasons = source_reasons(conn, closure)
    relevant = [mv for mv in moves.values() if mv.src in closure or mv.id in fixed]
    return attribute(relevant, reasons, fixed=fixed, compute=closure), moves


def _places(conn: Connection, by: str, flow_ids: list[int]) -> dict[int, str | None]:
    """flow id -> its country (or DAC sector): the flow's own, else its activity's only
    one (the rule of ``flowsAggregate``'s RECIPIENT_COUNTRY and SECTOR)."""
    f = m.Flow.__table__
    dim = FlowDimension.RECIPIENT_COUNTRY if by == "country" else FlowDimension.SECTOR
    sub = joins([dim])[dim]
    own = f.c.recipient_country if by == "country" else f.c.sector_code
    out: dict[int, str | None] = {}
    for i in range(0, len(flow_ids), 1000):
        q = (select(f.c.id, func.coalesce(own, sub.c.value))
             .select_from(f.outerjoin(sub, sub.c.activity_id == f.c.activity_id))
             .where(f.c.id.in_(flow_ids[i:i + 1000])))
        out.update({fid: v for fid, v in conn.execute(q)})
    return out


def _gather(sk: DonorSankey, limit: int) -> None:
    """Keep the ``limit`` largest receivers, onward organisations and places; gather the
    rest of each into one node, so the picture stays readable and every dollar stays in."""
    for prefix, rest in (("recv:", REST_RECEIVERS), ("next:", REST_ONWARD),
                         (f"{sk.by}:", f"{sk.by}:(others)")):
        inflow: dict[str, Decimal] = defaultdict(Decimal)
        for b in sk.bands:
            if b.target.startswith(prefix):
                inflow[b.target] += b.amount_usd
        moved = set(sorted(inflow, key=lambda k: (-inflow[k], k))[limit:])
        if not moved:
            continue
        merged: dict[tuple[int, str, str], Band] = {}
        out: list[Band] = []
        for b in sk.bands:
            src = rest if b.source in moved else b.source
            dst = rest if b.target in moved else b.target
            if (src, dst) == (b.source, b.target):
                out.append(b)
                continue
            mb = merged.get((b.stage, src, dst))
            if mb is None:
                mb = merged[(b.stage, src, dst)] = Band(b.stage, src, dst)
                out.append(mb)
            mb.amount_usd += b.amount_usd
            mb.count += b.count
            mb.without_usd += b.without_usd
            for cur, amt in b.amounts.items():
                mb.amounts[cur] = mb.amounts.get(cur, Decimal(0)) + amt
        sk.bands = out


def _name(conn: Connection, sk: DonorSankey, spelled: dict[str, str]) -> None:
    """Labels for every node: organisations by name, countries and sectors by name."""
    names = nodes.names(conn, set(spelled.values()) | {sk.donor})
    fixed = {"donor": nodes.label(sk.donor, names),
             SPENT: "Spent by the receivers (their reported expenditure)",
             UNTRACED: "Not reported passed on or spent by the receivers",
             REST_RECEIVERS: "Other receivers", REST_ONWARD: "Other organisations",
             f"{sk.by}:(others)": f"Other {'countries' if sk.by == 'country' else 'sectors'}"}
    for b in sk.bands + sk.not_drawn + sk.receiver_only:
        for key in (b.source, b.target):
            if key in sk.nodes:
                continue
            if key in fixed:
                sk.nodes[key] = fixed[key]
            elif key.startswith(("recv:", "next:")):
                ident = key[5:]
                text = (nodes.label(spelled.get(ident, ident), names) if ident
                        else "(receiver not named)")
                sk.nodes[key] = text if key.startswith("recv:") else "to " + text
            else:
                kind, _, code = key.partition(":")
                sk.nodes[key] = place_label(kind, code)


def place_label(kind: str, code: str | None) -> str:
    """A country or DAC sector by name, its code beside (``Afghanistan (AF)``)."""
    if not code:
        return f"(no single {kind} on the flow or its activity)"
    name = country_name(code) if kind == "country" else sector_name(code)
    return f"{name} ({code})" if name else code


__all__ = ["BY", "LOW_COVERAGE", "Band", "DonorSankey", "donor_sankey", "place_label"]
