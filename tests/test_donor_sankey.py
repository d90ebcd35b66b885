"""The Sankey from the donor's side, on the real D-Portal pages of the Netherlands MFA
(XM-DAC-7, dportal_125) and the Dutch NGOs it funds (dportal_30): the first band set is
the donor's reported disbursements counted once, to the cent; the receivers' onward
reports, the untraced remainder, countries and sectors by name; the page and
``donorSankey`` agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import Engine

from fundtrack.api.testing import Api
from fundtrack.db import make_engine
from fundtrack.query import nodes
from fundtrack.query.sankey import SPENT, UNTRACED, DonorSankey, donor_sankey
from fundtrack.web.filters import FlowFilter
from tests.conftest import DatabaseFactory, shared_file

FILES = ("iati-activity/dportal-covid19-2021/dportal_125.xml",
         "iati-activity/dportal-covid19-2021/dportal_30.xml")
YEAR_2020 = {"valueDate": {"_gte": "2020-01-01", "_lte": "2020-12-31"}}

# Computed once, independently, with lxml over dportal_125.xml (no fundtrack code):
# reporting-org XM-DAC-7, transaction-type 3, value-date (else transaction-date) in 2020.
NL_2020_REPORTS = 90
NL_2020_EUR = Decimal("262842685")
# The same 90 flows' stored USD (the ECB rate of each value date), as flowsAggregate sums them.
NL_2020_USD = Decimal("305694968.68")
# lxml over dportal_30.xml: incoming funds (type 1) with provider-org ref XM-DAC-7 in 2020,
# reported by the NGOs: 31 reports, 1,764,505 EUR (USD 2,058,678.41 stored: the issue's
# "USD 2.06M" that the Sankey used to draw instead of the donor's 305.7M).
RECEIPTS_2020 = 31
RECEIPTS_2020_EUR = Decimal("1764505")
# lxml over dportal_125.xml: XM-DAC-7's 2020 disbursements to Oxfam Novib (NL-KVK-27108436).
TO_OXFAM_NOVIB_EUR = Decimal("2425000")


def _raw_disbursements(path: Path, ref: str, year: str) -> tuple[int, dict[str, Decimal]]:
    """The donor's own disbursements in ``year`` per currency, straight from the file."""
    n, tot = 0, {}
    for act in etree.parse(str(path)).getroot().iter("iati-activity"):
        rep = act.find("reporting-org")
        if rep is None or (rep.get("ref") or "").strip().upper() != ref.upper():
            continue
        for tx in act.iter("transaction"):
            if tx.find("transaction-type").get("code") != "3":
                continue
            v = tx.find("value")
            when = v.get("value-date") or tx.find("transaction-date").get("iso-date")
            if when.startswith(year):
                cur = v.get("currency") or act.get("default-currency")
                tot[cur] = tot.get(cur, Decimal(0)) + Decimal(v.text.strip())
                n += 1
    return n, tot


@pytest.fixture(scope="module")
def nl_url(db_factory: DatabaseFactory) -> Iterator[str]:
    from fundtrack.ingest.pipeline import import_file

    url = db_factory.new_url()
    eng = make_engine(url)
    for rel in FILES:
        assert import_file(eng, shared_file(rel)).status == "applied"
    eng.dispose()
    yield url
    db_factory.drop(url)


@pytest.fixture(scope="module")
def nl(nl_url: str) -> Iterator[Engine]:
    eng = make_engine(nl_url)
    yield eng
    eng.dispose()


def _sankey(engine: Engine, donor: str = "XM-DAC-7", by: str = "country",
            **filt: object) -> DonorSankey:
    flt = FlowFilter(year=2020, **filt)  # type: ignore[arg-type]
    with engine.connect() as c:
        return donor_sankey(c, donor, flt.clause(), by=by)


def test_first_band_set_is_the_donors_reported_disbursements_counted_once_to_the_cent(
        nl: Engine) -> None:
    n, raw = _raw_disbursements(shared_file(FILES[0]), "XM-DAC-7", "2020")
    assert (n, raw) == (NL_2020_REPORTS, {"EUR": NL_2020_EUR})
    sk = _sankey(nl)
    first = sk.stage(1)
    assert sk.disbursements == NL_2020_REPORTS
    assert sk.disbursed == {"EUR": NL_2020_EUR}
    total: dict[str | None, Decimal] = {}
    for b in first:
        for cur, amt in b.amounts.items():
            total[cur] = total.get(cur, Decimal(0)) + amt
    assert total == {"EUR": NL_2020_EUR}               # the bands themselves, to the cent
    assert sum(b.amount_usd for b in first) == NL_2020_USD == sk.disbursed_usd
    assert not sk.not_drawn and not sk.without_usd
    # the receivers' unpaired reports of the donor's money are beside, not in, the bands
    assert sk.receiver_only_count == RECEIPTS_2020
    assert sum((b.amounts["EUR"] for b in sk.receiver_only), Decimal(0)) == RECEIPTS_2020_EUR
    assert sk.receiver_only_usd == Decimal("2058678.41")


def test_every_dollar_is_passed_on_spent_or_drawn_as_not_reported(nl: Engine) -> None:
    sk = _sankey(nl)
    second = sk.stage(2)
    assert sk.passed_on_usd + sk.spent_usd + sk.untraced_usd == NL_2020_USD
    assert sum((b.amount_usd for b in second if b.target == UNTRACED), Decimal(0)) \
        == sk.untraced_usd
    # each receiver's bands out add up to what it received (cents of rounding at most)
    for b in sk.stage(1):
        out = sum((x.amount_usd for x in second if x.source == b.target), Decimal(0))
        assert abs(out - b.amount_usd) <= Decimal("0.01") * len(second), b.target
    # Oxfam Novib reports carrying on all 2,425,000 EUR the Ministry reports paying it in
    # 2020 (lxml above): its onward bands sum to exactly that and it has no rest band.
    key = "recv:" + nodes.identity("NL-KVK-27108436")
    assert next(b for b in sk.stage(1) if b.target == key).amounts == {"EUR": TO_OXFAM_NOVIB_EUR}
    onward = [b for b in second if b.source == key]
    assert sum((b.amounts.get("EUR", Decimal(0)) for b in onward), Decimal(0)) \
        == TO_OXFAM_NOVIB_EUR
    assert UNTRACED not in {b.target for b in onward} and SPENT in {b.target for b in onward}
    # the receivers' reports follow about 1% of the money: the page must say so
    assert sk.coverage is not None and sk.coverage < Decimal("0.02") and sk.low_coverage
    assert sk.coverage == ((sk.passed_on_usd + sk.spent_usd) / NL_2020_USD
                           ).quantize(Decimal("0.000001"))


def test_countries_and_sectors_by_name(nl: Engine) -> None:
    sk = _sankey(nl)
    third = sk.stage(3)
    assert third
    labels = {sk.nodes[b.target] for b in third}
    assert "Lebanon (LB)" in labels and "Niger (the) (NE)" in labels
    for b in third:  # no bare ISO code: a name, its code beside, or the "none" wording
        assert re.fullmatch(r".+ \([A-Z]{2}\)|\(no single country.*", sk.nodes[b.target])
    # stage 3 carries the money of stage 2 that was passed on or spent
    assert abs(sum(b.amount_usd for b in third) - sk.passed_on_usd - sk.spent_usd) \
        <= Decimal("0.01") * len(third)
    by_sector = _sankey(nl, by="sector")
    names = {by_sector.nodes[b.target] for b in by_sector.stage(3)}
    assert any(re.fullmatch(r"[A-Z][^()]+ \(\d{5}\)", n) for n in names), names


def test_one_organisation_is_one_node_however_its_ref_is_spelled(nl: Engine) -> None:
    # The Ministry pays "NL-KvK-41198890"; Plan Nederland reports as "NL-KVK-41198890".
    assert nodes.identity("NL-KvK-41198890") == nodes.identity(" nl-kvk-41198890 ")
    sk = _sankey(nl)
    assert len(set(sk.nodes.values())) == len(sk.nodes)
    plan = [k for k, v in sk.nodes.items() if "Plan Nederland" in v]
    assert plan == ["recv:NL-KVK-41198890"]
    # Asked for under either spelling, it is one donor: Plan publishes nothing itself
    # here, and Oxfam Novib's 9 receipts from it (dportal_30) are found both ways.
    with nl.connect() as c:
        assert nodes.variants(c, "NL-KvK-41198890") == ["NL-KVK-41198890", "NL-KvK-41198890"]
        one = donor_sankey(c, "NL-KvK-41198890", None)
        two = donor_sankey(c, "NL-KVK-41198890", None)
    assert one.disbursements == two.disbursements == 0
    assert one.receiver_only_count == two.receiver_only_count == 9
    assert one.receiver_only_usd == two.receiver_only_usd > 0


def test_a_gender_filter_selects_the_donors_marked_disbursements(nl: Engine) -> None:
    everything = _sankey(nl)
    principal = _sankey(nl, gender="2")
    assert 0 < principal.disbursements < everything.disbursements
    assert principal.disbursed_usd < everything.disbursed_usd


QUERY = """query($d: String!, $w: FlowWhere, $by: SankeyBy) {
  donorSankey(donor: $d, where: $w, by: $by) {
    disbursed { currency amount } disbursedUsd disbursements coverage lowCoverage
    passedOnUsd spentUsd untracedUsd receiverOnlyUsd receiverOnlyCount
    bands { stage source { key label } target { key label } amountUsd count } } }"""


def test_page_and_api_agree(nl_url: str, nl: Engine) -> None:
    api = Api(nl_url)
    got = api.query(QUERY, {"d": "XM-DAC-7", "w": YEAR_2020, "by": "COUNTRY"})["donorSankey"]
    assert got["disbursed"] == [{"currency": "EUR", "amount": str(NL_2020_EUR)}]
    assert Decimal(got["disbursedUsd"]) == NL_2020_USD and got["lowCoverage"] is True
    sk = _sankey(nl)
    assert [(b["stage"], b["source"]["key"], b["target"]["key"], Decimal(b["amountUsd"]))
            for b in got["bands"]] == [(b.stage, b.source, b.target, b.amount_usd)
                                       for b in sk.bands]
    html = api.get("/sankey?donor=XM-DAC-7&year=2020").text
    rows = re.findall(r'<tr data-stage="(\d)" data-from="([^"]*)" data-to="([^"]*)">.*?'
                      r'data-usd="([^"]*)"', html)
    assert [(int(s), f, t, Decimal(u)) for s, f, t, u in rows] == \
        [(b.stage, b.source, b.target, b.amount_usd) for b in sk.bands if b.amount_usd > 0]
    assert "The receivers' own reports cover little of this money." in html
    assert f"<strong>{(sk.coverage * 100).quantize(Decimal('0.1'))}%</strong> coverage" in html
    assert 'id="receiver-only"' in html and "2,058,678.41 USD" in html
    assert "Lebanon (LB)" in html
    # the Sankey from the donor's side never draws the receivers' own receipts
    assert "1,454,119.27" not in " ".join(u for *_, u in rows)


def test_unknown_donor_and_bad_values_are_answered(nl_url: str) -> None:
    api = Api(nl_url)
    html = api.get("/sankey?donor=XX-NOBODY&year=2020").text
    assert "reports no disbursements under this selection" in html
    assert api.get("/sankey?donor=XM-DAC-7&by=planet").status_code == 400
    assert "limit must be between" in api.error(
        'query { donorSankey(donor: "XM-DAC-7", limit: 0) { disbursedUsd } }')
