"""Report cards and league tables on the shared files, against values computed apart.

Every expected number below was computed once by ``python tests/reportcard_reference.py``
(lxml and json only, no fundtrack code: the rules of docs/accounting.md written out
again) over the files the session database holds (``loaded_url``: every shared IATI
activity file) and, for FTS, the four custom-search pages. Sweden (SE-0) and the
country funds report in USD, so their USD figures are the reported amounts; for the
Netherlands (EUR) the tests check counts.

Scope: the reference reads the rules of rules.toml as data and matches them by its own
code. The ledger keeps the first narrative of a title and of the first description
element (whatever its type), so the reference reads those too (one Sida flow says "women,
peace and security" only in its English narrative and is out of scope for both).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine

from fundtrack.accounting import league, reportcard, subject
from fundtrack.api.testing import Api
from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
from tests.conftest import SHARED

FTS_FILES = ("custom-search-locationid-114-year-2020.json",
             "custom-search-locationid-1-year-2020-page-2.json",
             "custom-search-locationid-1-year-2020-page-3.json",
             "custom-search-locationid-1-year-2020.json")


@pytest.fixture(scope="module")
def cards(loaded_engine: Engine) -> dict[tuple[str, int], reportcard.Card]:
    with loaded_engine.connect() as c:
        return {(ref, y): reportcard.donor_card(c, ref, y) for ref, y in (
            ("SE-0", 2017), ("SE-0", 2020), ("XM-DAC-7", 2020), ("XM-DAC-46004", 2025),
            ("XM-OCHA-CBPF-CAR17", 2020))}


@pytest.fixture(scope="module")
def fts_engine(db_factory) -> Iterator[Engine]:
    url = db_factory.new_url()
    eng = make_engine(url)
    for name in FTS_FILES:
        assert import_file(eng, SHARED / "fts-json" / name).status == "applied"
    yield eng
    eng.dispose()
    db_factory.drop(url)


# --- pledge fulfilment -------------------------------------------------------------------

def test_pledge_fulfilment_is_cumulative_per_commitment(cards) -> None:
    """Sweden's 223 commitments dated 2017 are paid by their activities' disbursements of
    2017-2021: USD 572.5M of 625.5M (91.5%). Only 48 are settled (paid in full or ended)
    by the data's last date: coverage 4.5%, so no grade."""
    pf = cards[("SE-0", 2017)].item("pledge_fulfilment")
    assert (pf.numerator, pf.denominator) == (D("572463851.7004497370"), D("625531998.127900"))
    assert pf.value == D("572463851.7004497370") / D("625531998.127900")
    assert (pf.base_count, pf.base_usd) == (223, D("625531998.127900"))
    assert (pf.coverage_numerator, pf.coverage_denominator) == (
        D("28231677.781661"), D("625531998.127900"))
    assert (pf.status, pf.grade) == ("insufficient-data", None)
    assert "48 of 223 commitments settled" in pf.note


def test_sweden_2020_is_no_longer_1479_percent_grade_a(cards) -> None:
    """The issue's case: same-year disbursements / same-year commitments gave 1,479% (A).
    Per commitment, cumulative: USD 18.9M paid of 24.1M committed in 10 commitments (78.5%);
    6 settled, USD 13.8M of 24.1M (57.2% < 80%): insufficient data, with the numbers."""
    pf = cards[("SE-0", 2020)].item("pledge_fulfilment")
    assert (pf.numerator, pf.denominator) == (D("18892311.1539979805"), D("24067289.709215"))
    assert (pf.base_count, pf.coverage_numerator) == (10, D("13778138.053897"))
    assert (pf.status, pf.grade, pf.value < 1) == ("insufficient-data", None, True)
    assert pf.insufficient == (
        "insufficient data: coverage 57.2% (USD 13,778,138 of USD 24,067,290 committed in "
        "commitments already settled (paid in full or activity ended)); a grade needs at "
        "least 80.0%")


# --- gender, earmarking, timeliness --------------------------------------------------------

def test_sweden_2020_gender_principal_share(cards) -> None:
    """253 peace-and-security disbursements (the code-gated scope rules of rules.toml:
    mostly humanitarian protection and gender-targeted relief), USD 139,204,684.56, all
    with a DAC gender marker; principal USD 26,504,710.64 (19.0%): graded A against 15%."""
    gp = cards[("SE-0", 2020)].item("gender_principal_share")
    assert (gp.numerator, gp.denominator) == (D("26504710.6398688351"),
                                              D("139204684.5572277084"))
    assert (gp.base_count, gp.coverage) == (253, 1)
    assert (gp.status, gp.grade) == ("graded", "A")
    assert "39.1% of the USD 355,857,710" in gp.note


def test_sweden_2020_timeliness_reads_no_import_date(cards) -> None:
    """D-Portal's copies keep neither last-updated-datetime nor generated-datetime: none of
    the 407 disbursements has a publisher's date, so there is no timeliness to grade
    (it used to read 0/407, grade E, from the import date)."""
    tm = cards[("SE-0", 2020)].item("timeliness")
    assert (tm.base_count, tm.coverage_numerator, tm.coverage_denominator) == (407, 0, 407)
    assert (tm.status, tm.grade, tm.value) == ("insufficient-data", None, None)
    assert tm.note.endswith("dates: none")
    fl = cards[("SE-0", 2020)].item("flexible_share")
    assert (fl.coverage, fl.status, fl.note) == (
        0, "insufficient-data", "0 of 407 disbursements report their earmarking")


def test_timeliness_from_activity_last_updated(cards) -> None:
    """XM-DAC-46004's 137 own disbursements dated 2025 carry last-updated-datetime; 93 of
    them were updated within 90 days of their value date: 67.9%, C."""
    tm = cards[("XM-DAC-46004", 2025)].item("timeliness")
    assert (tm.numerator, tm.denominator, tm.coverage) == (93, 137, 1)
    assert (tm.status, tm.grade) == ("graded", "C")
    assert "137 IATI activity last-updated-datetime" in tm.note


def test_netherlands_2020_tiny_bases_and_receivers_links(cards) -> None:
    card = cards[("XM-DAC-7", 2020)]
    # gender-principal on 7 peace-and-security flows (6.3% of what it disbursed; the
    # reference: EUR 6,242,198 principal of EUR 16,326,848): was "100%, A" on 2
    gp = card.item("gender_principal_share")
    assert (gp.base_count, gp.status, gp.grade) == (7, "insufficient-data", None)
    assert gp.value == gp.numerator / gp.denominator < 1
    # flexible on 1 of 90 disbursements: was "100%, A"
    fl = card.item("flexible_share")
    assert (fl.base_count, fl.value, fl.status) == (90, 1, "insufficient-data")
    assert fl.note == "1 of 90 disbursements report their earmarking"
    assert fl.coverage < D("0.05")
    # traceability: Oxfam Novib's 43 incoming funds link back to the one MFA disbursement
    # it received (XM-DAC-7-PPR-4000003915): 1 of 90, was 0 of 90
    tr = card.item("traceability")
    assert (tr.numerator, tr.denominator, tr.status, tr.grade) == (1, 90, "graded", "E")
    assert tr.note.startswith("0 link to another activity themselves; 1 more are linked to "
                              "by their receivers' reports (43 links)")


# --- own reports, others' reports -------------------------------------------------------------

def test_others_reports_are_a_separate_line(cards) -> None:
    """OCHA (XM-OCHA-CBPF) reports 100 disbursements of 2020, USD 16,156,845.94, with the
    Central African Republic fund as provider: not the fund's own reports."""
    card = cards[("XM-OCHA-CBPF-CAR17", 2020)]
    assert card.figures["paid_flows"] == 0
    ot = card.item("reported_by_others")
    assert (ot.base_count, ot.base_usd, ot.status) == (100, D("16156845.94"), "not-graded")
    assert ot.note.startswith("100 disbursements reported by XM-OCHA-CBPF:")


def test_fts_own_reports_timeliness_and_earmarking(fts_engine: Engine) -> None:
    """FTS-ORG-8148 (Afghanistan Humanitarian Fund), 2020: FTS says the fund itself
    reported 103 of its paid flows (USD 45,397,513); 34 (USD 18,658,428) were reported by
    recipients and are kept apart. All 103 were first reported within 90 days; all report
    their Grand Bargain earmarking, USD 43,977,172 unearmarked or softly earmarked."""
    with fts_engine.connect() as c:
        card = reportcard.donor_card(c, "FTS-ORG-8148", 2020)
    assert (card.figures["paid_flows"], D(card.figures["paid_usd"])) == (103, D(45397513))
    tm = card.item("timeliness")
    assert (tm.numerator, tm.denominator, tm.grade) == (103, 103, "A")
    assert "103 FTS firstReportedDate (first reported)" in tm.note
    fl = card.item("flexible_share")
    assert (fl.numerator, fl.denominator, fl.coverage, fl.grade) == (
        D(43977172), D(45397513), 1, "A")
    ot = card.item("reported_by_others")
    assert (ot.base_count, ot.base_usd) == (34, D(18658428))


# --- unknown organisations, the year a page opens on ------------------------------------------

def test_unknown_organisation_is_said_so(loaded_engine: Engine) -> None:
    with loaded_engine.connect() as c, pytest.raises(subject.UnknownOrganisation) as exc:
        reportcard.donor_card(c, "XM-NOBODY-1", 2020)
    assert "no such organisation: 'XM-NOBODY-1'" in str(exc.value)


def test_latest_year_with_data(loaded_engine: Engine) -> None:
    with loaded_engine.connect() as c:
        # Sweden's own disbursements and commitments end in 2021; the Netherlands' too
        assert subject.years_with_data(c, "SE-0") == [2021, 2020, 2019, 2018, 2017, 2016]
        assert subject.latest_year(c, "XM-DAC-7") == 2021


# --- league tables ------------------------------------------------------------------------------

def test_league_rows_are_the_cards(loaded_engine: Engine, cards) -> None:
    with loaded_engine.connect() as c:
        t = league.league(c, "donor", "gender_principal_share", 2020)
    rows = {r.subject: r for r in t.rows}
    se = rows["SE-0"]
    assert se.item.as_dict() == cards[("SE-0", 2020)].item("gender_principal_share").as_dict()
    # the graded rows come first, ranked by value; everyone else is unranked
    assert [r.rank for r in t.ranked] == sorted(r.rank for r in t.ranked)
    assert all(r.item.status == "graded" for r in t.ranked)
    assert all(r.item.status != "graded" for r in t.unranked)
    assert se.rank is not None
    nl = rows["XM-DAC-7"]
    assert (nl.rank, nl.item.status, nl.item.base_count) == (None, "insufficient-data", 7)
    # Sweden's trend: the share in every year it has data, with that year's rank
    assert [p.year for p in se.trend] == [2016, 2017, 2018, 2019, 2020, 2021]
    assert se.trend[4].value == se.item.value and se.trend[4].rank == se.rank


CARD_Q = """query($d: String!, $y: Int) { reportCard(donor: $d, year: $y) {
  subject name year kind items { key value numerator denominator status grade baseCount
  baseUsd coverage coverageNumerator coverageDenominator minCount minCoverage insufficient } } }"""

LEAGUE_Q = """query($m: String!, $y: Int) { leagueTable(measure: $m, year: $y) {
  year years measures minCount minCoverage benchmark
  rows { rank subject name change changeFrom item { value status grade baseCount coverage }
         trend { year value rank status } } } }"""


def test_api_cards_league_and_unknown(loaded_url: str, cards) -> None:
    api = Api(loaded_url)
    card = api.query(CARD_Q, {"d": "SE-0", "y": 2020})["reportCard"]
    assert (card["subject"], card["year"], card["kind"]) == ("SE-0", 2020, "donor")
    assert card["name"] == "Swedish International Development Cooperation Agency (Sida)"
    items = {i["key"]: i for i in card["items"]}
    for key, want in ((i.key, i) for i in cards[("SE-0", 2020)].items):
        got = items[key]
        assert (got["status"], got["grade"], got["baseCount"]) == (
            want.status, want.grade, want.base_count)
        for field, attr in (("value", "value"), ("numerator", "numerator"),
                            ("coverage", "coverage"), ("baseUsd", "base_usd")):
            assert (None if got[field] is None else D(got[field])) == getattr(want, attr), key
    # no year: the latest year with data
    assert api.query(CARD_Q, {"d": "SE-0"})["reportCard"]["year"] == 2021
    # an unknown organisation: null and an error that says so
    out = api.raw(CARD_Q, {"d": "XM-NOBODY-1", "y": 2020})
    assert out["data"] == {"reportCard": None}
    assert out["errors"][0]["message"].startswith("no such organisation: 'XM-NOBODY-1'")
    assert out["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    t = api.query(LEAGUE_Q, {"m": "gender_principal_share", "y": 2020})["leagueTable"]
    assert (t["year"], t["minCount"], D(t["minCoverage"]), D(t["benchmark"])) == (
        2020, 10, D("0.5"), D("0.15"))
    se = next(r for r in t["rows"] if r["subject"] == "SE-0")
    assert D(se["item"]["value"]) == cards[("SE-0", 2020)].item("gender_principal_share").value
    assert se["rank"] == 1 and se["item"]["grade"] == "A"
    assert se["changeFrom"] == 2019 and [p["year"] for p in se["trend"]][-1] == 2021
    err = api.error(LEAGUE_Q, {"m": "nonsense"})
    assert "unknown measure 'nonsense'" in err


def test_league_csv_and_pages(loaded_url: str) -> None:
    api = Api(loaded_url)
    r = api.get("/league.csv?kind=donor&measure=gender_principal_share")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("kind,measure,year,rank,subject,name,value,grade,status,base,")
    se = [ln for ln in lines if ",2020,1,SE-0," in ln]
    assert len(se) == 1 and ",A,graded," in se[0]
    page = api.get("/donor?ref=XM-NOBODY-1")
    assert page.status_code == 404 and "No such organisation: &#39;XM-NOBODY-1&#39;" in page.text
    page = api.get("/donor?ref=SE-0")
    assert page.status_code == 200 and 'selected>2021</option>' in page.text
