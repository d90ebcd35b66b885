"""Why a trace counts what it counts: an activity's money, report by report.

A trace upstream from an activity counts the movements into it (or, when nothing is
reported coming in, the movements out of it); downstream, the movements out of it. A
movement is known from up to two reports: the payer's (a disbursement) and the
receiver's (incoming funds). When the two are paired they are one movement, counted
once (docs/methodology.md, section 2). When they are not paired -- the Dutch NGO that
books the Ministry's 1,425,000 EUR disbursement as 43 monthly receipts -- each is its own
movement and the money is counted from both reports.

:func:`activity_balance` sorts the movements at an activity by who reported them, so a
page can put what the trace counts beside what the activity reports paying, give the
reason for every difference, and warn where both reports of one payment are counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from fundtrack.db.base import current
from fundtrack.derived.trail.tables import Movement
from fundtrack.ledger import tables as m
from fundtrack.query.nodes import identity
from fundtrack.records import FlowKind

#: How a movement at the activity is known.
PAIRED = "paired"   # this activity's report and the other side's, paired: counted once
OWN = "own"         # only this activity's report (the other side reported nothing it matched)
THEIRS = "theirs"   # only the other side's report, naming this activity
OUT_KINDS = (FlowKind.DISBURSEMENT, FlowKind.EXPENDITURE)
IN_KINDS = (FlowKind.INCOMING_FUNDS,)


@dataclass
class Line:
    """Movements at the activity with one direction, source of report, counterpart,
    currency and sign, summed exactly."""

    direction: str            # "in" | "out"
    how: str                  # PAIRED | OWN | THEIRS
    counterpart: str          # the other side's organisation (trail name; "" = none)
    currency: str | None
    negative: bool            # corrections (negative amounts): never attributed
    amount: Decimal = Decimal(0)
    amount_usd: Decimal | None = Decimal(0)
    count: int = 0


@dataclass
class Double:
    """Money one counterpart and this activity both report, in reports that were not
    paired: each report is its own movement, so up to ``at_most`` is counted twice."""

    direction: str
    counterpart: str
    currency: str | None
    own_amount: Decimal
    own_count: int
    their_amount: Decimal
    their_count: int

    @property
    def at_most(self) -> Decimal:
        return min(self.own_amount, self.their_amount)


@dataclass
class Balance:
    """An activity's money: what it reports, and every movement the trail counts there."""

    ident: str
    basis: str                                   # "in" | "out": what the upstream counts
    paid: dict[str | None, list[Any]] = field(default_factory=dict)      # cur -> [amt, usd, n]
    received: dict[str | None, list[Any]] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    doubles: list[Double] = field(default_factory=list)

    def counted(self, direction: str) -> dict[str | None, Decimal]:
        """Per currency, every movement in ``direction`` (what a trace of it counts)."""
        out: dict[str | None, Decimal] = defaultdict(Decimal)
        for ln in self.lines:
            if ln.direction == direction:
                out[ln.currency] += ln.amount
        return dict(out)


def _accounts(conn: Connection, ident: str) -> set[tuple[str, str]]:
    from fundtrack.query.trace import _accounts_of

    return _accounts_of(conn, ident, None)


def activity_balance(conn: Connection, ident: str) -> Balance:
    """Sort the movements into and out of activity ``ident`` by who reported them."""
    a, f, t = m.Activity.__table__, m.Flow.__table__, Movement.__table__
    act_ids = set(conn.execute(select(a.c.id).where(current(a), a.c.iati_identifier == ident))
                  .scalars())
    res = Balance(ident=ident, basis="out")
    for kind, cur, amount, usd in conn.execute(
            select(f.c.kind, f.c.currency, f.c.amount, f.c.amount_usd)
            .where(current(f), f.c.activity_id.in_(sorted(act_ids)),
                   f.c.kind.in_(OUT_KINDS + IN_KINDS)).order_by(f.c.id)):
        book = res.paid if kind in OUT_KINDS else res.received
        cell = book.setdefault(cur, [Decimal(0), Decimal(0), 0])
        cell[0] += amount
        cell[1] = None if usd is None or cell[1] is None else cell[1] + usd
        cell[2] += 1
    start = _accounts(conn, ident)
    if not start:
        return res
    own_flows = set(conn.execute(select(f.c.id).where(
        current(f), f.c.activity_id.in_(sorted(act_ids)))).scalars())
    rows: list[Any] = []
    for org, act in sorted(start):
        for side in ("src", "dst"):
            cond = (t.c[f"{side}_org"] == org) & (t.c[f"{side}_activity"] == act)
            rows += conn.execute(select(t).where(cond)).mappings().all()
    seen: set[int] = set()
    lines: dict[tuple, Line] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        if r["id"] in seen:
            continue
        seen.add(r["id"])
        src, dst = (r["src_org"], r["src_activity"]), (r["dst_org"], r["dst_activity"])
        if src in start and dst in start:
            continue  # inside the activity: neither in nor out
        direction = "out" if src in start else "in"
        other = dst[0] if direction == "out" else src[0]
        mine = r["flow_id"] in own_flows
        mirrored = r["mirror_flow_id"] is not None
        how = PAIRED if mirrored and (mine or r["mirror_flow_id"] in own_flows) else (
            OWN if mine else THEIRS)
        key = (direction, how, identity(other), r["currency"], r["amount"] < 0)
        ln = lines.get(key)
        if ln is None:
            ln = lines[key] = Line(direction, how, other, r["currency"], r["amount"] < 0)
        ln.amount += r["amount"]
        usd = r["amount_usd"]
        ln.amount_usd = None if usd is None or ln.amount_usd is None else ln.amount_usd + usd
        ln.count += 1
    res.lines = sorted(lines.values(), key=lambda ln: (ln.direction, ln.how, -ln.amount,
                                                       ln.counterpart, ln.currency or ""))
    res.basis = "in" if any(ln.direction == "in" for ln in res.lines) else "out"
    for direction in ("in", "out"):
        by: dict[tuple, dict[str, Line]] = defaultdict(dict)
        for ln in res.lines:
            if ln.direction == direction and not ln.negative and ln.how in (OWN, THEIRS):
                by[(identity(ln.counterpart), ln.currency)][ln.how] = ln
        for (_, cur), pair in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            if OWN in pair and THEIRS in pair:
                res.doubles.append(Double(direction, pair[THEIRS].counterpart, cur,
                                          pair[OWN].amount, pair[OWN].count,
                                          pair[THEIRS].amount, pair[THEIRS].count))
    return res


@dataclass
class Ends:
    """Where the money that left an activity ended, per currency, from a downstream trace:
    ``left`` (the movements out of the start), ``spent`` (expenditure) and ``held``
    (received and not reported spent or passed on). Exact when every account on the way
    keeps to one currency: then ``left == spent + held``."""

    left: dict[str | None, Decimal] = field(default_factory=dict)
    spent: dict[str | None, Decimal] = field(default_factory=dict)
    held: dict[str | None, Decimal] = field(default_factory=dict)
    left_usd: Decimal | None = Decimal(0)
    ends_usd: Decimal | None = Decimal(0)
    one_currency_each: bool = True


def downstream_ends(res: Any, start: set[tuple[str, str]]) -> Ends:
    """:class:`Ends` of a downstream :class:`~fundtrack.query.trace.TraceResult` (its
    movements whole, no ``limit``) from the accounts ``start``."""
    flow_in: dict[tuple, Decimal] = defaultdict(Decimal)
    flow_out: dict[tuple, Decimal] = defaultdict(Decimal)
    out = Ends()
    left: dict[str | None, Decimal] = defaultdict(Decimal)
    spent: dict[str | None, Decimal] = defaultdict(Decimal)
    for mv in res.movements:
        cur, amt = mv["currency"], mv["amount"]
        if mv["src"] in start and mv["dst"] not in start:
            left[cur] += amt
            usd = mv.get("amount_usd")
            out.left_usd = None if usd is None or out.left_usd is None else out.left_usd + usd
        flow_out[(mv["src"], cur)] += amt
        if mv["kind"] == "expenditure":
            spent[cur] += amt
        else:
            flow_in[(mv["dst"], cur)] += amt
    held: dict[str | None, Decimal] = defaultdict(Decimal)
    for (acc, cur), amt in flow_in.items():
        if acc in start:
            continue
        rest = amt - flow_out.get((acc, cur), Decimal(0))
        if rest > 0:
            held[cur] += rest
    for (acc, cur), amt in flow_out.items():  # an account paying out in another currency
        if acc not in start and amt > flow_in.get((acc, cur), Decimal(0)):
            out.one_currency_each = False
    out.left, out.spent, out.held = dict(left), dict(spent), dict(held)
    ends = [t.get("amount_usd") for t in res.totals.get("terminals", [])] + \
        [u.get("amount_usd") for u in res.totals.get("untraced", [])]
    out.ends_usd = None if any(v is None for v in ends) else sum(ends, Decimal(0))
    return out


# --- sentences ------------------------------------------------------------------------

#: The pairing rule in a phrase (its settings: fundtrack.derived.trail.config.TrailConfig).
PAIRING = ("fundtrack pairs two reports of one payment when their amounts agree within "
           "{tol}% and their dates within {days} days, or when one report equals the sum "
           "of 2 to 6 on the other side (docs/methodology.md, section 2)")


@dataclass
class Note:
    """One sentence of an explanation; ``warning`` ones are shown as warnings."""

    text: str
    warning: bool = False
    items: list[str] = field(default_factory=list)


def amount_text(amount: Decimal, currency: str | None) -> str:
    """An exact amount as people write it: ``1,297,735 EUR``, ``355,224.72 EUR``."""
    return f"{amount:,} {currency or '(no currency)'}"


def amounts_text(by_currency: dict[str | None, Decimal]) -> str:
    parts = [amount_text(v, k) for k, v in sorted(by_currency.items(), key=lambda kv: kv[0] or "")
             if v]
    return " and ".join(parts) if parts else "nothing"


def _reports(n: int) -> str:
    return f"{n:,} report" + ("" if n == 1 else "s")


def _pairing() -> str:
    from fundtrack.derived.trail.config import TrailConfig

    cfg = TrailConfig()
    return PAIRING.format(tol=format((cfg.match_tolerance * 100).normalize(), "f"),
                          days=cfg.match_window_days)


def _total(book: dict[str | None, list[Any]]) -> dict[str | None, Decimal]:
    return {k: v[0] for k, v in book.items()}


def _n(book: dict[str | None, list[Any]]) -> int:
    return sum(v[2] for v in book.values())


def _line_text(ln: Line, name: str) -> str:
    amt = amount_text(ln.amount, ln.currency)
    if ln.negative:
        return (f"{amt} of corrections (negative amounts, {_reports(ln.count)}), which are "
                f"not attributed to a donor")
    if ln.direction == "out":
        if ln.how == PAIRED:
            return (f"{amt} paid to {name} that both this activity and {name} report, "
                    f"paired and counted once ({_reports(ln.count)})")
        if ln.how == OWN:
            return f"{amt} paid to {name} in this activity's own reports ({_reports(ln.count)})"
        return (f"{amt} that {name} reports receiving from this activity "
                f"({_reports(ln.count)}), not paired with any report of this activity")
    if ln.how == PAIRED:
        return (f"{amt} from {name}, reported by both sides, paired and counted once "
                f"({_reports(ln.count)})")
    if ln.how == OWN:
        return (f"{amt} from {name} that only this activity reports receiving "
                f"({_reports(ln.count)})")
    return (f"{amt} that {name} reports paying to this activity ({_reports(ln.count)}), "
            f"not paired with any report of this activity")


def double_notes(b: Balance, names: dict[str, str]) -> list[Note]:
    """A warning for each counterpart whose unpaired reports and this activity's describe
    what is probably the same money."""
    out = []
    for d in b.doubles:
        name = names.get(d.counterpart, d.counterpart)
        if d.direction == "out":
            mine, theirs = f"paying {name}", "receiving from this activity"
        else:
            mine, theirs = f"receiving from {name}", "paying this activity"
        out.append(Note(
            f"Both reports of one payment are probably counted. This activity reports "
            f"{mine} {amount_text(d.own_amount, d.currency)} ({_reports(d.own_count)}) and "
            f"{name} reports {theirs} {amount_text(d.their_amount, d.currency)} "
            f"({_reports(d.their_count)}); the reports could not be paired ({_pairing()}), "
            f"so each is counted. Up to {amount_text(d.at_most, d.currency)} is counted "
            f"twice in these traces.", warning=True))
    return out


def upstream_notes(b: Balance, names: dict[str, str]) -> list[Note]:
    """What the upstream trace counts, against what the activity reports paying, with the
    reason for every difference."""
    notes: list[Note] = []
    paid = _total(b.paid)
    notes.append(Note(f"This activity reports paying {amounts_text(paid)} "
                      f"({_reports(_n(b.paid))})"
                      + (f" and receiving {amounts_text(_total(b.received))} "
                         f"({_reports(_n(b.received))})." if b.received else ".")))
    lines = [ln for ln in b.lines if ln.direction == b.basis]
    if not lines:
        notes.append(Note("No movement of money into or out of this activity is recorded, so "
                          "the trace has nothing to count."))
        return notes
    counted = b.counted(b.basis)
    what = "comes into it" if b.basis == "in" else \
        "leaves it, because nothing is reported coming in"
    notes.append(Note(f"The trace upstream counts the money that {what}: "
                      f"{amounts_text(counted)}, made of:",
                      items=[_line_text(ln, names.get(ln.counterpart, ln.counterpart)
                                        or "an unnamed receiver") for ln in lines]))
    diff = {k: counted.get(k, Decimal(0)) - paid.get(k, Decimal(0)) for k in {*counted, *paid}}
    diff = {k: v for k, v in diff.items() if v}
    if not diff:
        notes.append(Note("What the trace counts equals what this activity reports paying."))
        return notes
    if b.basis == "out":
        others = sorted({names.get(ln.counterpart, ln.counterpart) or "an unnamed receiver"
                         for ln in lines if ln.how == THEIRS})
        notes.append(Note(
            f"So the trace counts {amounts_text(diff)} more than this activity reports "
            f"paying: what {' and '.join(others) or 'others'} report"
            f"{'s' if len(others) == 1 else ''} receiving from it, net of corrections."
            if others else f"So the trace counts {amounts_text(diff)} more than this "
            f"activity reports paying (reports of this activity without a movement)."))
        return notes
    more = {k: v for k, v in diff.items() if v > 0}
    less = {k: -v for k, v in diff.items() if v < 0}
    if more:
        notes.append(Note(f"It reports paying out {amounts_text(more)} less than comes in: "
                          f"that money is shown downstream as received and not reported "
                          f"spent."))
    if less:
        notes.append(Note(f"It reports paying out {amounts_text(less)} more than comes in; "
                          f"the excess has no known source (\"outflow exceeding inflow\")."))
    return notes


def downstream_notes(b: Balance, ends: Ends) -> list[Note]:
    """Where the money that left the activity ended, and why USD sums drift."""
    if not ends.left:
        return [Note("No money is recorded leaving this activity.")]
    corrections = {ln.currency: ln.amount for ln in b.lines
                   if ln.direction == "out" and ln.negative}
    text = f"The trace downstream follows the {amounts_text(ends.left)} that leaves this activity"
    if corrections:
        text += f" (corrections of {amounts_text(corrections)} are not followed)"
    if ends.one_currency_each:
        text += f": {amounts_text(ends.spent)} ends in reported expenditure"
        if any(ends.held.values()):
            text += (f" and {amounts_text(ends.held)} was received by organisations that "
                     f"have not reported spending it or passing it on")
        text += "."
    else:
        text += ("; some of it changes currency on the way, so its ends are summed in USD "
                 "only" + (f": {amount_text(ends.ends_usd, 'USD')} in all."
                           if ends.ends_usd is not None else "."))
    notes = [Note(text)]
    if ends.left_usd is not None and ends.ends_usd is not None \
            and ends.left_usd != ends.ends_usd:
        notes.append(Note(
            f"In US dollars each payment is converted at the rate of its own date, so the "
            f"ends sum to {amount_text(ends.ends_usd, 'USD')}, not the "
            f"{amount_text(ends.left_usd, 'USD')} the money was worth when it left this "
            f"activity: the difference of "
            f"{amount_text(ends.ends_usd - ends.left_usd, 'USD')} comes from exchange rates, "
            f"not from more money."))
    return notes
