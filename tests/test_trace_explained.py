"""The trace page explains itself: originated against paid with the reason for every
difference, a warning where both reports of one payment are counted, and reasons as
sentences (never stored keys), on the README's demo activity: the Netherlands MFA's
XM-DAC-7-PPR-4000003915, which paid Oxfam Novib 1,425,000 EUR (dportal_125) that Oxfam
Novib books as 43 monthly receipts (dportal_30).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from fundtrack.api.testing import Api
from fundtrack.db import make_engine
from fundtrack.derived.trail import attribution
from fundtrack.derived.trail import engine as rule
from fundtrack.derived.trail.reasons import HELD, SENTENCES, sentence
from fundtrack.derived.trail.tables import Attribution
from fundtrack.query.explain import OWN, THEIRS, activity_balance, downstream_ends
from fundtrack.query.trace import _accounts_of, trace
from tests.conftest import DatabaseFactory, shared_file

FILES = ("iati-activity/dportal-covid19-2021/dportal_125.xml",
         "iati-activity/dportal-covid19-2021/dportal_30.xml")
ACT = "XM-DAC-7-PPR-4000003915"
NOVIB = "NL-KVK-27108436"
# Computed once, independently, with lxml over the raw files (no fundtrack code):
# dportal_125, the activity's transactions: type 2 1,500,000 and type 3 1,425,000 EUR.
PAID = Decimal("1425000")
# dportal_30, incoming funds (type 1) whose provider-activity-id is this activity:
# 41 positive reports summing 1,297,735 EUR and 2 corrections summing -3,875 EUR
# (43 reports, 1,293,860 EUR net: docs/methodology.md's "43 monthly receipts").
RECEIPTS, RECEIPTS_N = Decimal("1297735"), 41
CORRECTIONS, CORRECTIONS_N = Decimal("-3875"), 2


@pytest.fixture(scope="module")
def url(db_factory: DatabaseFactory) -> Iterator[str]:
    from fundtrack.ingest.pipeline import import_file

    u = db_factory.new_url()
    eng = make_engine(u)
    for rel in FILES:
        assert import_file(eng, shared_file(rel)).status == "applied"
    eng.dispose()
    yield u
    db_factory.drop(u)


@pytest.fixture(scope="module")
def eng(url: str) -> Iterator[Engine]:
    e = make_engine(url)
    yield e
    e.dispose()


def test_the_balance_sorts_every_movement_by_who_reported_it(eng: Engine) -> None:
    with eng.connect() as c:
        b = activity_balance(c, ACT)
    assert b.basis == "out"  # nothing comes in: the upstream counts what leaves
    assert {k: v[0] for k, v in b.paid.items()} == {"EUR": PAID}
    got = {(ln.how, ln.counterpart, ln.negative): (ln.amount, ln.count) for ln in b.lines}
    assert got == {(OWN, NOVIB, False): (PAID, 1),
                   (THEIRS, NOVIB, False): (RECEIPTS, RECEIPTS_N),
                   (THEIRS, NOVIB, True): (CORRECTIONS, CORRECTIONS_N)}
    assert b.counted("out") == {"EUR": PAID + RECEIPTS + CORRECTIONS}
    [d] = b.doubles
    assert (d.counterpart, d.own_amount, d.their_amount, d.at_most) == \
        (NOVIB, PAID, RECEIPTS, RECEIPTS)


def test_originated_equals_what_leaves_and_the_difference_is_the_receivers_reports(
        eng: Engine) -> None:
    with eng.connect() as c:
        up = trace(c, activity=ACT, direction="UPSTREAM")
        down = trace(c, activity=ACT, direction="DOWNSTREAM")
        start = _accounts_of(c, ACT, None)
    # the 2,722,735 EUR "originated": the payment plus the receipts, both counted
    assert [(o["organization"], o["amount"]) for o in up.originators] == \
        [("XM-DAC-7", PAID + RECEIPTS)]
    assert [(u["reason"], u["amount"]) for u in up.untraced] == \
        [(rule.NEGATIVE, CORRECTIONS)]
    # downstream follows the same euros to the cent: spent + not reported spent
    ends = downstream_ends(down, start)
    assert ends.one_currency_each
    assert ends.left == {"EUR": PAID + RECEIPTS}
    assert ends.spent["EUR"] + ends.held["EUR"] == PAID + RECEIPTS
    assert ends.spent == {"EUR": Decimal("355224.72")}  # == the terminals' EUR total
    assert [t["amount"] for t in down.totals["terminals"]] == [Decimal("355224.72")]
    # its USD drifts with the dates' rates (the issue's "about USD 3.24M"): said, not hidden
    assert ends.ends_usd == Decimal("3244917.28") and ends.left_usd == Decimal("3154172.33")


def test_every_reason_key_has_a_sentence(eng: Engine) -> None:
    keys = {HELD, attribution.BROKEN, attribution.NO_INCOMING, attribution.UNNAMED,
            rule.EXCESS, rule.NO_RATE, rule.CIRCULAR, rule.NEGATIVE}
    assert keys == set(SENTENCES)
    with eng.connect() as c:
        stored = set(c.execute(select(Attribution.untraced_reason).distinct()
                               .where(Attribution.untraced_reason.is_not(None))).scalars())
    assert stored and stored <= keys
    assert sentence(HELD, "Oxfam GB Bangladesh") == \
        "Oxfam GB Bangladesh received this money and has not reported spending it or passing it on."


CHECK = """query($a: String!) { traceCheck(activity: $a) {
  basis paid { currency amount } counted { currency amount }
  doubles { counterpart { ref } ownAmount theirAmount atMost } warnings notes }
  trace(from: {activity: $a}, direction: UPSTREAM) {
    originators { amount currency } untraced { amount reason explanation } } }"""


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


def test_the_page_shows_originated_against_paid_warns_and_never_shows_a_key(url: str) -> None:
    api = Api(url)
    got = api.query(CHECK, {"a": ACT})
    check = got["traceCheck"]
    assert check["basis"] == "OUT" and check["paid"] == [{"currency": "EUR", "amount": "1425000"}]
    assert check["counted"] == [{"currency": "EUR", "amount": "2718860"}]
    assert check["doubles"] == [{"counterpart": {"ref": NOVIB}, "ownAmount": "1425000",
                                 "theirAmount": "1297735", "atMost": "1297735"}]
    assert got["trace"]["untraced"][0]["explanation"] == SENTENCES[rule.NEGATIVE]
    html = api.get(f"/activity?id={ACT}").text
    text = _text(html)
    # the table: paid, originated, untraced, difference, exactly as the API has them
    row = re.search(r'<tr data-currency="EUR">(.*?)</tr>', html, re.S)
    assert row is not None
    assert re.findall(r'data-amount="([^"]*)"', row.group(1)) == \
        ["1425000", "2722735", "-3875", "1293860"]
    assert got["trace"]["originators"] == [{"amount": "2722735", "currency": "EUR"}]
    # the warning, visible and the API's own words
    assert 'class="warning" role="note"' in html
    assert check["warnings"][0] in text
    assert "Up to 1,297,735 EUR is counted twice" in check["warnings"][0]
    for note in check["notes"]:
        assert note in text, note
    # reasons as sentences; no stored key or trail account name on the page
    for key in ("untraced:", "name:", HELD + " ", rule.NEGATIVE):
        assert key not in text, key
    assert "Oxfam GB Bangladesh received this money and has not reported spending it" in text
