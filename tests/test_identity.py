"""Organisation identity (issue 15) on the shared files, with sums computed here from the
files themselves (lxml / json), never from fundtrack's own code.

The database holds the files where the Peacebuilding Fund, CERF, Denmark's MFA, Germany,
UN Women and the Afghanistan Humanitarian Fund appear under several refs and names.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, func, insert, select, update

from fundtrack.api.testing import Api
from fundtrack.db import make_engine
from fundtrack.derived import steps as derived
from fundtrack.identity import resolve
from fundtrack.identity.names import normalise
from fundtrack.identity.seeds import crs_channel_names, load_seeds
from fundtrack.identity.tables import (
    CanonicalOrg,
    FlowParty,
    MatchCandidate,
    OrgDecision,
    PartyResolution,
)
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.ledger.writer import lock_ledger
from fundtrack.records import FlowKind
from tests.conftest import SHARED

DPORTAL = SHARED / "iati-activity" / "dportal-covid19-2021"
IATI = [DPORTAL / "dportal_100.xml", DPORTAL / "dportal_118.xml", DPORTAL / "dportal_15.xml",
        DPORTAL / "dportal_130.xml", DPORTAL / "dportal_139.xml", DPORTAL / "dportal_38.xml",
        SHARED / "iati-activity" / "iom-oipa-export" / "example_203_references.xml"]
FTS = sorted((SHARED / "fts-json").glob("custom-search-locationid-*.json"))
KINDS = {str(k.value): k.name for k in FlowKind}

PBF_QUERY = """{ flowsAggregate(where: {provider: {ref: {_eq: "XM-DAC-41141"}}},
  groupBy: [KIND, CURRENCY]) { groups { kind currency count sum } } }"""


@pytest.fixture(scope="module")
def url(db_factory: Any) -> Iterator[str]:
    u = db_factory.new_url()
    eng = make_engine(u)
    for path in IATI + FTS:
        assert import_file(eng, path).status == "applied", path
    eng.dispose()
    yield u
    db_factory.drop(u)


@pytest.fixture(scope="module")
def eng(url: str) -> Iterator[Engine]:
    e = make_engine(url)
    yield e
    e.dispose()


@pytest.fixture(scope="module")
def api(url: str) -> Api:
    return Api(url)


# --- independent readings of the files ----------------------------------------------------

def _transactions(paths: list[Path]) -> Iterator[tuple[str, str, str, str, D, str | None]]:
    """(file, kind, provider ref, provider name, amount, currency) of every transaction."""
    for t in _dated(paths):
        yield t[:6]


def _dated(paths: list[Path]) -> Iterator[tuple[str, str, str, str, D, str | None, str]]:
    """As :func:`_transactions`, with the value date (else the transaction date)."""
    for path in paths:
        for act in etree.parse(str(path)).getroot().iter("iati-activity"):
            default = act.get("default-currency")
            for tx in act.iter("transaction"):
                code = tx.find("transaction-type").get("code")
                value = tx.find("value")
                if value is None or not (value.text or "").strip():
                    continue
                prov = tx.find("provider-org")
                ref = (prov.get("ref") or "").strip() if prov is not None else ""
                name = " ".join(t.strip() for t in prov.itertext() if t.strip()) \
                    if prov is not None else ""
                when = value.get("value-date") or (
                    tx.find("transaction-date").get("iso-date")
                    if tx.find("transaction-date") is not None else "")
                yield (path.name, KINDS.get(code, code), ref, name, D(value.text.strip()),
                       value.get("currency") or default, when or "")


def _is_pbf(ref: str, name: str) -> bool:
    """The Peacebuilding Fund as these files name it, judged by hand: UNDP's donor code
    11363 'Peacebuilding Fund', XM-DAC-41141 with the PBF's own name, or the name alone."""
    pbf_name = re.search(r"peace ?building fund", name, re.I) is not None
    if ref == "11363":
        return pbf_name
    if ref == "XM-DAC-41141":
        return pbf_name
    return ref == "" and pbf_name


def _groups(rows: list[tuple[str, str, D]]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str], list[D]] = defaultdict(list)
    for kind, cur, amount in rows:
        acc[(kind, cur)].append(amount)
    return [{"kind": k, "currency": c, "count": len(v), "sum": sum(v, D(0))}
            for (k, c), v in sorted(acc.items())]


# --- seeds, codelist, names ---------------------------------------------------------------

def test_every_seed_cites_its_source() -> None:
    seeds = load_seeds()
    assert {s.ref for s in seeds} >= {"FT-FUND-PBF", "XM-OCHA-CERF", "FT-FUND-UNDEF",
                                      "FT-ORG-MPTFO", "FT-FUND-WPHF", "FT-FUND-UNTF-EVAW",
                                      "XM-DAC-3-1", "DE-1", "XM-DAC-41146"}
    values = [i.value for s in seeds for i in s.identifiers]
    assert len(values) == len(set(values))  # an identifier denotes one organisation
    for s in seeds:
        assert s.source.strip()
        assert all(i.source.strip() for i in s.identifiers)


def test_crs_channel_codes_en_fr_and_the_pbf_window_one() -> None:
    """Read from the codelist itself: 41141 is the PBF (active from 2020); 41311 is the
    PBF's Window One, withdrawn on 2019-12-31."""
    root = etree.parse(str(SHARED / "iati-codelists/non-embedded/CRSChannelCode.xml")).getroot()
    items = {i.findtext("code"): i for i in root.iter("codelist-item")}
    assert "Peacebuilding Fund (Window One" in items["41311"].findtext("name/narrative")
    assert items["41311"].get("withdrawal-date") == "2019-12-31"
    names = crs_channel_names()
    assert names["41141"] == ("United Nations Peacebuilding Fund",
                              "Fonds des Nations Unies pour la consolidation de la paix")
    assert len(names) == len(items)


@pytest.mark.parametrize("a,b", [
    ("Denmark - Ministry of Foreign Affairs", "Ministry of Foreign Affairs of Denmark"),
    ("Ministry of Foreign Affairs, Denmark", "Danish Ministry of Foreign Affairs"),
    ("Denmark, Government of", "GOVERNMENT OF DENMARK"),
    ("UNITED NATIONS PEACEBUILDING FUND", "UN Peacebuilding Fund"),
    ("United Nations Peace Building Fund", "United Nations Peacebuilding Fund (UNPBF)"),
    ("Bundesministerium für Zusammenarbeit", "BUNDESMINISTERIUM FUR ZUSAMMENARBEIT"),
    ("Women's Peace & Humanitarian Fund", "Womens Peace and Humanitarian Fund"),
])
def test_normalised_names_agree(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


def test_normalised_names_keep_bodies_apart() -> None:
    assert normalise("Ministry of Foreign Affairs of Denmark") != normalise(
        "Ministry of Foreign Affairs of Norway")
    assert normalise("Danish Refugee Council") != normalise("Norwegian Refugee Council")


# --- the Peacebuilding Fund ---------------------------------------------------------------

def test_the_pbf_query_returns_exactly_the_pbf_flows(api: Api) -> None:
    """The issue's query: every flow whose provider is the PBF however named (UNDP 11363,
    IOM's XM-DAC-41141 / name alone, UNDP's 'United Nations Peacebuilding Fund (UNPBF)'),
    and not the XM-DAC-41141 flows that name the UN COVID-19 Response and Recovery Fund."""
    txs = list(_transactions(IATI))
    want = _groups([(k, c, a) for _f, k, r, n, a, c in txs if _is_pbf(r, n)])
    got = api.query(PBF_QUERY)["flowsAggregate"]["groups"]
    assert [{**g, "sum": D(g["sum"])} for g in got] == want
    assert sum(g["count"] for g in want) == 32  # 19 UNDP + 11 IOM + 1 IOM + 1 UNDP
    misused = [t for t in txs if t[2] == "XM-DAC-41141" and not _is_pbf(t[2], t[3])]
    assert len(misused) == 6 and all("COVID-19" in t[3] for t in misused)


def test_misused_code_is_not_the_pbf_and_says_why(eng: Engine) -> None:
    pr, co = PartyResolution.__table__, CanonicalOrg.__table__
    with eng.connect() as c:
        rows = c.execute(select(pr.c.name_key, pr.c.rule, pr.c.evidence, co.c.ref)
                         .join(co, co.c.id == pr.c.org_id)
                         .where(pr.c.ref == "XM-DAC-41141")).all()
    by_name = {r.name_key: r for r in rows}
    covid = by_name["UN COVID-19 Response and Recovery Fund - MPTF"]
    assert covid.ref != "FT-FUND-PBF" and "misused" in covid.evidence
    pbf = by_name["UNITED NATIONS PEACEBUILDING FUND"]
    assert (pbf.ref, pbf.rule) == ("FT-FUND-PBF", "identifier+name")


def test_pbf_in_trace_attribution_and_scorecard(eng: Engine) -> None:
    from fundtrack.accounting.reportcard import fund_scorecard
    from fundtrack.derived.trail.tables import Attribution, Movement
    from fundtrack.query.trace import trace

    txs = [t for t in _dated(IATI) if _is_pbf(t[2], t[3])]
    cash = [t for t in txs if t[1] == "INCOMING_FUNDS"]
    with eng.connect() as c:
        res = trace(c, organization="XM-DAC-41141")
        assert ("FT-FUND-PBF", "") in res.accounts
        # every PBF cash flow is a movement out of the fund, attributed as pooled money
        mv, at = Movement.__table__, Attribution.__table__
        n = c.execute(select(func.count()).select_from(mv)
                      .where(mv.c.src_org == "FT-FUND-PBF")).scalar_one()
        assert n == len(cash) == 6
        reasons = set(c.execute(select(at.c.untraced_reason).join(mv, mv.c.id == at.c.movement_id)
                                .where(mv.c.src_org == "FT-FUND-PBF")).scalars())
        assert reasons == {"no incoming funds reported"}
        card = fund_scorecard(c, "XM-DAC-41141", 2020)
    item = card.item("received_from_fund")
    # recipients' incoming funds and commitments from the PBF dated 2020 (the USD is
    # fundtrack's conversion: only the counts are read from the files here)
    funds20 = [t for t in cash if t[6].startswith("2020")]
    commit20 = [t for t in txs if t[1] == "INCOMING_COMMITMENT" and t[6].startswith("2020")]
    assert item.base_count == len(funds20) == 1
    assert item.note.startswith(f"1 incoming funds and {len(commit20)} incoming commitments")
    assert item.base_usd > 0


# --- one organisation each ----------------------------------------------------------------

@pytest.mark.parametrize("refs,canonical", [
    (["XM-OCHA-CERF", "FTS-ORG-4762", "XM-DAC-41147"], "XM-OCHA-CERF"),
    (["XM-DAC-3-1", "XM-DAC-3", "DK-1", "FTS-ORG-3776"], "XM-DAC-3-1"),
    (["DE-1", "FTS-ORG-4306"], "DE-1"),
    (["XM-DAC-41146", "41146", "FTS-ORG-3569"], "XM-DAC-41146"),
])
def test_one_organisation_each(api: Api, refs: list[str], canonical: str) -> None:
    q = """query($refs: [String!]) { p: flowsAggregate(where: {provider: {ref: {_in: $refs}}},
      groupBy: [PROVIDER]) { groups { provider count } }
      r: flowsAggregate(where: {receiver: {ref: {_in: $refs}}}, groupBy: [RECEIVER]) {
      groups { receiver count } } }"""
    out = api.query(q, {"refs": refs})
    assert [g["provider"] for g in out["p"]["groups"]] in ([canonical], [])
    assert [g["receiver"] for g in out["r"]["groups"]] in ([canonical], [])
    for ref in refs:  # any identifier finds the same flows
        one = api.query(q, {"refs": [ref]})
        assert one == out


def test_denmark_every_name_and_ref(api: Api) -> None:
    """Count Denmark MFA's provider-side flows in the files: refs XM-DAC-3-1 / XM-DAC-3 /
    DK-1, a name alone that says Denmark's ministry of foreign affairs (also when the
    report put the name in the ref attribute: dportal_15 has 5 such provider-orgs), and FTS
    source organisation 3776."""
    n = 0
    for _f, _k, ref, name, _a, _c in _transactions(IATI):
        ref_is_words = " " in ref and ref != ref.upper()  # "Denmark - Ministry of ..."
        named = name or (ref if ref_is_words else "")
        if ref in ("XM-DAC-3-1", "XM-DAC-3", "DK-1") or (
                (not ref or ref_is_words) and re.search(r"denmark", named, re.I)
                and re.search(r"foreign affairs", named, re.I)):
            n += 1
    for path in FTS:
        for fl in json.loads(path.read_text())["data"]["flows"]:
            if any(o.get("type") == "Organization" and str(o.get("id")) == "3776"
                   for o in fl.get("sourceObjects", [])):
                n += 1
    out = api.query("""{ flowsAggregate(where: {provider: {ref: {_eq: "XM-DAC-3"}}},
      groupBy: [PROVIDER]) { groups { provider providerName count } } }""")
    assert out["flowsAggregate"]["groups"] == [{
        "provider": "XM-DAC-3-1", "providerName": "Denmark - Ministry of Foreign Affairs",
        "count": n}]


# --- counted once across sources ----------------------------------------------------------

def test_ahf_grant_to_awro_counts_once(api: Api) -> None:
    """Afghanistan Humanitarian Fund -> Afghan Women Rights Organization: IATI reports two
    tranches (XM-OCHA-CBPF, provider XM-OCHA-CBPF-AFG23, receiver named only), FTS one flow
    of USD 499,916 (source 8148, destination 11715). Counted once: the publisher's
    tranches; FTS's flow is their mirror."""
    iati = [a for _f, k, r, _n, a, _c in _transactions([DPORTAL / "dportal_130.xml"])
            if k == "DISBURSEMENT" and r == "XM-OCHA-CBPF-AFG23"]
    tranches = []
    for act in etree.parse(str(DPORTAL / "dportal_130.xml")).getroot().iter("iati-activity"):
        for tx in act.iter("transaction"):
            rec = tx.find("receiver-org")
            if (tx.find("transaction-type").get("code") == "3" and rec is not None
                    and "Afghan Women Rights" in "".join(rec.itertext())):
                tranches.append(D(tx.find("value").text))
    assert len(tranches) == 2 and iati
    fts = [D(str(fl["amountUSD"])) for p in FTS for fl in json.loads(p.read_text())["data"]["flows"]
           if any(str(o.get("id")) == "11715" for o in fl.get("destinationObjects", []))]
    assert fts == [D(499916)]
    q = """{ flowsAggregate(where: {isMirror: false, kind: {_eq: DISBURSEMENT},
      receiver: {ref: {_eq: "FTS-ORG-11715"}}}, groupBy: [RECEIVER]) {
      groups { receiver count sum } } }"""
    assert api.query(q)["flowsAggregate"]["groups"] == [
        {"receiver": "FTS-ORG-11715", "count": 2, "sum": str(sum(tranches, D(0)))}]


# --- totals by canonical organisation = totals by reported party over its aliases ---------

@pytest.mark.parametrize("dim,ref,name,col", [
    ("PROVIDER", "provider_ref", "provider_name", "provider_org_id"),
    ("RECEIVER", "receiver_ref", "receiver_name", "receiver_org_id"),
])
def test_totals_by_organisation_equal_totals_by_reported_party(
        eng: Engine, api: Api, dim: str, ref: str, name: str, col: str) -> None:
    """Property over every organisation: the sum and count of each canonical group equal
    those of the reported (ref, name) parties that resolve to it, summed."""
    f, pr, co = m.Flow.__table__, PartyResolution.__table__, CanonicalOrg.__table__
    by_party: dict[tuple[str, str], tuple[int, D]] = {}
    with eng.connect() as c:
        for r, n, amt in c.execute(select(f.c[ref], f.c[name], f.c.amount_usd).where(
                f.c.superseded_by.is_(None), f.c.currency == "USD")):
            k = ((r or "").strip(), (n or "").strip()[:300])
            cnt, total = by_party.get(k, (0, D(0)))
            by_party[k] = (cnt + 1, total + (amt or 0))
        target = {(a, b): o for a, b, o in c.execute(
            select(pr.c.ref, pr.c.name_key, co.c.ref).join(co, co.c.id == pr.c.org_id))}
    want: dict[str | None, list[Any]] = defaultdict(lambda: [0, D(0)])
    for key, (cnt, amt) in by_party.items():
        org = target.get(key) if key != ("", "") else None
        want[org][0] += cnt
        want[org][1] += amt
    out = api.query(f"""{{ flowsAggregate(where: {{currency: {{_eq: "USD"}}}},
      groupBy: [{dim}]) {{ groups {{ provider receiver count sumUsd }} }} }}""")
    got = {g[dim.lower()]: [g["count"], D(g["sumUsd"] or 0)]
           for g in out["flowsAggregate"]["groups"]}
    assert got == {k: v for k, v in want.items()}
    assert len(got) < len(by_party)  # aliases were folded


# --- resolution is stored, reports untouched ----------------------------------------------

def test_each_party_has_rule_and_evidence_and_flows_stay_as_reported(eng: Engine) -> None:
    pr, f, fp = PartyResolution.__table__, m.Flow.__table__, FlowParty.__table__
    with eng.connect() as c:
        rules = Counter(c.execute(select(pr.c.rule)).scalars())
        assert set(rules) <= {"identifier", "identifier+name", "name", "new", "ambiguous",
                              "decision"}
        assert rules["identifier+name"] == 2 and rules["ambiguous"] > 0
        assert c.execute(select(func.count()).select_from(pr).where(pr.c.evidence == "")
                         ).scalar_one() == 0
        # every current flow has its canonical parties; the reported ones are untouched
        assert c.execute(select(func.count()).select_from(f).where(
            f.c.superseded_by.is_(None), f.c.id.not_in(select(fp.c.flow_id)))).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(f).where(
            f.c.provider_ref == "11363")).scalar_one() == 19
        # ambiguous names wait for review rather than being merged
        mc = MatchCandidate.__table__
        assert c.execute(select(func.count()).select_from(mc)).scalar_one() > 0


# --- decisions: applied first, undone exactly -------------------------------------------

def _snapshot(api: Api) -> Any:
    return api.query("""{ flowsAggregate(groupBy: [PROVIDER, RECEIVER, KIND, CURRENCY]) {
      groups { provider receiver kind currency count sum } } }""")


def test_decisions_merge_split_and_undo(url: str, eng: Engine, api: Api) -> None:
    before = _snapshot(api)
    d = OrgDecision.__table__
    now = datetime(2026, 12, 7, tzinfo=UTC)

    def decide(**kw: Any) -> int:
        with eng.begin() as c:
            lock_ledger(c)
            i = c.execute(insert(d).values(decided_by="test", decided_at=now, reason="test",
                                           via="test", **kw).returning(d.c.id)).scalar_one()
            derived.after_registry_edit(c)
        return i

    def undo(i: int) -> None:
        with eng.begin() as c:
            lock_ledger(c)
            c.execute(update(d).where(d.c.id == i).values(reverted_at=now, reverted_by="test"))
            derived.after_registry_edit(c)

    # split UNDP's donor code off the PBF: its 19 flows leave the fund
    pbf = sum(g["count"] for g in api.query(PBF_QUERY)["flowsAggregate"]["groups"])
    split = decide(action="split", subject="11363", target="FT-FUND-PBF")
    after = sum(g["count"] for g in api.query(PBF_QUERY)["flowsAggregate"]["groups"])
    assert after == pbf - 19
    undo(split)
    assert _snapshot(api) == before
    # merge Germany's Federal Foreign Office into the seeded DE-1 (a person's call)
    with eng.connect() as c:
        assert resolve.canonical_ref(c, "XM-DAC-5-7") == "XM-DAC-5-7"
    merge = decide(action="merge", subject="XM-DAC-5-7", target="FTS-ORG-4306")
    with eng.connect() as c:
        assert resolve.canonical_ref(c, "XM-DAC-5-7") == "DE-1"
        assert "XM-DAC-5-7" in resolve.refs_of(c, "DE-1")
        rules = set(c.execute(select(PartyResolution.rule).where(
            PartyResolution.ref == "XM-DAC-5-7")).scalars())
        assert rules == {"decision"}
    assert _snapshot(api) != before
    undo(merge)
    assert _snapshot(api) == before
    # flag as a women's rights organisation, by name alone
    flag = decide(action="flag_wro", subject="name:Afghan Women Rights Organization",
                  value="true")
    out = api.query("""{ flowsAggregate(where: {receiver: {isWomensRightsOrg: {_eq: true}}})
      { count } }""")["flowsAggregate"]["count"]
    assert out == 4  # 3 IATI (2 tranches + commitment) + 1 FTS
    undo(flag)
    assert _snapshot(api) == before


def test_activities_by_reporting_organisation_any_identifier(api: Api) -> None:
    """CERF reports its 76 activities of dportal_139.xml as XM-OCHA-CERF (counted in the
    file); its FTS id finds the same ones."""
    n = sum(1 for a in etree.parse(str(DPORTAL / "dportal_139.xml")).getroot()
            .iter("iati-activity") if a.find("reporting-org").get("ref") == "XM-OCHA-CERF")
    q = """query($r: String!) { activities(first: 1, where: {reportingOrg: {ref: {_eq: $r}}})
      { totalCount } }"""
    for ref in ("XM-OCHA-CERF", "FTS-ORG-4762", "XM-DAC-41147"):
        assert api.query(q, {"r": ref})["activities"]["totalCount"] == n == 76
