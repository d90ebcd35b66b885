"""An independent computation of report-card measures from the shared files (lxml and
json only, no fundtrack code), run once by hand to get the expected values that
tests/test_reportcard_shared.py asserts:

    python tests/reportcard_reference.py

It reads the files the test database loads (every shared IATI activity file but the
assembled Sida copy, in sorted path order, a later file's activity replacing an earlier
one with the same reporting org and identifier; and the FTS custom searches) and applies
the rules as docs/accounting.md states them, written out again here.
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date
from decimal import Decimal as D
from pathlib import Path

from lxml import etree

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WINDOW = 90


def day(s: str | None) -> date | None:
    try:
        return date.fromisoformat((s or "").strip()[:10])
    except ValueError:
        return None


def text_of(el) -> str:
    """The first non-empty narrative: the text the ledger keeps of a title or description
    (so keywords in a second language's narrative are not seen; see the test's note)."""
    if el is None:
        return ""
    for n in el.findall("narrative"):
        if (n.text or "").strip():
            return n.text.strip()
    return (el.text or "").strip()


def ledger_description(a) -> str:
    """The description the ledger keeps: the first <description> element's, whatever its
    type (importers/iati.py keeps the first one it meets; a later general description does
    not replace it)."""
    d = a.find("description")
    return text_of(d) if d is not None else ""


def general_description(a) -> str:
    for d in a.findall("description"):
        if d.get("type") in (None, "1", "general"):
            return text_of(d)
    return ""


def activities() -> dict[tuple[str, str], etree._Element]:
    acts: dict[tuple[str, str], etree._Element] = {}
    files = sorted(p for p in (SHARED / "iati-activity").rglob("*.xml")
                   if "assembled" not in p.parts)
    for path in files:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False,
                                                      no_network=True, huge_tree=False)).getroot()
        for a in root.iter("iati-activity"):
            ro = a.find("reporting-org")
            key = ((ro.get("ref") or "").strip() if ro is not None else "",
                   (a.findtext("iati-identifier") or "").strip())
            a.set("_generated", root.get("generated-datetime") or "")
            acts[key] = a
    return acts


def txs(a, code: str):
    """(value date, amount, currency, transaction) of transactions of type ``code``."""
    for t in a.findall("transaction"):
        tt = t.find("transaction-type")
        if tt is None or tt.get("code") != code:
            continue
        v = t.find("value")
        when = day(v.get("value-date")) or day(t.find("transaction-date").get("iso-date")
                                                 if t.find("transaction-date") is not None
                                                 else None)
        cur = v.get("currency") or a.get("default-currency")
        yield when, D(v.text.strip()), cur, t


def own(rep: str, t) -> bool:
    p = t.find("provider-org")
    ref = (p.get("ref") or "").strip() if p is not None else ""
    return ref in ("", rep)


# --- pledge fulfilment per commitment, cumulative ---------------------------------------

def fulfilment(acts, rep: str, year: int) -> dict:
    mine = {k: a for k, a in acts.items() if k[0] == rep}
    rel = [(a, r) for a in mine.values() for r in a.findall("related-activity")
           if r.get("type") in ("1", "2")]
    assert not rel, "this reference assumes no parent/child activities for " + rep
    latest = max(w for a in mine.values() for code in ("2", "3")
                 for w, _, _, t in txs(a, code) if own(rep, t) and w)
    out = dict(count=0, committed=D(0), paid=D(0), settled=D(0), settled_count=0,
               decommitments=0)
    for a in mine.values():
        coms = sorted(((w, n, amt) for n, (w, amt, cur, t) in enumerate(txs(a, "2"))
                       if own(rep, t)), key=lambda c: (c[0], c[1]))
        if not coms:
            continue
        assert all(cur == "USD" for _, _, cur, _ in txs(a, "2"))
        pot = sum((amt for w, amt, cur, t in txs(a, "3") if own(rep, t)), D(0))
        eff = [[w, amt] for w, _, amt in coms]
        for i, (w, amt) in enumerate(eff):   # decommitments lower earlier commitments
            if amt < 0:
                out["decommitments"] += 1 if w.year == year else 0
                todo = -amt
                for j in range(i - 1, -1, -1):
                    if eff[j][1] > 0:
                        cut = min(eff[j][1], todo)
                        eff[j][1] -= cut
                        todo -= cut
        status = a.find("activity-status")
        ended_status = status is not None and status.get("code") in ("3", "4", "5")
        dates = {d.get("type"): day(d.get("iso-date")) for d in a.findall("activity-date")}
        end = dates.get("4") or dates.get("3")
        ended = ended_status or (end is not None and end <= latest)
        left = pot
        for (w, _, amt), (_, want) in zip(coms, eff, strict=True):
            if amt < 0:
                continue
            take = min(max(left, D(0)), want)
            left -= take
            if w.year != year:
                continue
            out["count"] += 1
            out["committed"] += want
            out["paid"] += take
            if take >= want or ended:
                out["settled"] += want
                out["settled_count"] += 1
    return out


# --- shares over a donor's own disbursements of a year ---------------------------------

# The scope: any rule of rules.toml that sets "scope" (read as data with tomllib; the
# matching written out again from docs/accounting.md section 2: a code gate, then share,
# exclude words, marker or keywords). FTS clusters and donor codes do not occur in the
# IATI cases computed here.
RULES = tomllib.loads((Path(__file__).resolve().parents[1] / "fundtrack" / "data"
                       / "accounting" / "rules.toml").read_text("utf-8"))["rules"]
COMMON = {"2": "principal", "1": "significant", "0": "not-targeted"}


def words_re(words: list[str]):
    if not words:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(w) for w in sorted(
        words, key=len, reverse=True)) + r")(?![\w])", re.I)


def in_codes(rule: dict, code: str) -> bool:
    return code in rule.get("sectors", []) or (len(code) == 5 and code.isdigit() and any(
        lo <= code <= hi for lo, hi in rule.get("sector_ranges", [])))


def rule_fires(rule: dict, sectors: list[str], text: str, marker: str) -> bool:
    codes = set(sectors)
    gated = any(rule.get(k) for k in ("sectors", "sector_ranges", "tags", "clusters"))
    if gated and not any(in_codes(rule, c) for c in codes):
        return False
    ex = words_re(rule.get("exclude", []))
    if ex and ex.search(text):
        return False
    if "min_share" in rule and (not codes or sum(in_codes(rule, c) for c in codes)
                                / len(codes) < rule["min_share"]):
        return False
    kw = words_re(rule.get("keywords", []))
    if rule.get("markers") is None and kw is None:
        return gated
    return (rule.get("markers") is not None and marker in rule["markers"]) or bool(
        kw and kw.search(text))


def in_scope(a, t) -> bool:
    ts = [s.get("code") for s in t.findall("sector") if (s.get("vocabulary") or "1") in ("1", "2")]
    sectors = ts or [s.get("code") for s in a.findall("sector")
                     if (s.get("vocabulary") or "1") in ("1", "2")]
    words = " \n ".join(w for w in [text_of(a.find("title")), ledger_description(a),
                                     text_of(t.find("description"))] if w)
    marker = COMMON.get(dac_marker(a) or "", "not-screened")
    return any("scope" in r["sets"] and rule_fires(r, [s for s in sectors if s], words, marker)
               for r in RULES)


def dac_marker(a) -> str | None:
    for pm in a.findall("policy-marker"):
        if (pm.get("vocabulary") or "1") == "1" and pm.get("code") == "1":
            sig = (pm.get("significance") or "").strip()
            if sig in ("0", "1", "2"):
                return sig
    return None


def disbursements(acts, rep: str, year: int):
    for (r, _), a in acts.items():
        if r != rep:
            continue
        for w, amt, cur, t in txs(a, "3"):
            if own(rep, t) and w and w.year == year:
                yield a, w, amt, cur, t


def shares(acts, rep: str, year: int) -> dict:
    paid = list(disbursements(acts, rep, year))
    ps = [(a, amt) for a, _, amt, _, t in paid if in_scope(a, t)]
    earmark = [t for a, _, _, _, t in paid
               if any(x.get("vocabulary") in ("2", "3") for x in t.findall("aid-type"))
               or any(x.get("vocabulary") in ("2", "3") for x in a.findall("default-aid-type"))]
    lags = []
    for a, w, _, _, _ in paid:
        pub = day(a.get("last-updated-datetime")) or day(a.get("_generated"))
        if pub is not None:
            lags.append((pub - w).days)
    return dict(
        flows=len(paid), usd=sum((amt for _, _, amt, _, _ in paid), D(0)),
        currencies=sorted({cur for *_, cur, _ in paid}),
        ps_flows=len(ps), ps_usd=sum((amt for _, amt in ps), D(0)),
        ps_principal=sum((amt for a, amt in ps if dac_marker(a) == "2"), D(0)),
        ps_screened=sum((amt for a, amt in ps if dac_marker(a) is not None), D(0)),
        earmark_known=len(earmark), dated=len(lags),
        timely=sum(1 for n in lags if n <= WINDOW))


def traceability(acts, rep: str, year: int) -> dict:
    idents = {k[1] for k in acts}
    fwd, back, links = set(), set(), 0
    paid = list(disbursements(acts, rep, year))
    for n, (a, _, _, _, t) in enumerate(paid):
        me = a.findtext("iati-identifier").strip()
        r = t.find("receiver-org")
        target = (r.get("receiver-activity-id") or "").strip() if r is not None else ""
        if target and target != me and target in idents:
            fwd.add(n)
            continue
        receiver = (r.get("ref") or "").strip() if r is not None else ""
        for (other, oident), oa in acts.items():
            if other == rep or (receiver and other != receiver):
                continue
            for ot in oa.findall("transaction"):
                p = ot.find("provider-org")
                pid = (p.get("provider-activity-id") or "").strip() if p is not None else ""
                if pid == me and pid != oident:
                    back.add(n)
                    links += 1
    return dict(flows=len(paid), forward=len(fwd), back=len(back - fwd), back_links=links)


def others(acts, provider: str, year: int) -> dict:
    n, usd, reporters = 0, D(0), set()
    for (rep, _), a in acts.items():
        if rep == provider:
            continue
        for w, amt, cur, t in txs(a, "3"):
            p = t.find("provider-org")
            if p is not None and (p.get("ref") or "").strip() == provider and w and w.year == year:
                assert cur == "USD"
                n, usd = n + 1, usd + amt
                reporters.add(rep)
    return dict(flows=n, usd=usd, reporters=sorted(reporters))


# --- FTS: own reports are those FTS says the source organisation reported itself --------

def fts(org_id: str, year: int) -> dict:
    flows: dict[str, dict] = {}
    for name in ("custom-search-locationid-114-year-2020.json",
                 "custom-search-locationid-1-year-2020-page-2.json",
                 "custom-search-locationid-1-year-2020-page-3.json",
                 "custom-search-locationid-1-year-2020.json"):
        for f in json.loads((SHARED / "fts-json" / name).read_text("utf-8"))["data"]["flows"]:
            flows[str(f["id"])] = f   # the later file replaces the same flow id
    own_paid, other = [], []
    for f in flows.values():
        src = [o for o in f.get("sourceObjects") or [] if o.get("type") == "Organization"]
        if f.get("status") != "paid" or not src or str(src[0].get("id")) != org_id:
            continue
        if not f.get("date") or day(f["date"]).year != year:
            continue
        rd = f.get("reportDetails") or []
        mine = bool(rd) and (rd[0].get("organization") or "").strip().casefold() == \
            (src[0].get("name") or "").strip().casefold()
        (own_paid if mine else other).append(f)
    timely = sum(1 for f in own_paid if f.get("firstReportedDate")
                 and (day(f["firstReportedDate"]) - day(f["date"])).days <= WINDOW)
    gb = {"unearmarked": 1, "softly earmarked": 2, "earmarked": 3, "tightly earmarked": 4}
    known = [f for f in own_paid if f.get("grandBargainEarmarkingType")]
    flexible = [f for f in known if max(gb[str(g).strip().lower()]
                                       for g in f["grandBargainEarmarkingType"]) <= 2]
    usd = lambda fs: sum((D(str(f["amountUSD"])) for f in fs), D(0))  # noqa: E731
    return dict(own=len(own_paid), own_usd=usd(own_paid), others=len(other),
                others_usd=usd(other), timely=timely,
                dated=sum(1 for f in own_paid if f.get("firstReportedDate")),
                earmark_known=len(known), known_usd=usd(known), flexible_usd=usd(flexible))


if __name__ == "__main__":
    acts = activities()
    print("SE-0 2020 fulfilment", fulfilment(acts, "SE-0", 2020))
    print("SE-0 2017 fulfilment", fulfilment(acts, "SE-0", 2017))
    print("SE-0 2020 shares", shares(acts, "SE-0", 2020))
    print("XM-DAC-7 2020 shares", shares(acts, "XM-DAC-7", 2020))
    print("XM-DAC-7 2020 traceability", traceability(acts, "XM-DAC-7", 2020))
    print("XM-DAC-46004 2025 shares", shares(acts, "XM-DAC-46004", 2025))
    print("XM-OCHA-CBPF-CAR17 2020 others", others(acts, "XM-OCHA-CBPF-CAR17", 2020))
    print("FTS-ORG-8148 2020", fts("8148", 2020))
