"""Women's rights organisations (issue 15 item 5): the shipped list that flags them and the
stated rules that only SUGGEST them, each suggestion with its evidence.

One place: ``fundtrack/data/identity/wro.toml``. Its ``[[flag]]`` entries (each citing its
source) are applied by the resolver to the canonical organisation (:func:`apply_list`,
before people's ``flag_wro`` decisions, which override it);
``canonical_org.is_womens_rights_org`` is then what report cards read
(:mod:`fundtrack.accounting.wro`). Its ``[candidates]`` rules feed :func:`candidates`:
(a) receivers of DAC purpose 15170, (b) names that say so in several languages,
(c) the organisation type as a condition. A suggestion flags nothing: a person decides.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select

from fundtrack.db.base import current
from fundtrack.identity import tables as t
from fundtrack.identity.seeds import SEED_DIR
from fundtrack.ledger import tables as m
from fundtrack.money import SUM_CONTEXT

if TYPE_CHECKING:
    from fundtrack.identity.resolve import Resolver

WRO_FILE = SEED_DIR / "wro.toml"


@lru_cache(maxsize=1)
def load_list() -> dict[str, Any]:
    """The parsed ``wro.toml`` (flags and candidate rules)."""
    return tomllib.loads(WRO_FILE.read_text(encoding="utf-8"))


def listed() -> list[dict[str, str]]:
    """The shipped flags: ``{subject, name, source}``, every one with its source."""
    return list(load_list().get("flag", []))


def apply_list(r: Resolver) -> None:
    """Flag the organisations the list names (called by the resolver before decisions)."""
    for e in listed():
        org = r.find(e["subject"])
        if org is not None:
            org = r.orgs[r.final(org.ref)]
            org.wro = True


_WORD = re.compile(r"[a-z0-9]+")


def words(name: str | None) -> list[str]:
    """Lower-case words without accents; "women's" -> "womens"."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"['’]s\b", "s", text)
    return _WORD.findall(text)


def name_evidence(name: str | None) -> str | None:
    """Why ``name`` says women's rights organisation (rule b), or None."""
    rules = load_list()["candidates"]
    ws = words(name)
    plain = " ".join(ws)
    if not ws or any(plain == " ".join(words(x)) for x in rules["exclude_names"]):
        return None
    if set(ws) & set(rules["exclude_words"]):
        return None
    women = [w for w in ws if w in rules["women_words"]]
    body = [w for w in ws if w in rules["body_words"]]
    if not women or not body:
        return None
    return f'name "{name}" has "{women[0]}" and "{body[0]}"'


_TYPE_NAMES = {"10": "government", "11": "local government", "15": "other public sector",
               "21": "international NGO", "22": "national NGO", "23": "regional NGO",
               "24": "partner country based NGO", "30": "public private partnership",
               "40": "multilateral", "60": "foundation", "70": "private sector",
               "80": "academic", "90": "other"}


@dataclass
class WroCandidate:
    """An organisation the rules suggest as a WRO, with the evidence of each rule."""

    org_id: int
    ref: str
    name: str | None
    type: str | None
    flagged: bool
    rules: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    flows: int = 0
    flows_usd: Decimal = Decimal(0)
    flows_without_usd: int = 0
    example_activity: str | None = None

    @property
    def why(self) -> str:
        """"suggested as a women's rights organisation because ..." in one line."""
        return "; ".join(self.evidence)


def _purpose_receivers(conn: Connection, codes: list[str], only: int | None
                       ) -> dict[int, list[Any]]:
    """{receiver org id: [(flow id, amount_usd, activity identifier)]} of current flows
    of purpose ``codes`` (the flow's own sector, else one of its activity's)."""
    f, fp, a = m.Flow.__table__, t.FlowParty.__table__, m.Activity.__table__
    s = m.ActivitySector.__table__
    dac = or_(f.c.sector_vocabulary.is_(None), f.c.sector_vocabulary.in_(("1", "2")))
    by_activity = (select(s.c.activity_id).where(s.c.code.in_(codes),
                                                 or_(s.c.vocabulary.is_(None),
                                                     s.c.vocabulary.in_(("1", "2")))))
    own = f.c.sector_code.in_(codes) & dac
    inherited = f.c.sector_code.is_(None) & f.c.activity_id.in_(by_activity)
    q = (select(fp.c.receiver_org_id, f.c.id, f.c.amount_usd, a.c.iati_identifier)
         .join(fp, fp.c.flow_id == f.c.id).outerjoin(a, a.c.id == f.c.activity_id)
         .where(current(f), fp.c.receiver_org_id.is_not(None), or_(own, inherited))
         .order_by(f.c.id))
    if only is not None:
        q = q.where(fp.c.receiver_org_id == only)
    out: dict[int, list[Any]] = {}
    for oid, fid, usd, act in conn.execute(q):
        out.setdefault(oid, []).append((fid, usd, act))
    return out


def candidates(conn: Connection, ref: str | None = None) -> list[WroCandidate]:
    """Every organisation rules (a) or (b) suggest whose type (c) allows it, flagged or
    not, by canonical ref; only ``ref``'s (any of its identifiers) when given."""
    rules = load_list()["candidates"]
    co, on = t.CanonicalOrg.__table__, t.OrgName.__table__
    oq, nq = select(co).where(co.c.merged_into_id.is_(None)), select(on.c.org_id, on.c.name)
    only: int | None = None
    if ref is not None:
        from fundtrack.identity.resolve import canonical_ref

        only = conn.execute(select(co.c.id).where(co.c.ref == canonical_ref(conn, ref))
                            ).scalar()
        if only is None:
            return []
        oq, nq = oq.where(co.c.id == only), nq.where(on.c.org_id == only)
    orgs = {r.id: r for r in conn.execute(oq)}
    names: dict[int, list[str]] = {}
    for oid, nm in conn.execute(nq.order_by(on.c.name)):
        names.setdefault(oid, []).append(nm)
    found: dict[int, WroCandidate] = {}

    def cand(oid: int) -> WroCandidate:
        o = orgs[oid]
        if oid not in found:
            found[oid] = WroCandidate(oid, o.ref, o.name, o.type, bool(o.is_womens_rights_org))
        return found[oid]

    for oid, rows in _purpose_receivers(conn, list(rules["purpose_codes"]), only).items():
        if oid not in orgs:
            continue
        c = cand(oid)
        c.rules.append("purpose")
        c.flows = len(rows)
        c.flows_usd = Decimal(0)
        for _fid, usd, _act in rows:
            if usd is None:
                c.flows_without_usd += 1
            else:
                c.flows_usd = SUM_CONTEXT.add(c.flows_usd, usd)
        c.example_activity = next((act for _f, _u, act in rows if act), None)
        c.evidence.append(
            f"receiver of {c.flows} flow(s) of purpose {'/'.join(rules['purpose_codes'])}, "
            f"USD {c.flows_usd}" + (f" ({c.flows_without_usd} without USD)"
                                    if c.flows_without_usd else "")
            + (f", e.g. activity {c.example_activity}" if c.example_activity else ""))
    for oid, o in orgs.items():
        for nm in dict.fromkeys([o.name, *names.get(oid, [])]):
            ev = name_evidence(nm)
            if ev:
                c = cand(oid)
                c.rules.append("name")
                c.evidence.append(ev)
                break
    out = []
    for c in found.values():
        if c.type and c.type not in rules["ngo_types"]:
            continue  # (c): a known type that is no civil society body
        c.rules.append("type")
        c.evidence.append(f"type {c.type} ({_TYPE_NAMES.get(c.type, 'NGO')})" if c.type
                          else "type not reported")
        out.append(c)
    return sorted(out, key=lambda c: (c.flagged, -c.flows_usd, c.ref))
