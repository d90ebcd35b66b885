"""Percentages on the pages: a share that is not exactly 0 or 1 never prints as 0.0% or
100.0% (issue 16: "100.0%" beside a grade B on /league, for a share of 0.9996)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from fundtrack.web.routes import pct


@pytest.mark.parametrize(("share", "shown"), [
    (D("0.9996"), "99.96%"),      # rounds to 100.0 at 0.1: two decimals, rounded down
    (D("0.99999"), "99.99%"),     # never up to 100.00
    (D("1"), "100.0%"), (D("1.000"), "100.0%"),
    (D("1.0000001"), "100.01%"),  # above 1: rounded up, away from 100
    (D("0.0004"), "0.04%"), (D("0.0000001"), "0.01%"), (D("0"), "0.0%"),
    (D("-0.0004"), "-0.04%"),
    (D("0.99949"), "99.9%"), (D("0.12345"), "12.3%"), (D("0.5"), "50.0%"),
    (None, "–"),
])
def test_pct(share, shown):
    assert pct(share) == shown
